/**
 * `filterctl serve`: run the milter with the rules of the config file; reload on change and
 * on SIGHUP; on SIGTERM/SIGINT stop accepting, let connections in flight finish, exit 0
 * (shutdown.ts).
 */
import cluster from "node:cluster";
import { existsSync } from "node:fs";
import type { Server } from "node:http";
import { setFlagsFromString } from "node:v8";
import type { Logger } from "pino";
import { RESTART_SETTINGS, type RestartSettings } from "../config/types.js";
import { eventLoggerHandler } from "../engine/event-logger-handler.js";
import { JOURNAL_DEFAULTS, JournalWriter } from "../engine/journal/writer.js";
import type { Metrics } from "../engine/metrics.js";
import { rulesHandler } from "../engine/milter-handler.js";
import { checkRules, workersSetting } from "../engine/open-rules.js";
import { ConfigError, RulesRuntime, type RuntimeOptions, type ValidatedRules } from "../engine/service.js";
import { formatListenAddress, MilterServer, type MilterServerOptions } from "../milter/index.js";
import {
  isWorkerMessage,
  WORKER_RULES_ENV,
  WORKER_SLOT_ENV,
  type WorkerMessage,
  workerCount,
  workerJournalPath,
} from "./serve-worker-protocol.js";
import { stopOnSignals } from "./shutdown.js";

export interface ServeOptions {
  /** The rules file; undefined = ./rules.yaml when it exists. */
  config?: string;
  listen?: string;
  metrics?: string;
  shutdownTimeoutMs?: number;
  maxConnections?: number;
  /** The journal file; wins over the config's journal.path. */
  journal?: string;
  /** Processes serving the socket; undefined = the file's `workers`, else 1. */
  workers?: number | "auto";
}

const DEFAULT_LISTEN = "inet:127.0.0.1:8890";

function runtimeOptions(options: ServeOptions, metrics: Metrics | undefined): RuntimeOptions {
  const fixed: (keyof RestartSettings)[] = [];
  if (options.listen !== undefined) fixed.push("listen");
  if (options.maxConnections !== undefined) fixed.push("maxConnections");
  if (options.workers !== undefined) fixed.push("workers");
  if (options.journal !== undefined) fixed.push("journal");
  // A worker's restart settings are the primary's: it reports their changes, once.
  if (cluster.isWorker) fixed.push(...(Object.keys(RESTART_SETTINGS) as (keyof RestartSettings)[]));
  return metrics === undefined ? { fixed } : { fixed, metrics };
}

/**
 * The journal --journal or the file's `journal:` names (read once: a reload does not change it).
 * Records it cannot write are counted and logged; mail flows on.
 */
function openJournal(
  options: ServeOptions,
  runtime: RulesRuntime | undefined,
  metrics: Metrics | undefined,
  logger: Logger,
): JournalWriter | undefined {
  const configured = runtime?.config.journal;
  const named = options.journal ?? configured?.path;
  if (named === undefined) return undefined;
  const path = cluster.isWorker ? workerJournalPath(named, process.env[WORKER_SLOT_ENV]) : named;
  const writer = new JournalWriter(
    {
      path,
      maxSizeBytes: configured?.maxSizeBytes ?? JOURNAL_DEFAULTS.maxSizeBytes,
      keep: configured?.keep ?? JOURNAL_DEFAULTS.keep,
    },
    {
      lost(records, error, log) {
        metrics?.journalErrors.inc(Math.max(records, 1));
        if (log)
          logger.error(
            { journal: path, err: error },
            "cannot write the journal: mail flows on, unjournalled",
          );
      },
    },
  );
  logger.info(
    { journal: path, maxSize: writer.settings.maxSizeBytes, keep: writer.settings.keep },
    "journal open",
  );
  return writer;
}

/**
 * With more than one worker this process becomes the cluster primary and serves nothing itself
 * (answers true); with one (the default), serve runs here as it always did.
 */
async function servePrimary(
  options: ServeOptions,
  configPath: string | undefined,
  logger: Logger,
): Promise<boolean> {
  // Only the `workers:` setting first: with one process (the default) the rules are then loaded
  // once, by the single-process path, not checked and compiled here as well.
  const wanted = options.workers ?? (configPath === undefined ? undefined : await workersSetting(configPath));
  const count = workerCount(wanted ?? 1);
  if (count <= 1) return false;
  const checked = configPath === undefined ? undefined : await checkRules(configPath, true);
  // An invalid file is reported by the single-process path, as before.
  const config = checked?.kind === "checked" ? checked.config : undefined;
  if (checked !== undefined && config === undefined) return false;
  const fixed = runtimeOptions(options, undefined).fixed ?? [];
  const { ServePrimary } = await import("./serve-workers.js");
  const primary = new ServePrimary(
    {
      count,
      configPath,
      config,
      text: checked?.kind === "checked" ? checked.file.text : undefined,
      listen: options.listen ?? config?.listen ?? DEFAULT_LISTEN,
      metrics: options.metrics,
      fixed,
      shutdownTimeoutMs: () => options.shutdownTimeoutMs ?? config?.shutdownTimeoutMs ?? 30_000,
    },
    logger,
  );
  await primary.start();
  return true;
}

/**
 * What a worker's primary sends of the rules file: the content it validated, first at the
 * worker's start, then with each reload. Listening from the worker's first moment: a reload sent
 * while the worker still loads is not lost, it is applied once the worker serves.
 */
class RulesFromPrimary {
  readonly first: Promise<ValidatedRules>;
  /** The latest rules sent, and its reload's reason (undefined: the first rules, no reload). */
  private latest: { validated: ValidatedRules; reason?: string } | undefined;
  private resolveFirst: (validated: ValidatedRules) => void = () => {};

  constructor() {
    this.first = new Promise((resolve) => {
      this.resolveFirst = resolve;
    });
    process.on("message", this.listen);
    tellPrimary({ filterctl: "want-rules" });
  }

  private readonly listen = (message: unknown): void => {
    if (!isWorkerMessage(message)) return;
    if (message.filterctl === "rules") {
      const validated = { text: message.text, generation: message.generation };
      this.latest = { validated };
      this.resolveFirst(validated);
    } else if (message.filterctl === "reload") {
      this.latest = {
        validated: { text: message.text, generation: message.generation },
        reason: message.reason,
      };
    }
  };

  /** Stops listening; answers a reload that came after the first rules, if any. */
  stop(): { validated: ValidatedRules; reason: string } | undefined {
    process.off("message", this.listen);
    const latest = this.latest;
    return latest?.reason === undefined ? undefined : { validated: latest.validated, reason: latest.reason };
  }
}

/** A worker: reloads and metrics scrapes come from the primary; a start failure is told to it. */
async function asWorker(
  runtime: RulesRuntime | undefined,
  metrics: Metrics | undefined,
  logger: Logger,
  fromPrimary: RulesFromPrimary | undefined,
): Promise<void> {
  if (metrics !== undefined) {
    const { AggregatorRegistry } = await import("prom-client");
    // Constructing one installs the listener that answers the primary's requests for metrics.
    new AggregatorRegistry();
    AggregatorRegistry.setRegistries([metrics.registry]);
  }
  process.on("message", (message: unknown) => {
    if (!isWorkerMessage(message)) return;
    if (message.filterctl === "reload")
      void runtime?.reload(message.reason, { text: message.text, generation: message.generation });
    if (message.filterctl === "reload-refused") metrics?.reloads.inc({ result: "failure" });
    if (message.filterctl === "collect") metrics?.beforeScrape?.();
  });
  const missed = fromPrimary?.stop();
  if (missed !== undefined) void runtime?.reload(missed.reason, missed.validated);
  logger.info({}, "worker serving");
  tellPrimary({ filterctl: "ready" });
}

function tellPrimary(message: WorkerMessage): void {
  process.send?.(message);
}

/**
 * V8 grows its young generation (serve's start took it from 2 to 16 MB) while most of what is allocated
 * survives, as it does while serve loads its modules and compiles the rules, and an idle process
 * never shrinks it back: 12 MB of serve's idle RSS (`npm run bench:rss`). So
 * bin/filterctl.js keeps it from growing (growth factor 1) from before the first import, and it
 * may grow again once serve listens: V8 reads the factor each time it decides to grow, so under
 * load the young generation is sized as it always was (2 is V8's default). Not a
 * `--max-semi-space-size` flag: that one is read once, when Node starts, and would bound the
 * young generation under load too.
 */
function youngGenerationMayGrow(): void {
  setFlagsFromString("--semi-space-growth-factor=2");
}

export async function serve(options: ServeOptions, parent: Logger): Promise<MilterServer | undefined> {
  // A worker's lines say which process wrote them.
  const logger = cluster.isWorker ? parent.child({ worker: cluster.worker?.id, pid: process.pid }) : parent;
  try {
    const configPath = cluster.isWorker
      ? process.env[WORKER_RULES_ENV] || undefined
      : (options.config ?? (existsSync("rules.yaml") ? "rules.yaml" : undefined));
    if (cluster.isPrimary && (await servePrimary(options, configPath, logger))) return undefined;
    return await serveHere(options, configPath, logger);
  } catch (error) {
    if (cluster.isWorker) {
      const code = error instanceof ConfigError ? error.exitCode : 2;
      tellPrimary({ filterctl: "failed", code, message: (error as Error).message });
    }
    throw error;
  } finally {
    youngGenerationMayGrow();
  }
}

/** The line that tells a postmaster what to put in main.cf or sendmail.mc. */
function logReady(server: MilterServer, configPath: string | undefined, logger: Logger): void {
  const bound = server.address;
  if (bound === undefined) return;
  const postfix = bound.kind === "unix" ? `unix:${bound.path}` : `inet:${bound.host}:${bound.port}`;
  logger.info(
    {
      postfix: `smtpd_milters = ${postfix}`,
      sendmail: `INPUT_MAIL_FILTER(\`filterctl', \`S=${formatListenAddress(bound)}, F=T, T=C:10s;S:10s;R:30s;E:5m')`,
      try: `npx filterctl dry-run --config ${configPath ?? "rules.yaml"} --client-ip 203.0.113.7 --from someone@example.com --rcpt postmaster@example.org`,
    },
    "ready: point the MTA here, or try a transaction with dry-run",
  );
}

async function serveHere(
  options: ServeOptions,
  configPath: string | undefined,
  logger: Logger,
): Promise<MilterServer> {
  // prom-client (13 MB of RSS) is loaded only when metrics are served.
  const metrics =
    options.metrics === undefined
      ? undefined
      : new (await import("../engine/metrics.js")).Metrics({ processMetrics: true });
  let runtime: RulesRuntime | undefined;
  const serverOptions: MilterServerOptions = { logger, sharedSocket: cluster.isWorker };
  let listen = options.listen ?? DEFAULT_LISTEN;

  // A worker loads the content its primary validated, not the file, which may have changed since.
  const fromPrimary = cluster.isWorker && configPath !== undefined ? new RulesFromPrimary() : undefined;
  if (configPath === undefined) {
    logger.warn({}, "no rules file (--config, or ./rules.yaml): every message passes, each event is logged");
  } else {
    const validated = fromPrimary === undefined ? undefined : await fromPrimary.first;
    runtime = await RulesRuntime.start(configPath, logger, runtimeOptions(options, metrics), validated);
    // What only a restart applies is read here, once; the rules handler reads the rest (the
    // event deadline, the error reply) from the rules each transaction uses.
    const config = runtime.config;
    listen = options.listen ?? config.listen ?? DEFAULT_LISTEN;
    serverOptions.maxConnections = config.maxConnections;
    serverOptions.maxBufferedInput = config.maxBufferedInput;
    serverOptions.socketMode = config.listenMode;
  }
  if (options.maxConnections !== undefined) serverOptions.maxConnections = options.maxConnections;
  // Read at SIGTERM: a reload may have changed it.
  const shutdownTimeoutMs = () => options.shutdownTimeoutMs ?? runtime?.config.shutdownTimeoutMs ?? 30_000;

  const active = runtime;
  const journal = openJournal(options, runtime, metrics, logger);
  const server = new MilterServer(
    active === undefined
      ? () => eventLoggerHandler(logger)
      : rulesHandler(active, journal === undefined ? {} : { journal }),
    serverOptions,
  );
  if (metrics !== undefined) {
    server.on("open", () => {
      metrics.sessions.inc();
      metrics.activeConnections.inc();
    });
    server.on("close", () => metrics.activeConnections.dec());
    server.on("refused", () => metrics.refusedConnections.inc());
    metrics.beforeScrape = () => active?.collectCounters();
  }
  // Metrics are bound first: an address that cannot be bound stops serve before the MTA can
  // reach a milter that would then exit.
  let metricsServer: Server | undefined;
  try {
    if (metrics !== undefined && options.metrics !== undefined && cluster.isPrimary) {
      metricsServer = await metrics.listen(options.metrics);
      metricsServer.on("error", (error) => logger.error({ err: error.message }, "metrics socket error"));
      logger.info({ metrics: `http://${options.metrics}/metrics` }, "metrics listening");
    }
    await server.listen(listen);
  } catch (error) {
    metricsServer?.close();
    await runtime?.close();
    throw error;
  }
  if (cluster.isWorker) await asWorker(runtime, metrics, logger, fromPrimary);
  else runtime?.watchFiles();
  if (cluster.isPrimary) logReady(server, configPath, logger);

  stopOnSignals({ server, runtime, metricsServer, shutdownTimeoutMs, logger, ...(journal && { journal }) });
  process.on("SIGUSR1", () => logger.info({ signal: "SIGUSR1" }, "SIGUSR1 ignored: no debugger is opened"));
  process.on("SIGHUP", () => {
    if (cluster.isWorker) logger.info({}, "SIGHUP to a worker ignored: send it to the main process");
    else if (runtime === undefined) logger.info({}, "SIGHUP: no rules file to reload");
    else void runtime.reload("SIGHUP");
  });
  return server;
}
