import {
  type ListenAddress,
  MilterClient,
  type MilterHandler,
  type MilterLogger,
  MilterServer,
  type MilterServerOptions,
} from "../../src/milter/index.js";

export interface LogEntry {
  level: keyof MilterLogger;
  message: string;
  fields: Record<string, unknown>;
}

export function recordingLogger(): { logger: MilterLogger; entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at =
    (level: keyof MilterLogger) =>
    (fields: object, message: string): void => {
      entries.push({ level, message, fields: fields as Record<string, unknown> });
    };
  return { logger: { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") }, entries };
}

export interface TestServer {
  server: MilterServer;
  address: ListenAddress;
  entries: LogEntry[];
  connect(replyTimeoutMs?: number): Promise<MilterClient>;
  stop(): Promise<void>;
}

/** Starts a milter on an ephemeral loopback port with a fresh handler per connection. */
export async function startServer(
  createHandler: () => MilterHandler,
  options: MilterServerOptions = {},
): Promise<TestServer> {
  const { logger, entries } = recordingLogger();
  const server = new MilterServer(createHandler, { logger, ...options });
  const address = await server.listen({ kind: "tcp", host: "127.0.0.1", port: 0, family: 4 });
  return {
    server,
    address,
    entries,
    connect: (replyTimeoutMs = 5000) => MilterClient.connect(address, replyTimeoutMs),
    stop: async () => {
      await server.shutdown(0);
    },
  };
}

export function waitFor(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (condition()) return resolve();
      if (Date.now() > deadline) return reject(new Error("condition not met in time"));
      setTimeout(tick, 5);
    };
    tick();
  });
}

export const CLIENT = {
  hostname: "client.example",
  family: "inet",
  port: 4242,
  address: "192.0.2.7",
} as const;
