/**
 * A private redis-server for tests: a free port on 127.0.0.1, a temporary working directory, no
 * persistence (`--save "" --appendonly no`), never the system's Redis (`scripts/install-test-deps.sh`
 * installs the package; whether Debian's own service runs on 6379 does not matter here).
 *
 * redis-server runs in the foreground as our child, so its exit is observed and reaped; signals go
 * to that child's PID, never by name. `kill()` + `start()` again gives a crash and a restart on the
 * same port (what a store must survive without being recreated); `freeze()` a server that accepts
 * connections but answers nothing.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./slapd.js";

export const REDIS_SERVER = "/usr/bin/redis-server";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Servers still running when the test process exits are killed (by their PID). */
const running = new Set<RedisServer>();
process.once("exit", () => {
  for (const server of running) server.killNow();
});

/** Sends one inline command and answers the first reply line ("" when nothing came in `ms`). */
export function ask(port: number, command: string, ms = 1000): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    let reply = "";
    const done = (answer: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(""), ms);
    socket.once("error", () => done(""));
    socket.on("data", (chunk) => {
      reply += chunk.toString("utf8");
      const end = reply.indexOf("\r\n");
      if (end >= 0) done(reply.slice(0, end));
    });
    socket.write(`${command}\r\n`);
  });
}

export interface RedisServerOptions {
  /** The port (default: a free one). */
  port?: number;
  /** Run as a Sentinel watching this master. */
  sentinelOf?: { name: string; port: number };
  /** Cluster mode (the test assigns the slots: CLUSTER ADDSLOTSRANGE 0 16383 makes one node a cluster). */
  cluster?: boolean;
}

export class RedisServer {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private log = "";

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly options: RedisServerOptions,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** redis-server's PID while it runs, else 0. */
  get pid(): number {
    return this.isRunning ? (this.child?.pid ?? 0) : 0;
  }

  get isRunning(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts on a free port, or on `port` (one attempt: a store may already be waiting for it). */
  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const { port } = options;
    if (!existsSync(REDIS_SERVER))
      throw new Error(`${REDIS_SERVER} is missing: run scripts/install-test-deps.sh (as root)`);
    const dir = await mkdtemp(join(tmpdir(), "filterctl-redis-"));
    // A free port can be taken by someone else before redis-server binds it: try a few.
    let lastError: unknown;
    for (let attempt = 0; attempt < (port === undefined ? 5 : 1); attempt++) {
      const server = new RedisServer(dir, port ?? (await freePort()), options);
      try {
        await server.launch();
        return server;
      } catch (error) {
        lastError = error;
        await server.kill();
      }
    }
    await rm(dir, { recursive: true, force: true });
    throw lastError;
  }

  /** Starts redis-server on this instance's port (again, after `kill`) and waits until it answers PING. */
  async launch(): Promise<void> {
    if (this.isRunning) throw new Error("redis-server is already running");
    this.log = "";
    const args = await this.arguments();
    const child = spawn(REDIS_SERVER, args, { stdio: ["ignore", "pipe", "pipe"] });
    const collect = (chunk: Buffer) => {
      this.log = (this.log + chunk.toString("utf8")).slice(-4000);
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    child.once("error", () => {});
    this.child = child;
    this.exited = new Promise((resolveExit) => {
      if (child.exitCode !== null || child.signalCode !== null) resolveExit();
      else child.once("exit", () => resolveExit());
    });
    running.add(this);
    child.once("exit", () => running.delete(this));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (!this.isRunning) throw new Error(`redis-server exited at start:\n${this.log}`);
      if ((await ask(this.port, "PING", 500)) === "+PONG") return;
      if (Date.now() > deadline) throw new Error(`redis-server did not answer within 10 s:\n${this.log}`);
      await sleep(20);
    }
  }

  /** A Sentinel reads (and rewrites) a configuration file; a data server takes everything as options. */
  private async arguments(): Promise<string[]> {
    const common = ["--port", String(this.port), "--bind", "127.0.0.1", "--daemonize", "no", "--logfile", ""];
    const { sentinelOf } = this.options;
    if (sentinelOf !== undefined) {
      const conf = join(this.dir, `sentinel-${this.port}.conf`);
      const monitor = `sentinel monitor ${sentinelOf.name} 127.0.0.1 ${sentinelOf.port} 1\n`;
      await writeFile(conf, `dir ${this.dir}\n${monitor}`);
      return [conf, "--sentinel", ...common];
    }
    const data = ["--dir", this.dir, "--save", "", "--appendonly", "no"];
    if (this.options.cluster) {
      data.push(
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        join(this.dir, `nodes-${this.port}.conf`),
      );
      // A node that never met another does not know its own address: CLUSTER SLOTS would say "".
      data.push("--cluster-announce-ip", "127.0.0.1");
    }
    return [...common, ...data];
  }

  /** Sends one command to the server (inline syntax: no spaces inside arguments). */
  command(command: string): Promise<string> {
    return ask(this.port, command);
  }

  private signal(signal: NodeJS.Signals): void {
    if (this.isRunning) this.child?.kill(signal);
  }

  /** SIGKILL (a crash), and wait until it is gone. */
  async kill(): Promise<void> {
    if (!this.isRunning) return;
    this.signal("SIGCONT");
    this.signal("SIGKILL");
    await this.exited;
  }

  /** SIGSTOP: connections stay open (the kernel still accepts new ones) but nothing answers. */
  freeze(): void {
    this.signal("SIGSTOP");
  }

  thaw(): void {
    this.signal("SIGCONT");
  }

  /** Synchronous last resort (process exit). */
  killNow(): void {
    try {
      this.signal("SIGKILL");
    } catch {}
  }

  /** Everything redis-server printed lately. */
  output(): string {
    return this.log;
  }

  /** Stops redis-server and removes its directory. */
  async destroy(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }
}
