/**
 * Prometheus metrics, every name prefixed `filterctl_`, served at /metrics by `serve --metrics`.
 */
import { createServer, type Server } from "node:http";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { ListenError } from "../milter/index.js";

export class Metrics {
  readonly registry = new Registry();
  readonly sessions = new Counter({
    name: "filterctl_sessions_total",
    help: "MTA connections accepted",
    registers: [this.registry],
  });
  readonly refusedConnections = new Counter({
    name: "filterctl_refused_connections_total",
    help: "MTA connections refused (connection limit, shutting down)",
    registers: [this.registry],
  });
  readonly activeConnections = new Gauge({
    name: "filterctl_active_connections",
    help: "MTA connections open now",
    registers: [this.registry],
  });
  readonly decisions = new Counter({
    name: "filterctl_decisions_total",
    help: "Decisions other than continue, by stage, decision and rule; shadow decisions are labelled shadow=true",
    labelNames: ["stage", "decision", "rule", "shadow"],
    registers: [this.registry],
  });
  readonly lookupSeconds = new Histogram({
    name: "filterctl_lookup_duration_seconds",
    help: "Time of lookups that reached a source (cache misses), by source and outcome",
    labelNames: ["source", "outcome"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly lookups = new Gauge({
    name: "filterctl_lookups",
    help: "Lookups asked of each source since its creation (cache hits included)",
    labelNames: ["source"],
    registers: [this.registry],
  });
  readonly cacheHits = new Gauge({
    name: "filterctl_cache_hits",
    help: "Lookups answered from the cache, by source",
    labelNames: ["source"],
    registers: [this.registry],
  });
  readonly lookupErrors = new Counter({
    name: "filterctl_lookup_errors_total",
    help: "Lookups that failed or timed out, by source",
    labelNames: ["source"],
    registers: [this.registry],
  });
  readonly stateErrors = new Counter({
    name: "filterctl_state_errors_total",
    help: "rate() and greylist() calls the state could not answer (Redis down, slower than state.timeout), by store",
    labelNames: ["store"],
    registers: [this.registry],
  });
  readonly journalErrors = new Counter({
    name: "filterctl_journal_errors_total",
    help: "Transactions the journal (serve --journal) could not write, and failures to open or rotate it",
    registers: [this.registry],
  });
  readonly dnsblState = new Gauge({
    name: "filterctl_dnsbl_state",
    help: "1 for the current health state of each DNSBL (unknown, healthy, lists-everything, dead, refused)",
    labelNames: ["source", "zone", "state"],
    registers: [this.registry],
  });
  readonly reloads = new Counter({
    name: "filterctl_reloads_total",
    help: "Configuration reloads by result (success, failure)",
    labelNames: ["result"],
    registers: [this.registry],
  });
  readonly generation = new Gauge({
    name: "filterctl_config_generation",
    help: "Generation of the configuration being served (1 at start, +1 per successful reload)",
    registers: [this.registry],
  });

  /** Called before each scrape, to copy counters kept elsewhere. */
  beforeScrape: (() => void) | undefined;

  /** Sets the one-hot state gauge of a DNSBL. */
  setDnsblState(source: string, zone: string, state: string): void {
    for (const s of ["unknown", "healthy", "lists-everything", "dead", "refused"]) {
      this.dnsblState.set({ source, zone, state: s }, s === state ? 1 : 0);
    }
  }

  /** Serves /metrics on HOST:PORT. */
  async listen(hostPort: string): Promise<Server> {
    const colon = hostPort.lastIndexOf(":");
    const host = hostPort.slice(0, colon).replace(/^\[|\]$/g, "") || "127.0.0.1";
    const port = Number(hostPort.slice(colon + 1));
    const server = createServer((req, res) => {
      if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found: try /metrics\n");
        return;
      }
      this.beforeScrape?.();
      this.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": this.registry.contentType }).end(text),
        (error: unknown) => res.writeHead(500).end(String(error)),
      );
    });
    const failure = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      server.once("error", resolve);
      server.listen(port, host, () => {
        server.off("error", resolve);
        resolve(undefined);
      });
    });
    if (failure !== undefined) throw new MetricsListenError(hostPort, failure);
    return server;
  }
}

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
