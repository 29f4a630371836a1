/**
 * A tiny Language Server Protocol client for tests: starts the real `filterctl lsp --stdio`,
 * frames JSON-RPC with Content-Length headers, answers requests by id and keeps notifications
 * for whoever waits for them.
 */
import { type ChildProcess, spawn } from "node:child_process";

const BIN = new URL("../../bin/filterctl.js", import.meta.url).pathname;

export interface Message {
  id?: number;
  method?: string;
  params?: unknown;
  result?: unknown;
  error?: { code: number; message: string };
}

export class LspClient {
  readonly child: ChildProcess;
  readonly exit: Promise<number | null>;
  stderr = "";
  private buffer = Buffer.alloc(0);
  private nextId = 1;
  private readonly pending = new Map<number, (message: Message) => void>();
  private readonly notifications: Message[] = [];
  private readonly waiters: { match: (m: Message) => boolean; resolve: (m: Message) => void }[] = [];

  constructor(args: string[] = ["lsp", "--stdio"], cwd?: string) {
    this.child = spawn(process.execPath, [BIN, ...args], { stdio: ["pipe", "pipe", "pipe"], cwd });
    this.child.stdout?.on("data", (chunk: Buffer) => this.receive(chunk));
    this.child.stderr?.on("data", (chunk: Buffer) => {
      this.stderr += chunk.toString("utf8");
    });
    this.exit = new Promise((resolve) => this.child.on("exit", (code) => resolve(code)));
  }

  private receive(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const headerEnd = this.buffer.indexOf("\r\n\r\n");
      if (headerEnd === -1) return;
      const length = Number(
        /Content-Length: (\d+)/i.exec(this.buffer.subarray(0, headerEnd).toString())?.[1],
      );
      const bodyStart = headerEnd + 4;
      if (this.buffer.length < bodyStart + length) return;
      const message = JSON.parse(
        this.buffer.subarray(bodyStart, bodyStart + length).toString("utf8"),
      ) as Message;
      this.buffer = this.buffer.subarray(bodyStart + length);
      this.dispatch(message);
    }
  }

  private dispatch(message: Message): void {
    if (message.id !== undefined && message.method === undefined) {
      this.pending.get(message.id)?.(message);
      this.pending.delete(message.id);
      return;
    }
    if (message.id !== undefined) {
      // A request from the server (workspace/configuration, ...): answered empty.
      this.send({ id: message.id, result: null });
      return;
    }
    const waiter = this.waiters.findIndex((w) => w.match(message));
    if (waiter === -1) this.notifications.push(message);
    else this.waiters.splice(waiter, 1)[0]?.resolve(message);
  }

  send(message: Omit<Message, "jsonrpc">): void {
    const body = Buffer.from(JSON.stringify({ jsonrpc: "2.0", ...message }), "utf8");
    this.child.stdin?.write(`Content-Length: ${body.length}\r\n\r\n`);
    this.child.stdin?.write(body);
  }

  async request<R>(method: string, params: unknown, timeoutMs = 10_000): Promise<R> {
    const id = this.nextId++;
    const answer = new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no answer to ${method} (stderr: ${this.stderr})`)),
        timeoutMs,
      );
      this.pending.set(id, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
    });
    this.send({ id, method, params });
    const message = await answer;
    if (message.error !== undefined) throw new Error(`${method}: ${message.error.message}`);
    return message.result as R;
  }

  notify(method: string, params: unknown): void {
    this.send({ method, params });
  }

  /** The next notification `match` accepts (one already received counts). */
  notification(match: (m: Message) => boolean, timeoutMs = 10_000): Promise<Message> {
    const known = this.notifications.findIndex(match);
    if (known !== -1) return Promise.resolve(this.notifications.splice(known, 1)[0] as Message);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no notification (stderr: ${this.stderr})`)),
        timeoutMs,
      );
      this.waiters.push({
        match,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  /** Notifications received and not yet waited for that `match` accepts. */
  received(match: (m: Message) => boolean): Message[] {
    return this.notifications.filter(match);
  }

  /** The diagnostics published for `uri` (at `version` when given). */
  async diagnostics(uri: string, version?: number): Promise<LspDiagnostic[]> {
    const message = await this.notification((m) => {
      const params = m.params as { uri?: string; version?: number } | undefined;
      return (
        m.method === "textDocument/publishDiagnostics" &&
        params?.uri === uri &&
        (version === undefined || params.version === version)
      );
    });
    return (message.params as { diagnostics: LspDiagnostic[] }).diagnostics;
  }

  async initialize(capabilities: unknown = {}): Promise<{ capabilities: Record<string, unknown> }> {
    const result = await this.request<{ capabilities: Record<string, unknown> }>("initialize", {
      processId: process.pid,
      rootUri: null,
      capabilities,
    });
    this.notify("initialized", {});
    return result;
  }

  open(uri: string, text: string, version = 1): void {
    this.notify("textDocument/didOpen", { textDocument: { uri, languageId: "yaml", version, text } });
  }

  /** Ends the session as an editor does; answers the exit code. */
  async shutdown(): Promise<number | null> {
    await this.request("shutdown", null);
    this.notify("exit", null);
    return this.exit;
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill();
  }
}

export interface Position {
  line: number;
  character: number;
}

export interface LspDiagnostic {
  range: { start: Position; end: Position };
  severity: number;
  message: string;
  source?: string;
  relatedInformation?: { message: string }[];
}
