/**
 * `filterctl serve --workers N` (N > 1): this process is the node:cluster primary. It forks N
 * workers that serve the one listening socket (the primary holds it: cluster binds it on the
 * first worker's request), watches the rules files and validates a change before sending every
 * worker the validated content to reload (a worker never reads the rules file itself), answers
 * /metrics for all workers together, restarts a worker that dies, and on SIGTERM drains them
 * all, then exits 0. It opens no source and runs no rule itself.
 */
import cluster, { type Worker } from "node:cluster";
import { chmod, unlink } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { Logger } from "pino";
import { formatDiagnostic } from "../common/diagnostics.js";
import {
  type Config,
  RESTART_SETTINGS,
  type RestartSettings,
  sameRestartSetting,
  showRestartSetting,
} from "../config/types.js";
import { MetricsListenError } from "../engine/metrics-address.js";
import { checkRules } from "../engine/open-rules.js";
import { RulesWatcher } from "../engine/rules-watcher.js";
import { ConfigError } from "../engine/service.js";
import { parseListenAddress, removeStaleSocket } from "../milter/index.js";
import {
  isWorkerMessage,
  WORKER_RULES_ENV,
  WORKER_SLOT_ENV,
  type WorkerMessage,
} from "./serve-worker-protocol.js";
import { HARD_DEADLINE_MARGIN_MS } from "./shutdown.js";

/** A worker that dies within this long of its start counts as a crash loop: the next start waits longer. */
const STABLE_MS = 10_000;
const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 30_000;

export interface PrimaryOptions {
  count: number;
  configPath: string | undefined;
  config: Config | undefined;
  /** The content of the rules file that `config` was read from (what the workers load). */
  text: string | undefined;
  listen: string;
  metrics: string | undefined;
  /** Restart settings the command line sets: the file's changes to them are not reported. */
  fixed: readonly (keyof RestartSettings)[];
  shutdownTimeoutMs: () => number;
}

export class ServePrimary {
  private readonly started = new Map<Worker, number>();
  /** Each worker's slot, 1..N: a restarted worker takes the dead one's (its journal file, its logs). */
  private readonly slots = new Map<Worker, number>();
  private failures = 0;
  private restarts = 0;
  private stopping = false;
  private readonly watcher: RulesWatcher;
  private config: Config | undefined;
  /** The last content of the rules file found valid: what a worker (re)started now loads. */
  private text: string | undefined;
  /** That content's number: 1 at start, one more for each change validated (the workers' generation). */
  private generation = 1;
  private metricsServer: Server | undefined;
  private readonly unixPath: string | undefined;

  constructor(
    private readonly options: PrimaryOptions,
    private readonly logger: Logger,
  ) {
    this.config = options.config;
    this.text = options.text;
    this.watcher = new RulesWatcher(logger, (reason) => void this.reload(reason));
    const address = parseListenAddress(options.listen);
    this.unixPath = "kind" in address && address.kind === "unix" ? address.path : undefined;
  }

  /** Forks the workers; resolves once each listens, or throws the first one's start failure. */
  async start(): Promise<void> {
    const mode = this.config?.listenMode ?? 0o660;
    if (this.unixPath !== undefined) {
      await removeStaleSocket(this.unixPath);
      // cluster binds the socket in this process when the first worker asks: under this umask
      // it is born with at most `mode`, never wider. The primary creates no other file.
      const previous = process.umask(0o777);
      process.umask(previous | (0o777 & ~mode));
    }
    if (this.options.metrics !== undefined)
      this.metricsServer = await this.serveMetrics(this.options.metrics);
    // Workers accept on the shared socket themselves: with Node's default (round-robin), this
    // process accepts every connection and hands it over IPC, a cost per MTA session that made
    // two workers slower than one on a 2-core machine (bench:serve).
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ silent: false });
    const ready = Array.from({ length: this.options.count }, (_, i) => this.fork(i + 1));
    try {
      await Promise.all(ready);
    } catch (error) {
      this.stopping = true;
      for (const worker of this.started.keys()) worker.process.kill("SIGKILL");
      this.metricsServer?.close();
      throw error;
    }
    if (this.unixPath !== undefined) await chmod(this.unixPath, mode);
    cluster.on("exit", (worker, code, signal) => this.exited(worker, code, signal));
    this.rewatch();
    process.on("SIGHUP", () => void this.reload("SIGHUP"));
    process.on("SIGTERM", () => this.stop("SIGTERM"));
    process.on("SIGINT", () => this.stop("SIGINT"));
    this.logger.info({ workers: this.options.count, listen: this.options.listen }, "workers serving");
  }

  /** Resolves when the worker listens; rejects with its start failure (as the error serve exits with). */
  private fork(slot: number): Promise<void> {
    const worker = cluster.fork({
      [WORKER_SLOT_ENV]: String(slot),
      [WORKER_RULES_ENV]: this.options.configPath ?? "",
    });
    this.started.set(worker, Date.now());
    this.slots.set(worker, slot);
    return new Promise((resolveReady, reject) => {
      worker.on("message", (message: unknown) => {
        if (!isWorkerMessage(message)) return;
        if (message.filterctl === "ready") resolveReady();
        // A message sent before the worker listens would be dropped: it asks when it does.
        if (message.filterctl === "want-rules" && this.text !== undefined)
          this.send(worker, { filterctl: "rules", text: this.text, generation: this.generation });
        if (message.filterctl === "failed") reject(new WorkerStartError(message.message, message.code));
      });
      worker.once("exit", (code) => reject(new WorkerStartError(`a worker exited at start (${code})`, 1)));
    });
  }

  private exited(worker: Worker, code: number | null, signal: string | null): void {
    const startedAt = this.started.get(worker) ?? 0;
    const slot = this.slots.get(worker) ?? 1;
    this.started.delete(worker);
    this.slots.delete(worker);
    if (this.stopping) {
      if (this.started.size === 0) void this.end();
      return;
    }
    this.failures = Date.now() - startedAt < STABLE_MS ? this.failures + 1 : 0;
    const delayMs = this.failures === 0 ? 0 : Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** this.failures);
    this.restarts++;
    this.logger.error(
      { worker: worker.id, pid: worker.process.pid, code, signal, restartInMs: delayMs },
      `worker ${worker.process.pid} died (${signal ?? `exit code ${code}`}): starting another in ${delayMs} ms`,
    );
    setTimeout(() => {
      if (!this.stopping)
        this.fork(slot).catch((error: Error) =>
          this.logger.error({ err: error.message }, "worker restart failed"),
        );
    }, delayMs);
  }

  /** Validates the changed file here once; only a valid one is sent to the workers. */
  async reload(reason: string): Promise<void> {
    if (this.options.configPath === undefined || this.stopping) return;
    const checked = await checkRules(this.options.configPath, true);
    if (checked.kind !== "checked") {
      if (checked.kind !== "unreadable") {
        for (const d of checked.diagnostics) {
          if (d.severity === "error")
            this.logger.error({ file: d.file, line: d.line, column: d.column }, formatDiagnostic(d));
        }
      }
      const why = checked.kind === "unreadable" ? checked.message : `${this.options.configPath}: invalid`;
      this.logger.error({ reason }, `reload refused, no worker reloads: ${why}`);
      for (const worker of this.started.keys()) this.send(worker, { filterctl: "reload-refused" });
      return;
    }
    this.warnRestartSettings(checked.config);
    this.config = checked.config;
    this.text = checked.file.text;
    this.generation++;
    const message: WorkerMessage = {
      filterctl: "reload",
      reason,
      text: this.text,
      generation: this.generation,
    };
    for (const worker of this.started.keys()) this.send(worker, message);
    this.rewatch();
  }

  private warnRestartSettings(next: Config): void {
    const running = this.options.config;
    if (running === undefined) return;
    for (const [key, name] of Object.entries(RESTART_SETTINGS) as [keyof RestartSettings, string][]) {
      if (this.options.fixed.includes(key) || sameRestartSetting(next[key], running[key])) continue;
      const [was, now] = [showRestartSetting(key, running[key]), showRestartSetting(key, next[key])];
      this.logger.warn(
        { setting: name, running: was, configured: now },
        `'${name}' changed to ${now}: it takes a restart; still running with ${was}`,
      );
    }
  }

  private send(worker: Worker, message: WorkerMessage): void {
    if (worker.isConnected()) worker.send(message);
  }

  /** Watches the rules file and the files it names: a change is validated, then sent to every worker. */
  private rewatch(): void {
    if (this.options.configPath !== undefined && this.config !== undefined)
      this.watcher.watch(this.options.configPath, this.config);
  }

  /** Every worker drains (each within shutdown_timeout); past that and the margin, they are killed. */
  private stop(signal: NodeJS.Signals): void {
    if (this.stopping) return;
    this.stopping = true;
    this.watcher.close();
    this.logger.info({ signal, workers: this.started.size }, "stopping: every worker drains");
    for (const worker of this.started.keys()) worker.process.kill("SIGTERM");
    if (this.started.size === 0) void this.end();
    setTimeout(() => {
      this.logger.error(
        { workers: this.started.size },
        "workers still running after the shutdown deadline: killed",
      );
      for (const worker of this.started.keys()) worker.process.kill("SIGKILL");
    }, this.options.shutdownTimeoutMs() + HARD_DEADLINE_MARGIN_MS).unref();
  }

  private async end(): Promise<void> {
    this.metricsServer?.close();
    if (this.unixPath !== undefined) await unlink(this.unixPath).catch(() => {});
    this.logger.info({}, "stopped");
    this.logger.flush(() => process.exit(0));
  }

  /** /metrics: the workers' metrics summed by prom-client's cluster aggregator, and the primary's own. */
  private async serveMetrics(hostPort: string): Promise<Server> {
    // Loaded here only: a primary without --metrics never loads prom-client.
    const { AggregatorRegistry, Counter, Gauge, Registry } = await import("prom-client");
    const aggregator = new AggregatorRegistry();
    const own = new Registry();
    const workersGauge = new Gauge({
      name: "filterctl_workers",
      help: "Worker processes running",
      registers: [own],
    });
    const restarts = new Counter({
      name: "filterctl_worker_restarts_total",
      help: "Workers started again after dying",
      registers: [own],
    });
    const server = createServer((req, res) => {
      if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found: try /metrics\n");
        return;
      }
      // Ordered before the aggregator's request on each worker's channel: the worker copies its source counters first.
      for (const worker of this.started.keys()) this.send(worker, { filterctl: "collect" });
      workersGauge.set(this.started.size);
      restarts.reset();
      restarts.inc(this.restarts);
      Promise.all([aggregator.clusterMetrics(), own.metrics()]).then(
        ([workers, mine]) =>
          res.writeHead(200, { "content-type": own.contentType }).end(`${workers}\n${mine}`),
        (error: unknown) => res.writeHead(500).end(String(error)),
      );
    });
    const colon = hostPort.lastIndexOf(":");
    const host = hostPort.slice(0, colon).replace(/^\[|\]$/g, "") || "127.0.0.1";
    const failure = await new Promise<NodeJS.ErrnoException | undefined>((done) => {
      server.once("error", done);
      server.listen(Number(hostPort.slice(colon + 1)), host, () => done(undefined));
    });
    if (failure !== undefined) throw new MetricsListenError(hostPort, failure);
    return server;
  }
}

/** A worker that could not start: serve exits with its code (2: the socket cannot be bound). */
export class WorkerStartError extends ConfigError {}
