/**
 * `filterctl quota-server [--config FILE] [--listen HOST:PORT]`: the back-end quota HTTP
 * service (SPEC "Back-end quota service"), answering from the maildir or mbox source named by
 * `quota_server.source`. Listens on --listen, else `quota_server.listen`, else 127.0.0.1:8025.
 * Logs JSON lines; SIGTERM or SIGINT stops it (requests in flight finish) and it exits 0.
 * Exit 1: the configuration is invalid or has no `quota_server`; 2: unreadable file, bad
 * --listen, or the address cannot be bound.
 */
import { createServer } from "node:http";
import type { Logger } from "pino";
import { withDeadline } from "../common/deadline.js";
import { DEFAULT_QUOTA_SERVER_LISTEN } from "../config/load.js";
import type { SourceConfig } from "../config/types.js";
import { parseHostPort } from "../engine/metrics-address.js";
import {
  type CheckedRules,
  checkRules,
  EXIT_INVALID,
  EXIT_USAGE,
  openSources,
} from "../engine/open-rules.js";
import { createQuotaRequestHandler } from "../sources/quota-service.js";
import type { SourceRegistry } from "../sources/registry.js";
import type { QuotaSource } from "../sources/types.js";
import { reportOpenFailure } from "./diagnostics-output.js";
import { createLogger, type LogFormat } from "./logging.js";

export interface QuotaServerOptions {
  config: string;
  listen?: string;
  logFormat: LogFormat;
}

/** How long SIGTERM waits for requests in flight before closing their connections. */
const DRAIN_MS = 5000;

/** The source `quota_server.source` names (the configuration checked it is one the service can answer from). */
function quotaSourceOf(checked: CheckedRules): SourceConfig | undefined {
  const settings = checked.config.quotaServer;
  if (settings === undefined) {
    process.stderr.write(
      `${checked.file.path}: error: no 'quota_server' section; add quota_server: {source: NAME} naming a maildir or mbox source\n`,
    );
    return undefined;
  }
  return checked.config.sources.get(settings.source);
}

/** Runs the service; resolves with an exit code when it cannot start, else once it listens (undefined). */
export async function quotaServerCommand(options: QuotaServerOptions): Promise<number | undefined> {
  if (options.listen !== undefined && parseHostPort(options.listen) === undefined) {
    process.stderr.write(`filterctl: --listen '${options.listen}': expected HOST:PORT like 127.0.0.1:8025\n`);
    return EXIT_USAGE;
  }
  const checked = await checkRules(options.config);
  if (checked.kind !== "checked") return reportOpenFailure(checked);
  const sourceConfig = quotaSourceOf(checked);
  if (sourceConfig === undefined) return EXIT_INVALID;
  const listen = options.listen ?? checked.config.quotaServer?.listen ?? DEFAULT_QUOTA_SERVER_LISTEN;
  const address = parseHostPort(listen);
  if (address === undefined) {
    process.stderr.write(`filterctl: listen '${listen}': expected HOST:PORT like 127.0.0.1:8025\n`);
    return EXIT_USAGE;
  }

  const logger = createLogger(options.logFormat);
  const opened = await openSources(checked, {
    only: (source) => source === sourceConfig,
    // A maildir without maildirsize or limit is reported with its real usage, not zeros.
    registry: { logger, quotaService: true },
  });
  if (opened.kind !== "opened") return reportOpenFailure(opened);
  const registry = opened.registry;
  const source = registry.source(sourceConfig.name) as QuotaSource;
  const handler = createQuotaRequestHandler({
    source,
    sourceName: sourceConfig.name,
    timeoutMs: sourceConfig.timeoutMs,
    logger,
  });
  const server = createServer(
    { requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 5000 },
    (req, res) => {
      void handler(req, res);
    },
  );
  server.maxHeadersCount = 50;

  const bound = await listenOn(server, address);
  if (bound !== undefined) {
    process.stderr.write(`filterctl: cannot listen on ${listen}: ${bound.code ?? bound.message}\n`);
    await registry.close();
    return EXIT_USAGE;
  }
  server.on("error", (error) => logger.error({ err: error.message }, "quota server error"));
  logger.info(
    { listen, source: sourceConfig.name, type: sourceConfig.type, pid: process.pid },
    "quota server listening",
  );
  installStop(server, registry, logger);
  return undefined;
}

/** Starts listening; the error when it cannot. */
function listenOn(
  server: ReturnType<typeof createServer>,
  address: { host: string; port: number },
): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    server.once("error", resolve);
    server.listen(address.port, address.host, () => {
      server.off("error", resolve);
      resolve(undefined);
    });
  });
}

function installStop(
  server: ReturnType<typeof createServer>,
  registry: SourceRegistry,
  logger: Logger,
): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "stopping: no new requests");
    const closed = new Promise<void>((done) => server.close(() => done()));
    server.closeIdleConnections();
    const drained = withDeadline(closed, {
      ms: DRAIN_MS,
      onTimeout: () => {
        server.closeAllConnections();
        return closed;
      },
      unref: true,
    });
    void drained.then(() =>
      registry.close().finally(() => {
        logger.info({}, "stopped");
        logger.flush(() => process.exit(0));
      }),
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("SIGHUP", () =>
    logger.info({}, "SIGHUP: the quota server reads its configuration at start only"),
  );
}
