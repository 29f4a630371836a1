/**
 * `filterctl serve`: run the milter until SIGTERM/SIGINT, then drain and exit 0.
 */
import type { Logger } from "pino";
import { MilterServer } from "../milter/index.js";
import { eventLoggerHandler } from "./event-logger-handler.js";

export interface ServeOptions {
  listen: string;
  shutdownTimeoutMs: number;
  maxConnections: number;
}

export async function serve(options: ServeOptions, logger: Logger): Promise<MilterServer> {
  const server = new MilterServer(() => eventLoggerHandler(logger), {
    logger,
    maxConnections: options.maxConnections,
  });
  await server.listen(options.listen);

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, connections: server.activeConnections }, "stopping: no new connections");
    void server.shutdown(options.shutdownTimeoutMs).then(({ cut }) => {
      logger.info({ cut }, "stopped");
      logger.flush(() => process.exit(0));
    });
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("SIGHUP", () => logger.info({}, "SIGHUP: no rules file to reload yet"));
  return server;
}
