/**
 * A private Sendmail 8.17 for end-to-end tests, run from Debian's sendmail-bin and sendmail-cf
 * UNPACKED (not installed: sendmail-bin conflicts with the postfix package the other tests
 * need). `scripts/install-test-deps.sh` downloads and unpacks them once into
 * $FILTERCTL_TEST_CACHE/sendmail (default /var/cache/filterctl-tests/sendmail); when that copy
 * is missing, `ensureSendmail()` runs the script.
 *
 * Each instance has its own .mc/.cf (built with m4 from the unpacked cf/ tree), queue directory
 * and hosts file, in a temporary directory. Nothing of the system is touched:
 * - With no DNS, Sendmail spends ~60 s canonicalising the short host name before it greets.
 *   Every Sendmail process runs in a private mount namespace (`unshare -m`) where /etc/hosts is
 *   bind-mounted from a file giving the host a dotted alias.
 * - `session()` speaks SMTP with `sendmail -bs` on stdin/stdout (the milter sees no IP
 *   address); `startDaemon()` runs `sendmail -bD` (foreground daemon) on a loopback port.
 * - Replies are awaited before the next command: pipelining ahead of the 220 greeting or of
 *   354 gives "554 5.5.0 SMTP protocol error".
 * - Delivery mode is queue-only: accepted mail stays in the queue, where `queued()` reads it
 *   (qf files: envelope and headers as Sendmail will send them).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Background, run } from "../e2e/processes.js";

export const SENDMAIL_ROOT = join(
  process.env.FILTERCTL_TEST_CACHE ?? "/var/cache/filterctl-tests",
  "sendmail",
);
export const SENDMAIL_BIN = join(SENDMAIL_ROOT, "usr/libexec/sendmail/sendmail");
const CF_DIR = join(SENDMAIL_ROOT, "usr/share/sendmail/cf");
const INSTALL_SCRIPT = fileURLToPath(new URL("../../scripts/install-test-deps.sh", import.meta.url));

/** Makes sure the unpacked Sendmail is there (running scripts/install-test-deps.sh if not). */
export async function ensureSendmail(): Promise<void> {
  if (existsSync(SENDMAIL_BIN) && existsSync("/usr/bin/m4")) return;
  const result = await run("bash", [INSTALL_SCRIPT], { timeoutMs: 600_000 });
  if (result.code !== 0 || !existsSync(SENDMAIL_BIN))
    throw new Error(
      `cannot get Sendmail (scripts/install-test-deps.sh, as root):\n${result.stdout}${result.stderr}`,
    );
}

export interface SendmailOptions {
  /** The filter's socket in Sendmail notation: `inet:PORT@127.0.0.1`. */
  milter: string;
  /** Port of the `-bD` daemon (only needed for startDaemon). */
  daemonPort?: number;
}

export interface SmtpReply {
  code: number;
  /** The last line as sent: `"452 4.2.2 Mailbox full"`. */
  last: string;
  lines: string[];
}

/** A message waiting in the queue (Sendmail's qf file). */
export interface QueuedMessage {
  id: string;
  sender: string;
  recipients: string[];
  /** Header fields as Sendmail will send them, unfolded to one value each. */
  headers: [string, string][];
}

/** One `sendmail -bs` SMTP session over the child's stdin/stdout. */
export class SendmailSession {
  private buffer = "";
  private pending: string[] = [];
  private readonly replies: SmtpReply[] = [];
  private wake: (() => void) | undefined;
  private closed = false;
  readonly transcript: string[] = [];

  constructor(private readonly child: ChildProcess) {
    child.stdout?.setEncoding("latin1").on("data", (text: string) => {
      this.buffer += text;
      for (;;) {
        const end = this.buffer.indexOf("\n");
        if (end === -1) break;
        const line = this.buffer.slice(0, end).replace(/\r$/, "");
        this.buffer = this.buffer.slice(end + 1);
        this.transcript.push(`<- ${line}`);
        this.pending.push(line);
        if (/^\d{3}(?: |$)/.test(line)) {
          this.replies.push({ code: Number(line.slice(0, 3)), last: line, lines: this.pending });
          this.pending = [];
        }
      }
      this.wake?.();
    });
    child.stderr?.setEncoding("latin1").on("data", (text: string) => {
      this.transcript.push(`!! ${text.trimEnd()}`);
    });
    child.once("close", () => {
      this.closed = true;
      this.wake?.();
    });
  }

  async read(timeoutMs = 20_000): Promise<SmtpReply> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0) {
      if (this.closed)
        throw new Error(`sendmail exited while a reply was awaited\n${this.transcript.join("\n")}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`no reply from sendmail within ${timeoutMs} ms\n${this.transcript.join("\n")}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
    return this.replies.shift() as SmtpReply;
  }

  async command(line: string): Promise<SmtpReply> {
    this.transcript.push(`-> ${line}`);
    this.child.stdin?.write(`${line}\r\n`);
    return this.read();
  }

  /** DATA, and after 354 (only then) the dot-stuffed message and its final dot. */
  async data(message: string): Promise<SmtpReply> {
    const go = await this.command("DATA");
    if (go.code !== 354) return go;
    const text = message
      .replace(/\r?\n/g, "\r\n")
      .split("\r\n")
      .map((line) => (line.startsWith(".") ? `.${line}` : line))
      .join("\r\n");
    this.transcript.push(`-> [message, ${text.length} bytes]`);
    this.child.stdin?.write(`${text.endsWith("\r\n") ? text : `${text}\r\n`}.\r\n`);
    return this.read();
  }

  async quit(): Promise<void> {
    if (!this.closed) await this.command("QUIT").catch(() => undefined);
    this.child.stdin?.end();
    if (!this.closed) await new Promise((resolve) => this.child.once("close", resolve));
  }

  kill(): void {
    if (!this.closed && this.child.pid !== undefined) {
      try {
        process.kill(-this.child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  }
}

function mc(dir: string, options: SendmailOptions): string {
  const q = (text: string) => `\`${text}'`;
  const lines = [
    `include(${q(`${CF_DIR}/m4/cf.m4`)})`,
    `OSTYPE(${q("linux")})`,
    `define(${q("confDOMAIN_NAME")}, ${q("mx.test.example")})`,
    `define(${q("confDONT_PROBE_INTERFACES")}, ${q("True")})`,
    `define(${q("confDELIVERY_MODE")}, ${q("queueonly")})`,
    `define(${q("confPID_FILE")}, ${q(join(dir, "sendmail.pid"))})`,
    `define(${q("QUEUE_DIR")}, ${q(join(dir, "queue"))})`,
    `define(${q("STATUS_FILE")}, ${q(join(dir, "sendmail.st"))})`,
    `define(${q("ALIAS_FILE")}, ${q(join(dir, "aliases"))})`,
    `define(${q("HELP_FILE")}, ${q(join(SENDMAIL_ROOT, "etc/mail/helpfile"))})`,
    `define(${q("confMILTER_LOG_LEVEL")}, ${q("20")})`,
    `define(${q("confTO_IDENT")}, ${q("0s")})`,
    `FEATURE(${q("nocanonify")})`,
    // Test only, loopback only: relay for anyone.
    `FEATURE(${q("promiscuous_relay")})`,
    `FEATURE(${q("accept_unresolvable_domains")})`,
    `DAEMON_OPTIONS(${q(`Family=inet, Name=MTA-test, Port=${options.daemonPort ?? 2526}, Addr=127.0.0.1`)})`,
    `INPUT_MAIL_FILTER(${q("filterctl")}, ${q(`S=${options.milter}, F=T, T=C:10s;S:10s;R:10s;E:5m`)})`,
    `define(${q("confMILTER_MACROS_EOM")}, ${q("{msg_id}, i")})`,
    `MAILER(${q("smtp")})`,
  ];
  return `${lines.map((line) => `${line}dnl`).join("\n")}\n`;
}

function unfold(lines: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (const line of lines) {
    const last = out[out.length - 1];
    if (/^[ \t]/.test(line) && last !== undefined) {
      last[1] += `\n${line}`;
      continue;
    }
    // H?flags?Name: value
    const match = /^H(?:\?[^?]*\?)?([^:]+):\s?(.*)$/.exec(line);
    if (match) out.push([match[1] as string, match[2] as string]);
  }
  return out;
}

export class SendmailInstance {
  private daemon: Background | undefined;

  private constructor(
    readonly dir: string,
    readonly options: SendmailOptions,
  ) {}

  get cf(): string {
    return join(this.dir, "sendmail.cf");
  }

  get queueDir(): string {
    return join(this.dir, "queue");
  }

  static async create(options: SendmailOptions): Promise<SendmailInstance> {
    await ensureSendmail();
    const dir = await mkdtemp(join(tmpdir(), "filterctl-sendmail-"));
    try {
      await mkdir(join(dir, "queue"), { mode: 0o700 });
      await chmod(join(dir, "queue"), 0o700);
      await writeFile(join(dir, "aliases"), "");
      const host = hostname();
      await writeFile(join(dir, "hosts"), `127.0.0.1 ${host}.test.example ${host} localhost\n`);
      await writeFile(join(dir, "sendmail.mc"), mc(dir, options));
      const built = await run("m4", [join(dir, "sendmail.mc")], { timeoutMs: 20_000 });
      if (built.code !== 0) throw new Error(`m4 failed: ${built.stderr}`);
      await writeFile(join(dir, "sendmail.cf"), built.stdout);
      return new SendmailInstance(dir, options);
    } catch (error) {
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  }

  /** The command line for a Sendmail process in its private mount namespace. */
  private command(args: string[]): [string, string[]] {
    const quoted = [SENDMAIL_BIN, "-C", this.cf, ...args]
      .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
      .join(" ");
    return [
      "unshare",
      ["-m", "sh", "-c", `mount --bind '${join(this.dir, "hosts")}' /etc/hosts && exec ${quoted}`],
    ];
  }

  /** A `sendmail -bs` session; resolves after the 220 greeting. */
  async session(): Promise<{ session: SendmailSession; greeting: SmtpReply }> {
    const [command, args] = this.command(["-bs", "-odq"]);
    const child = spawn(command, args, { detached: true, stdio: ["pipe", "pipe", "pipe"] });
    const session = new SendmailSession(child);
    try {
      return { session, greeting: await session.read(30_000) };
    } catch (error) {
      session.kill();
      throw error;
    }
  }

  /** `sendmail -bD` (daemon in the foreground) on 127.0.0.1:daemonPort; resolves once it greets. */
  async startDaemon(): Promise<void> {
    const port = this.options.daemonPort;
    if (port === undefined) throw new Error("no daemonPort");
    const [command, args] = this.command(["-bD", "-odq"]);
    this.daemon = new Background(command, args);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const probe = await run(
        "swaks",
        ["--server", `127.0.0.1:${port}`, "--quit-after", "CONNECT", "--timeout", "5"],
        {
          timeoutMs: 10_000,
        },
      );
      if (/<-\s+220 /.test(probe.stdout)) return;
      if (!this.daemon.running) throw new Error(`sendmail -bD exited:\n${this.daemon.output()}`);
      if (Date.now() > deadline) throw new Error(`sendmail -bD does not greet:\n${this.daemon.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Messages in the queue, oldest id first. */
  async queued(): Promise<QueuedMessage[]> {
    const names = (await readdir(this.queueDir)).filter((n) => n.startsWith("qf")).sort();
    return Promise.all(
      names.map(async (name) => {
        const lines = (await readFile(join(this.queueDir, name), "latin1")).split("\n");
        return {
          id: name.slice(2),
          sender: (lines.find((l) => l.startsWith("S")) ?? "").slice(1),
          recipients: lines.filter((l) => /^R[A-Z]*:/.test(l)).map((l) => l.replace(/^R[A-Z]*:/, "")),
          headers: unfold(lines.filter((l) => l.startsWith("H") || /^[ \t]/.test(l))),
        };
      }),
    );
  }

  async stop(): Promise<void> {
    await this.daemon?.stop();
    if (process.env.FILTERCTL_E2E_KEEP === "1")
      process.stderr.write(`kept the Sendmail instance in ${this.dir}\n`);
    else await rm(this.dir, { recursive: true, force: true });
  }
}
