/**
 * The `--metrics` address: its syntax and why it could not be bound. Apart from metrics.ts so that
 * reading an option never loads prom-client: `serve` without --metrics never loads it (idle
 * memory; test/architecture/lazy-imports.test.ts).
 */
import { ListenError } from "../milter/index.js";

/**
 * Why `--metrics` could not be bound, in one line: "cannot serve metrics on H:P: address already
 * in use". A ListenError, so `serve` exits 2 with it as it does for the milter's own address.
 */
export class MetricsListenError extends ListenError {
  constructor(hostPort: string, cause: NodeJS.ErrnoException) {
    super(`cannot serve metrics on ${hostPort}: ${bindFailure(cause)}`);
  }
}

const BIND_FAILURES: Record<string, string> = {
  EADDRINUSE: "address already in use (another process listens there)",
  EADDRNOTAVAIL: "no such address on this host",
  EACCES: "permission denied (ports below 1024 need privileges)",
  ENOTFOUND: "host name not found",
  EAI_AGAIN: "host name lookup failed for now (DNS)",
};

function bindFailure(error: NodeJS.ErrnoException): string {
  const code = error.code ?? "";
  const words = BIND_FAILURES[code];
  return words === undefined ? error.message.replace(/\s+/g, " ") : `${words} [${code}]`;
}

export function parseHostPort(value: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  if (match === null) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (match[1] ?? match[2]) as string, port };
}
