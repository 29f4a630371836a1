/**
 * The real `filterctl serve` binary as a child process for end-to-end tests: its own process
 * group (stopped by that group, never by name), its JSON log parsed line by line as it comes.
 * `keep` drops lines a test does not need (a load test logs thousands of decisions a second).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { freePort } from "../e2e/processes.js";

export const FILTERCTL_BIN = fileURLToPath(new URL("../../bin/filterctl.js", import.meta.url));

export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

export interface ServeOptions {
  config: string;
  /** Milter socket; default: a free loopback port. */
  listen?: string;
  args?: string[];
  /** Which parsed log lines to keep (default: all). Dropped lines are still counted. */
  keep?: (line: LogLine) => boolean;
  env?: NodeJS.ProcessEnv;
}

export class ServeProcess {
  readonly lines: LogLine[] = [];
  /** Lines seen, kept or not. */
  seen = 0;
  /** Output that is not a JSON line (stderr, pretty logs, stack traces). */
  other = "";
  exitStatus: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private partial = "";

  private constructor(
    readonly child: ChildProcess,
    readonly listen: string,
    private readonly keep: (line: LogLine) => boolean,
  ) {
    child.stdout?.setEncoding("utf8").on("data", (text: string) => this.take(text));
    child.stderr?.setEncoding("utf8").on("data", (text: string) => {
      this.other += text;
    });
    this.exited = new Promise((resolve) => {
      child.once("close", (code: number | null, signal: NodeJS.Signals | null) => {
        this.exitStatus = { code, signal };
        resolve(this.exitStatus);
      });
      child.once("error", (error) => {
        this.other += `\n[spawn error: ${error.message}]`;
      });
    });
  }

  /** Starts `filterctl serve` and waits until it listens. */
  static async start(options: ServeOptions): Promise<ServeProcess> {
    const listen = options.listen ?? `inet:127.0.0.1:${await freePort()}`;
    const child = spawn(
      process.execPath,
      [FILTERCTL_BIN, "serve", "--config", options.config, "--listen", listen, ...(options.args ?? [])],
      { detached: true, stdio: ["ignore", "pipe", "pipe"], env: options.env ?? process.env },
    );
    const serve = new ServeProcess(child, listen, options.keep ?? (() => true));
    try {
      await serve.waitForLine((line) => line.msg === "milter listening", 15_000);
    } catch (error) {
      await serve.stop();
      throw error;
    }
    return serve;
  }

  /** `inet:127.0.0.1:PORT` as Postfix writes it. */
  get postfixSpec(): string {
    return this.listen;
  }

  /** The TCP port of an inet listen address. */
  get port(): number {
    return Number(/:(\d+)$/.exec(this.listen)?.[1] ?? /^inet:(\d+)@/.exec(this.listen)?.[1]);
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get running(): boolean {
    return this.exitStatus === undefined;
  }

  private take(text: string): void {
    const chunk = this.partial + text;
    const parts = chunk.split("\n");
    this.partial = parts.pop() ?? "";
    for (const part of parts) {
      if (!part.startsWith("{")) {
        if (part !== "") this.other += `${part}\n`;
        continue;
      }
      let line: LogLine;
      try {
        line = JSON.parse(part) as LogLine;
      } catch {
        this.other += `${part}\n`;
        continue;
      }
      this.seen++;
      if (this.keep(line)) this.lines.push(line);
    }
  }

  find(predicate: (line: LogLine) => boolean): LogLine | undefined {
    return this.lines.find(predicate);
  }

  /** Waits for a kept log line matching `predicate` (looking at every line since the start). */
  async waitForLine(predicate: (line: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    let from = 0;
    for (;;) {
      for (; from < this.lines.length; from++) {
        const line = this.lines[from] as LogLine;
        if (predicate(line)) return line;
      }
      if (!this.running)
        throw new Error(`filterctl serve exited (${JSON.stringify(this.exitStatus)}):\n${this.tail()}`);
      if (Date.now() > deadline)
        throw new Error(`no matching log line within ${timeoutMs} ms:\n${this.tail()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** The last kept lines and other output, for failure messages. */
  tail(count = 40): string {
    return `${this.lines
      .slice(-count)
      .map((line) => JSON.stringify(line))
      .join("\n")}\n--- other output ---\n${this.other.slice(-4000)}`;
  }

  /** Signals the process itself (not through npx or a shell). */
  signal(signal: NodeJS.Signals): void {
    if (this.running) process.kill(this.pid, signal);
  }

  async waitForExit(
    timeoutMs: number,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null } | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGTERM, then SIGKILL to the process group when it has not exited after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.signal("SIGTERM");
    if ((await this.waitForExit(graceMs)) === undefined) {
      try {
        process.kill(-this.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
      await this.waitForExit(5000);
    }
  }
}
