import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createServer } from "node:net";

export const BIN = new URL("../../bin/filterctl.js", import.meta.url).pathname;

export function runCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", timeout: 20_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address !== "object") throw new Error("no port");
  return address.port;
}

export interface RunningCli {
  child: ChildProcess;
  lines: () => Record<string, unknown>[];
  stdout: () => string;
  waitForLine(
    predicate: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  exit: Promise<number | null>;
}

/** Starts `filterctl` in its own process group and parses its JSON log lines. */
export function startCli(args: string[], options: { cwd?: string } = {}): RunningCli {
  const child = spawn(process.execPath, [BIN, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
    ...options,
  });
  let out = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    out += chunk.toString("utf8");
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    out += chunk.toString("utf8");
  });
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const lines = () =>
    out
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    child,
    lines,
    stdout: () => out,
    exit,
    waitForLine(predicate, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      return new Promise((resolve, reject) => {
        const tick = () => {
          const found = lines().find(predicate);
          if (found) return resolve(found);
          if (Date.now() > deadline) return reject(new Error(`no matching log line; output:\n${out}`));
          setTimeout(tick, 20);
        };
        tick();
      });
    },
  };
}
