/**
 * Socket specifications in Postfix and Sendmail notation:
 * `inet:PORT@HOST`, `inet:HOST:PORT`, `inet6:PORT@HOST`, `inet6:[HOST]:PORT`,
 * `unix:/path` and `local:/path`.
 */
import { isIP } from "node:net";

export type ListenAddress =
  | { kind: "tcp"; host: string; port: number; family: 4 | 6 }
  | { kind: "unix"; path: string };

export class AddressError {
  constructor(readonly message: string) {}
}

function parsePort(text: string, spec: string): number | AddressError {
  if (!/^\d{1,5}$/.test(text)) return new AddressError(`'${spec}': port '${text}' is not a number`);
  const port = Number(text);
  if (port < 1 || port > 65535) return new AddressError(`'${spec}': port ${port} is out of range 1-65535`);
  return port;
}

export function parseListenAddress(spec: string): ListenAddress | AddressError {
  const colon = spec.indexOf(":");
  if (colon === -1) {
    return new AddressError(
      `'${spec}': expected inet:PORT@HOST, inet:HOST:PORT, inet6:PORT@HOST or unix:/path`,
    );
  }
  const scheme = spec.slice(0, colon).toLowerCase();
  const rest = spec.slice(colon + 1);
  if (scheme === "unix" || scheme === "local") {
    if (rest === "") return new AddressError(`'${spec}': the socket path is empty`);
    if (rest.includes("\0")) return new AddressError(`'${spec}': the socket path contains NUL`);
    return { kind: "unix", path: rest };
  }
  if (scheme !== "inet" && scheme !== "inet6") {
    return new AddressError(`'${spec}': unknown socket type '${scheme}' (use inet, inet6, unix or local)`);
  }
  const family = scheme === "inet6" ? 6 : 4;
  let host: string;
  let portText: string;
  const at = rest.lastIndexOf("@");
  if (at !== -1) {
    portText = rest.slice(0, at);
    host = rest.slice(at + 1);
  } else if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close === -1 || rest[close + 1] !== ":") return new AddressError(`'${spec}': expected [HOST]:PORT`);
    host = rest.slice(1, close);
    portText = rest.slice(close + 2);
  } else if (family === 4 && rest.includes(":")) {
    const last = rest.lastIndexOf(":");
    host = rest.slice(0, last);
    portText = rest.slice(last + 1);
  } else {
    // Sendmail's `inet:PORT`: every interface of the family.
    portText = rest;
    host = family === 6 ? "::" : "0.0.0.0";
  }
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (host === "") return new AddressError(`'${spec}': the host is empty`);
  const port = parsePort(portText, spec);
  if (port instanceof AddressError) return port;
  if (host !== "localhost" && isIP(host) === 0) {
    return new AddressError(
      `'${spec}': '${host}' is not an IP address (name lookups are not done for listening)`,
    );
  }
  if (isIP(host) !== 0 && isIP(host) !== family) {
    return new AddressError(`'${spec}': '${host}' is not an IPv${family} address`);
  }
  return { kind: "tcp", host, port, family };
}

export function formatListenAddress(address: ListenAddress): string {
  return address.kind === "unix"
    ? `unix:${address.path}`
    : `${address.family === 6 ? "inet6" : "inet"}:${address.port}@${address.host}`;
}
