/**
 * SMTP clients for end-to-end tests: a small one over `net` for sessions with several
 * transactions, and a wrapper around swaks for one-message sessions.
 */
import { randomUUID } from "node:crypto";
import { connect, type Socket } from "node:net";
import { run } from "./processes.js";

export interface SmtpReply {
  code: number;
  /** Reply lines without the code and separator. */
  lines: string[];
  /** `"250 2.0.0 Ok: queued as ABC"` (the last line as sent). */
  last: string;
}

/** The queue id in Postfix's answer to the end of DATA. */
export function queueIdOf(reply: string): string | undefined {
  return /queued as ([0-9A-Za-z]+)/.exec(reply)?.[1];
}

export class SmtpClient {
  private buffer = "";
  private pending: string[] = [];
  private readonly replies: SmtpReply[] = [];
  private waiter: (() => void) | undefined;
  private closed = false;
  /** Every line sent and received, for failure messages. */
  readonly transcript: string[] = [];

  private constructor(private readonly socket: Socket) {
    socket.setEncoding("latin1");
    socket.on("data", (text: string) => {
      this.buffer += text;
      this.parse();
    });
    socket.on("close", () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on("error", () => {
      this.closed = true;
      this.waiter?.();
    });
  }

  /** Connects and reads the greeting. */
  static async connect(
    port: number,
    host = "127.0.0.1",
  ): Promise<{ client: SmtpClient; greeting: SmtpReply }> {
    const socket = connect({ host, port });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const client = new SmtpClient(socket);
    return { client, greeting: await client.read() };
  }

  private parse(): void {
    for (;;) {
      const end = this.buffer.indexOf("\r\n");
      if (end === -1) break;
      const line = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      this.transcript.push(`<- ${line}`);
      this.pending.push(line);
      // "250-..." continues a multi-line reply; "250 ..." ends it.
      if (/^\d{3}(?: |$)/.test(line)) {
        this.replies.push({
          code: Number(line.slice(0, 3)),
          lines: this.pending.map((l) => l.slice(4)),
          last: line,
        });
        this.pending = [];
      }
    }
    this.waiter?.();
  }

  /** The next reply from the server. */
  async read(timeoutMs = 15_000): Promise<SmtpReply> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0) {
      if (this.closed)
        throw new Error(`connection closed while waiting for a reply\n${this.transcript.join("\n")}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no SMTP reply within ${timeoutMs} ms\n${this.transcript.join("\n")}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.replies.shift() as SmtpReply;
  }

  /** Sends one command line and answers its reply. */
  async command(line: string): Promise<SmtpReply> {
    this.transcript.push(`-> ${line}`);
    this.socket.write(`${line}\r\n`);
    return this.read();
  }

  /** DATA, then the message (dot-stuffed, CRLF line ends) if the server said 354. */
  async data(message: string): Promise<SmtpReply> {
    const go = await this.command("DATA");
    if (go.code !== 354) return go;
    const text = message
      .replace(/\r?\n/g, "\r\n")
      .split("\r\n")
      .map((line) => (line.startsWith(".") ? `.${line}` : line))
      .join("\r\n");
    this.transcript.push(`-> [message, ${text.length} bytes]`);
    this.socket.write(`${text.endsWith("\r\n") ? text : `${text}\r\n`}.\r\n`);
    return this.read();
  }

  async quit(): Promise<void> {
    if (!this.closed) {
      await this.command("QUIT").catch(() => undefined);
      this.socket.end();
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface MessageOptions {
  from: string;
  to: readonly string[];
  subject: string;
  body?: string;
  headers?: Record<string, string>;
}

/** A small RFC 5322 message with a unique Message-ID. */
export function buildMessage(options: MessageOptions): string {
  const headers = {
    From: options.from,
    To: options.to.join(", "),
    Subject: options.subject,
    Date: new Date().toUTCString().replace("GMT", "+0000"),
    "Message-ID": `<${randomUUID()}@e2e.filterctl.test>`,
    ...options.headers,
  };
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}`);
  return `${lines.join("\r\n")}\r\n\r\n${options.body ?? "Test message.\r\n"}`;
}

export interface SwaksResult {
  code: number | null;
  output: string;
  /** Server replies in order, as `"250 2.1.0 Ok"` (last line of each reply). */
  replies: string[];
  /** Error replies only (swaks marks them `<**`). */
  errors: string[];
  queueId: string | undefined;
}

/** Sends one message with swaks (one SMTP session) and parses its transcript. */
export async function swaks(
  port: number,
  options: { from: string; to: readonly string[]; subject?: string; body?: string; helo?: string },
): Promise<SwaksResult> {
  const args = [
    "--server",
    `127.0.0.1:${port}`,
    "--helo",
    options.helo ?? "client.e2e.test",
    "--from",
    options.from,
    "--to",
    options.to.join(","),
    "--header",
    `Subject: ${options.subject ?? "swaks test"}`,
    "--body",
    options.body ?? "Sent by swaks for the filterctl end-to-end tests.",
    "--timeout",
    "20",
  ];
  const result = await run("swaks", args, { timeoutMs: 30_000 });
  const output = `${result.stdout}${result.stderr}`;
  const replyLines = output.split("\n").filter((line) => /^<(?:-|\*\*) {1,2}\d{3} /.test(line));
  const strip = (line: string) => line.replace(/^<(?:-|\*\*) +/, "");
  const replies = replyLines.map(strip);
  return {
    code: result.code,
    output,
    replies,
    errors: replyLines.filter((line) => line.startsWith("<**")).map(strip),
    queueId: replies.map(queueIdOf).find((id) => id !== undefined),
  };
}
