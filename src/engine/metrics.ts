/**
 * Prometheus metrics, every name prefixed `filterctl_` (Node's process metrics aside), served at
 * /metrics by `serve --metrics`. Counters end in `_total`; the series of every rule and source are
 * created at 0 when rules are loaded (`initialise`), so rates work from the first scrape.
 */
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { DecisionAction } from "../runtime/model.js";
import { MetricsListenError } from "./metrics-address.js";

/** Why a decision was taken: the rule's own action, a lookup failure's error_reply, the event deadline. */
export type DecisionCause = "policy" | "error" | "deadline";

/** What `initialise` creates series for. */
export interface SeriesNames {
  /** `fused`: it has a reject-rate fuse (its decisions may come as shadow ones too). */
  rules: readonly { name: string; shadow: boolean; canFail: boolean; fused: boolean }[];
  sources: readonly string[];
  store: string;
}

const ACTIONS: readonly DecisionAction[] = ["accept", "reject", "tempfail", "discard", "quarantine"];

export interface MetricsOptions {
  /** Node's process metrics (`process_*`, `nodejs_*`) in this registry; serve sets it. */
  processMetrics?: boolean;
}

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
    help: 'Decisions other than continue, by rule, decision and cause (policy, error, deadline: rule=""); shadow decisions (shadow rules, fused rules) are labelled shadow="true"',
    labelNames: ["rule", "decision", "cause", "shadow"],
    registers: [this.registry],
  });
  readonly ruleEvaluations = new Counter({
    name: "filterctl_rule_evaluations_total",
    help: "Evaluations of each rule (once per event of its stages; shadow rules included)",
    labelNames: ["rule"],
    registers: [this.registry],
  });
  readonly lookupSeconds = new Histogram({
    name: "filterctl_lookup_duration_seconds",
    help: "Time of lookups that reached a source (cache misses), by source and outcome",
    labelNames: ["source", "outcome"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly lookups = new Counter({
    name: "filterctl_lookups_total",
    help: "Lookups asked of each source (cache hits and list sources included)",
    labelNames: ["source"],
    registers: [this.registry],
  });
  readonly cacheHits = new Counter({
    name: "filterctl_cache_hits_total",
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
    // With workers, one worker's 1 is the answer; a sum would say 2.
    aggregator: "max",
    registers: [this.registry],
  });
  readonly ruleFused = new Gauge({
    name: "filterctl_rule_fused",
    help: "1 while the rule's reject-rate fuse holds it in shadow mode, 0 otherwise (rules with a fuse)",
    labelNames: ["rule"],
    // With workers, fused when any worker's fuse holds the rule.
    aggregator: "max",
    registers: [this.registry],
  });
  readonly reloads = new Counter({
    name: "filterctl_reloads_total",
    help: "Configuration reloads by result (success, failure)",
    labelNames: ["result"],
    // With workers, every worker counts each reload: the count is theirs, not their sum.
    aggregator: "max",
    registers: [this.registry],
  });
  readonly generation = new Gauge({
    name: "filterctl_config_generation",
    help: "Generation of the configuration being served (1 at start, +1 per successful reload)",
    // With workers, the generation every worker has reached.
    aggregator: "min",
    registers: [this.registry],
  });
  readonly reloadSuccess = new Gauge({
    name: "filterctl_reload_last_success_timestamp_seconds",
    help: "When the rules being served were loaded (start or last successful reload), in seconds since the epoch",
    // With workers, the oldest rules any worker serves.
    aggregator: "min",
    registers: [this.registry],
  });
  readonly buildInfo = new Gauge({
    name: "filterctl_build_info",
    help: "Always 1; the version of filterctl in its label",
    labelNames: ["version"],
    // With workers, 1, not the number of workers.
    aggregator: "max",
    registers: [this.registry],
  });
  /** The source counters as last copied: the counters grow by the difference. */
  private readonly copied = new Map<string, { lookups: number; hits: number }>();
  /**
   * Evaluations per rule, counted as plain numbers (a prom-client label lookup per evaluation
   * would cost more than many rules) and copied into the counter before each scrape.
   */
  private readonly evaluations = new Map<string, { count: number; copied: number }>();

  constructor(options: MetricsOptions = {}) {
    this.buildInfo.set({ version: packageVersion() }, 1);
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /**
   * Creates at 0 the series of the rules and sources being loaded (and reloaded): decisions of
   * every action of a rule with cause policy (and error when its lookups can fail), its
   * evaluations, every source's lookups, hits and errors, the state's errors, the reloads.
   */
  initialise(names: SeriesNames): void {
    for (const rule of names.rules) {
      this.ruleEvaluations.inc({ rule: rule.name }, 0);
      const shadows = rule.fused ? ["false", "true"] : [String(rule.shadow)];
      for (const shadow of shadows) {
        for (const decision of ACTIONS)
          this.decisions.inc({ rule: rule.name, decision, cause: "policy", shadow }, 0);
        if (rule.canFail)
          this.decisions.inc({ rule: rule.name, decision: "tempfail", cause: "error", shadow }, 0);
      }
    }
    this.decisions.inc({ rule: "", decision: "tempfail", cause: "deadline", shadow: "false" }, 0);
    for (const source of names.sources) {
      this.lookups.inc({ source }, 0);
      this.cacheHits.inc({ source }, 0);
      this.lookupErrors.inc({ source }, 0);
    }
    this.stateErrors.inc({ store: names.store }, 0);
    for (const result of ["success", "failure"]) this.reloads.inc({ result }, 0);
    this.reloadSuccess.set(Date.now() / 1000);
  }

  /** A rule's evaluation count (the same across reloads): `count++` once per evaluation. */
  evaluationCount(rule: string): { count: number } {
    let entry = this.evaluations.get(rule);
    if (entry === undefined) {
      entry = { count: 0, copied: 0 };
      this.evaluations.set(rule, entry);
    }
    return entry;
  }

  /** Copies the evaluation counts into filterctl_rule_evaluations_total. */
  copyEvaluations(): void {
    for (const [rule, entry] of this.evaluations) {
      if (entry.count === entry.copied) continue;
      this.ruleEvaluations.inc({ rule }, entry.count - entry.copied);
      entry.copied = entry.count;
    }
  }

  /**
   * Adds what a source's own counters (cumulative since its cache was made) grew by since the
   * last copy; counters that went back (a reload made the cache anew) count from 0.
   */
  copySourceCounters(source: string, lookups: number, hits: number): void {
    const last = this.copied.get(source) ?? { lookups: 0, hits: 0 };
    this.lookups.inc({ source }, lookups >= last.lookups ? lookups - last.lookups : lookups);
    this.cacheHits.inc({ source }, hits >= last.hits ? hits - last.hits : hits);
    this.copied.set(source, { lookups, hits });
  }

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

function packageVersion(): string {
  try {
    const text = readFileSync(new URL("../../package.json", import.meta.url), "utf8");
    return (JSON.parse(text) as { version: string }).version;
  } catch {
    return "unknown";
  }
}
