/**
 * A private Postfix instance for end-to-end tests: its own configuration, queue and data
 * directories in a temporary directory, smtpd on a free loopback port with the milter under
 * test, relaying every message to Postfix's `smtp-sink`, which writes each delivered message
 * to a file we can read. Nothing of the system's Postfix is used or touched.
 */
import { closeSync, openSync, readFileSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Background, freePort, run } from "./processes.js";

export interface PostfixOptions {
  /** The `smtpd_milters` value, e.g. `inet:127.0.0.1:8890`. */
  milter: string;
  /** More main.cf settings. */
  main?: Record<string, string>;
}

/** A message as smtp-sink stored it. */
export interface DeliveredMessage {
  file: string;
  raw: string;
  /** Envelope as smtp-sink saw it (from its X-Mail-Args / X-Rcpt-Args records). */
  mailFrom: string;
  recipients: string[];
  /** The message's own header fields, in order, unfolded (smtp-sink's records left out). */
  headers: [string, string][];
  body: string;
}

export interface QueueEntry {
  queue_name: string;
  queue_id: string;
  sender: string;
  recipients: { address: string; delay_reason?: string }[];
}

const HOST = "127.0.0.1";

async function postfixIds(): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile("/etc/passwd", "utf8");
  const entry = passwd.split("\n").find((line) => line.startsWith("postfix:"));
  const fields = entry?.split(":");
  if (fields === undefined || fields.length < 4)
    throw new Error("no 'postfix' user: run scripts/install-test-deps.sh");
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

function unfold(lines: string[]): [string, string][] {
  const fields: [string, string][] = [];
  for (const line of lines) {
    const last = fields[fields.length - 1];
    if (/^[ \t]/.test(line) && last !== undefined) {
      last[1] += `\n${line}`;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    fields.push([line.slice(0, colon), line.slice(colon + 1).replace(/^ /, "")]);
  }
  return fields;
}

/** Parses smtp-sink's dump format: its own records and Received line, then the message. */
export function parseSinkFile(file: string, raw: string): DeliveredMessage {
  const lines = raw.replace(/\r\n/g, "\n").split("\n");
  const blank = lines.indexOf("");
  const all = unfold(lines.slice(0, blank === -1 ? lines.length : blank));
  const sinkReceived = all.findIndex(([name, value]) => name === "Received" && value.includes("(smtp-sink)"));
  const records = all.slice(0, sinkReceived + 1);
  return {
    file,
    raw,
    mailFrom: records.find(([name]) => name === "X-Mail-Args")?.[1] ?? "",
    recipients: records
      .filter(([name]) => name === "X-Rcpt-Args")
      .map(([, value]) => value.split(" ")[0] ?? ""),
    headers: all.slice(sinkReceived + 1),
    body: blank === -1 ? "" : lines.slice(blank + 1).join("\n"),
  };
}

/** Waits until a TCP port on loopback answers with an SMTP greeting. */
async function waitForGreeting(port: number, timeoutMs: number, isAlive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const greeted = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: HOST, port });
      let text = "";
      const done = (ok: boolean) => {
        socket.destroy();
        resolve(ok);
      };
      socket.setTimeout(2000, () => done(false));
      socket.on("data", (chunk: Buffer) => {
        text += chunk.toString("latin1");
        if (/^220[ -]/.test(text)) {
          socket.end("QUIT\r\n");
          done(true);
        } else if (text.includes("\n")) {
          done(false);
        }
      });
      socket.on("error", () => done(false));
    });
    if (greeted) return;
    if (!isAlive()) throw new Error(`the server on port ${port} exited before greeting`);
    if (Date.now() > deadline) throw new Error(`no SMTP greeting on ${HOST}:${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export class PostfixInstance {
  private stopped = false;

  private constructor(
    readonly dir: string,
    readonly smtpPort: number,
    readonly sinkPort: number,
    private readonly master: Background,
    private readonly sink: Background,
  ) {}

  get configDir(): string {
    return join(this.dir, "conf");
  }

  get sinkDir(): string {
    return join(this.dir, "sink");
  }

  static async start(options: PostfixOptions): Promise<PostfixInstance> {
    const { uid, gid } = await postfixIds();
    const dir = await mkdtemp(join(tmpdir(), "filterctl-postfix-"));
    // mkdtemp makes it 0700; Postfix's daemons run as 'postfix' and must reach the queue.
    await chmod(dir, 0o755);
    const conf = join(dir, "conf");
    for (const sub of ["conf", "queue", "data", "sink"]) await mkdir(join(dir, sub), { mode: 0o755 });
    await chown(join(dir, "data"), uid, gid);
    await chown(join(dir, "sink"), uid, gid);
    const smtpPort = await freePort();
    let sinkPort = await freePort();
    while (sinkPort === smtpPort) sinkPort = await freePort();

    const main: Record<string, string> = {
      compatibility_level: "3.6",
      queue_directory: join(dir, "queue"),
      data_directory: join(dir, "data"),
      myhostname: "mx.test.example",
      mydestination: "",
      inet_interfaces: HOST,
      inet_protocols: "ipv4",
      mynetworks: "127.0.0.0/8",
      smtpd_relay_restrictions: "permit_mynetworks, reject",
      relayhost: `[${HOST}]:${sinkPort}`,
      alias_maps: "",
      alias_database: "",
      maillog_file: "/dev/stdout",
      smtpd_milters: options.milter,
      non_smtpd_milters: "",
      milter_protocol: "6",
      milter_default_action: "tempfail",
      milter_connect_timeout: "5s",
      milter_command_timeout: "10s",
      milter_content_timeout: "10s",
      smtpd_error_sleep_time: "0",
      smtpd_soft_error_limit: "100",
      smtpd_hard_error_limit: "200",
      smtp_tls_security_level: "none",
      smtpd_tls_security_level: "none",
      ...options.main,
    };
    await writeFile(
      join(conf, "main.cf"),
      `${Object.entries(main)
        .map(([key, value]) => `${key} = ${value}`)
        .join("\n")}\n`,
    );
    // Only the services this test needs; no chroot (the queue is in a temporary directory).
    const services = [
      `${HOST}:${smtpPort} inet n - n - - smtpd`,
      "cleanup unix n - n - 0 cleanup",
      "qmgr unix n - n 300 1 qmgr",
      "rewrite unix - - n - - trivial-rewrite",
      "bounce unix - - n - 0 bounce",
      "defer unix - - n - 0 bounce",
      "trace unix - - n - 0 bounce",
      "verify unix - - n - 1 verify",
      "smtp unix - - n - - smtp",
      "relay unix - - n - - smtp",
      "error unix - - n - - error",
      "retry unix - - n - - error",
      "discard unix - - n - - discard",
      "anvil unix - - n - 1 anvil",
      "scache unix - - n - 1 scache",
      "proxymap unix - - n - - proxymap",
      "postlog unix-dgram n - n - 1 postlogd",
    ];
    await writeFile(join(conf, "master.cf"), `${services.join("\n")}\n`);

    // smtp-sink drops root after binding; every transaction goes to sink/msg.<random hex>.
    const sink = new Background("smtp-sink", [
      "-u",
      "postfix",
      "-4",
      "-d",
      `${join(dir, "sink")}/msg.`,
      `${HOST}:${sinkPort}`,
      "64",
    ]);
    // `start-fg` with maillog_file = /dev/stdout: Postfix logs to our stdout. That must be a
    // file: Node's 'pipe' stdio is a socket, which /dev/stdout cannot be opened on (postfix
    // then exits 1 without a word).
    const logFile = join(dir, "postfix.log");
    const logFd = openSync(logFile, "a");
    let master: Background;
    try {
      master = new Background("postfix", ["-c", conf, "start-fg"], { stdio: ["ignore", logFd, logFd] });
    } finally {
      closeSync(logFd);
    }
    const instance = new PostfixInstance(dir, smtpPort, sinkPort, master, sink);
    try {
      await waitForGreeting(sinkPort, 10_000, () => sink.running);
      await waitForGreeting(smtpPort, 20_000, () => master.running);
    } catch (error) {
      const detail = `${String(error)}\n--- postfix ---\n${instance.log()}\n--- smtp-sink ---\n${sink.output()}`;
      await instance.stop();
      throw new Error(detail);
    }
    return instance;
  }

  /** Everything Postfix logged so far (maillog_file = /dev/stdout). */
  log(): string {
    try {
      return readFileSync(join(this.dir, "postfix.log"), "utf8");
    } catch {
      return "";
    }
  }

  /** Waits until Postfix's log matches, or fails (with the log) after `timeoutMs`. */
  async waitForLog(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = this.log().match(pattern);
      if (match !== null) return match;
      if (Date.now() > deadline)
        throw new Error(`Postfix logged no ${pattern} within ${timeoutMs} ms:\n${this.log()}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /** Every message smtp-sink has written so far. */
  async delivered(): Promise<DeliveredMessage[]> {
    const files = (await readdir(this.sinkDir)).sort();
    return Promise.all(
      files.map(async (name) => parseSinkFile(name, await readFile(join(this.sinkDir, name), "utf8"))),
    );
  }

  /** Waits until Postfix reports the message delivered to every recipient, and answers smtp-sink's copy. */
  async waitForDelivery(
    queueId: string,
    recipients: readonly string[],
    timeoutMs = 10_000,
  ): Promise<DeliveredMessage> {
    for (const recipient of recipients) {
      await this.waitForLog(
        new RegExp(`${queueId}: to=<${escapeRegExp(recipient)}>.*status=sent`),
        timeoutMs,
      );
    }
    const found = (await this.delivered()).find((message) => hasQueueId(message, queueId));
    if (found === undefined) throw new Error(`Postfix delivered ${queueId} but smtp-sink has no copy of it`);
    return found;
  }

  /** The queue as `postqueue -j` reports it. */
  async queue(): Promise<QueueEntry[]> {
    const result = await run("postqueue", ["-c", this.configDir, "-j"], { timeoutMs: 10_000 });
    if (result.code !== 0) throw new Error(`postqueue failed: ${result.stderr}`);
    return result.stdout
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as QueueEntry);
  }

  /** Stops Postfix and smtp-sink (by process group) and removes the directory. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.master.running) {
      await run("postfix", ["-c", this.configDir, "stop"], { timeoutMs: 15_000 });
      if ((await this.master.waitForExit(10_000)) === undefined) {
        // The master daemon leads its own process group (it calls setsid): signal that one too.
        const pid = Number(
          (await readFile(join(this.dir, "queue", "pid", "master.pid"), "utf8").catch(() => "")).trim(),
        );
        if (Number.isInteger(pid) && pid > 1) {
          try {
            process.kill(-pid, "SIGKILL");
          } catch {
            // Already gone.
          }
        }
        await this.master.stop(2000);
      }
    }
    await this.sink.stop();
    // FILTERCTL_E2E_KEEP=1 keeps the configuration, queue and smtp-sink files for a post-mortem.
    if (process.env.FILTERCTL_E2E_KEEP === "1")
      process.stderr.write(`kept the Postfix instance in ${this.dir}\n`);
    else await rm(this.dir, { recursive: true, force: true });
  }
}

/** True when Postfix's Received header in the message names this queue id. */
export function hasQueueId(message: DeliveredMessage, queueId: string): boolean {
  return message.headers.some(
    ([name, value]) =>
      name === "Received" &&
      new RegExp(`\\(Postfix\\) with E?SMTPS?A? id ${queueId}(?![0-9A-Za-z])`).test(value),
  );
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
