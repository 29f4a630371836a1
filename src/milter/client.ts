/**
 * The MTA side of the protocol: connects to a milter, negotiates, and sends the events of
 * SMTP transactions the way Postfix does, honouring what was negotiated (skipped stages are
 * not sent, stages without reply are not waited for). Like Postfix, it sends before each command
 * the macros the milter asked for that stage (SMFIF_SETSYMLIST) among those it knows: the client's
 * address, name and port, `{mail_addr}`, `{rcpt_addr}` — unless the caller sent that stage's
 * macros itself just before. Given an MTA's macro defaults (`mta`), it also sends, like Postfix,
 * those lists for the stages the milter did not choose, and a macro packet before every command
 * it sends and for the envelope stages and DATA it skips. Like Postfix, it writes what it has in
 * one write when it needs a reply.
 */
import { createConnection, type Socket } from "node:net";
import { AddressError, type ListenAddress, parseListenAddress } from "./address.js";
import {
  type ConnectInfo,
  decodeResponse,
  encodeCommand,
  FrameReader,
  type MilterCommand,
  type MilterResponse,
  ProtocolError,
} from "./codec.js";
import {
  ALL_ACTIONS,
  ALL_PROTOCOL_FLAGS,
  MACRO_STAGE_NUMBER,
  PROTOCOL_VERSION,
  STAGE_WIRE,
  type Stage,
} from "./constants.js";
import { type MtaMacros, macroListStage } from "./mta-macros.js";

export type FinalResponse = Extract<
  MilterResponse,
  { type: "continue" | "accept" | "reject" | "tempfail" | "discard" | "replycode" | "shutdown" | "skip" }
>;
export type ModificationResponse = Exclude<MilterResponse, FinalResponse | { type: "optneg" | "progress" }>;

export interface EndOfMessageResponse {
  modifications: ModificationResponse[];
  reply: FinalResponse;
}

export interface Offer {
  version: number;
  actions: number;
  protocol: number;
}

const FINAL_TYPES = new Set([
  "continue",
  "accept",
  "reject",
  "tempfail",
  "discard",
  "replycode",
  "shutdown",
  "skip",
]);

export class MilterClientError extends Error {}

const CONTENT_STAGES: ReadonlySet<Stage> = new Set(["header", "eoh", "body"]);

export interface MilterClientOptions {
  /** The MTA played: its default macro lists and values (see POSTFIX_MACROS). */
  mta?: MtaMacros;
}

export class MilterClient {
  private readonly reader = new FrameReader(64 * 1024 * 1024);
  private readonly received: MilterResponse[] = [];
  private waiter: { resolve: () => void; reject: (error: Error) => void } | undefined;
  private failure: Error | undefined;
  private skipBody = false;
  /** What this session told the milter so far, by macro name, for the macros it asks for. */
  private readonly known = new Map<string, string>();
  /** Commands whose macros the caller sent itself (macro()); no others are added for them. */
  private readonly sentMacros = new Set<number>();
  /** Packets not yet written: like Postfix, the client writes what it has when it needs a reply. */
  private pending: Buffer[] = [];
  /** What the filter agreed to; everything until negotiation. */
  negotiated: Offer & { macroLists: Map<number, string> } = {
    version: PROTOCOL_VERSION,
    actions: 0,
    protocol: 0,
    macroLists: new Map(),
  };

  private constructor(
    private readonly socket: Socket,
    private readonly replyTimeoutMs: number,
    private readonly mta: MtaMacros | undefined,
  ) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      for (const item of this.reader.push(chunk)) {
        if (item instanceof ProtocolError) return this.fail(new MilterClientError(item.message));
        const response = decodeResponse(item);
        if (response instanceof ProtocolError) return this.fail(new MilterClientError(response.message));
        this.received.push(response);
      }
      this.wake();
    });
    socket.on("error", (error) => this.fail(error));
    socket.on("close", () => this.fail(new MilterClientError("milter closed the connection")));
  }

  static async connect(
    spec: string | ListenAddress,
    replyTimeoutMs = 10_000,
    options: MilterClientOptions = {},
  ): Promise<MilterClient> {
    const address = typeof spec === "string" ? parseListenAddress(spec) : spec;
    if (address instanceof AddressError) throw new MilterClientError(address.message);
    const socket =
      address.kind === "unix"
        ? createConnection(address.path)
        : createConnection({
            host: address.host === "0.0.0.0" ? "127.0.0.1" : address.host,
            port: address.port,
          });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    return new MilterClient(socket, replyTimeoutMs, options.mta);
  }

  /** Whether the milter asked for this stage and will answer it. */
  sends(stage: Stage): boolean {
    const flag = STAGE_WIRE[stage].skipFlag;
    return flag === 0 || (this.negotiated.protocol & flag) === 0;
  }

  expectsReply(stage: Stage): boolean {
    const flag = STAGE_WIRE[stage].noReplyFlag;
    return flag === 0 || (this.negotiated.protocol & flag) === 0;
  }

  async negotiate(offer: Partial<Offer> = {}): Promise<Offer & { macroLists: Map<number, string> }> {
    this.send({
      type: "optneg",
      version: offer.version ?? PROTOCOL_VERSION,
      actions: offer.actions ?? ALL_ACTIONS,
      protocol: offer.protocol ?? ALL_PROTOCOL_FLAGS,
      macroLists: new Map(),
    });
    const response = await this.next();
    if (response.type !== "optneg")
      throw new MilterClientError(`expected a negotiation reply, got '${response.type}'`);
    this.negotiated = response;
    return response;
  }

  /** Sends macros for the stage of `command` (a Command byte). Never answered. */
  macro(command: number, macros: Record<string, string>): void {
    this.sentMacros.add(command);
    this.send({ type: "macro", forCommand: command, macros: Object.entries(macros) });
  }

  connectInfo(info: ConnectInfo): Promise<FinalResponse | undefined> {
    this.known.set("{client_addr}", info.address);
    this.known.set("{client_name}", info.hostname);
    this.known.set("{client_port}", String(info.port));
    if (this.mta !== undefined) {
      this.known.set("j", this.mta.hostname);
      this.known.set("{daemon_name}", this.mta.hostname);
      this.known.set("{daemon_addr}", this.mta.daemonAddr);
      this.known.set("v", this.mta.version);
      this.known.set("_", `${info.hostname} [${info.address}]`);
    }
    return this.stage("connect", { type: "connect", ...info });
  }

  helo(name: string): Promise<FinalResponse | undefined> {
    return this.stage("helo", { type: "helo", name });
  }

  mail(sender: string, args: string[] = []): Promise<FinalResponse | undefined> {
    this.known.set("{mail_addr}", bare(sender));
    if (this.mta !== undefined) {
      this.known.set("{mail_host}", domainOf(sender));
      this.known.set("{mail_mailer}", this.mta.senderMailer);
    }
    return this.stage("mail", { type: "mail", sender, args });
  }

  async rcpt(recipient: string, args: string[] = []): Promise<FinalResponse | undefined> {
    this.known.set("{rcpt_addr}", bare(recipient));
    if (this.mta !== undefined) {
      this.known.set("{rcpt_host}", domainOf(recipient));
      this.known.set("{rcpt_mailer}", this.mta.recipientMailer);
    }
    const reply = await this.stage("rcpt", { type: "rcpt", recipient, args });
    // Postfix names the queue file once a first recipient is accepted: `i` exists from then on.
    if (this.mta !== undefined && !this.known.has("i") && !isRefusal(reply)) this.known.set("i", queueId());
    return reply;
  }

  data(): Promise<FinalResponse | undefined> {
    return this.stage("data", { type: "data" });
  }

  header(name: string, value: string): Promise<FinalResponse | undefined> {
    return this.stage("header", { type: "header", name, value });
  }

  eoh(): Promise<FinalResponse | undefined> {
    return this.stage("eoh", { type: "eoh" });
  }

  /** Sends body bytes in chunks of at most 65535, stopping if the milter answered skip. */
  async body(content: Buffer): Promise<FinalResponse | undefined> {
    let last: FinalResponse | undefined;
    for (let at = 0; at < content.length && !this.skipBody; at += 65535) {
      last = await this.stage("body", { type: "body", chunk: content.subarray(at, at + 65535) });
      if (last?.type === "skip") this.skipBody = true;
      else if (last !== undefined && last.type !== "continue") return last;
    }
    return last;
  }

  async eom(): Promise<EndOfMessageResponse> {
    this.skipBody = false;
    this.sendStageMacros("eom");
    this.send({ type: "eom", chunk: Buffer.alloc(0) });
    const modifications: ModificationResponse[] = [];
    for (;;) {
      const response = await this.next();
      if (response.type === "progress") continue;
      if (FINAL_TYPES.has(response.type)) return { modifications, reply: response as FinalResponse };
      if (response.type === "optneg") throw new MilterClientError("negotiation reply at end of message");
      modifications.push(response as ModificationResponse);
    }
  }

  unknown(line: string): Promise<FinalResponse | undefined> {
    return this.stage("unknown", { type: "unknown", line });
  }

  abort(): void {
    this.skipBody = false;
    // The next transaction gets its own queue ID, once a recipient of it is accepted.
    this.known.delete("i");
    this.send({ type: "abort" });
    this.flush();
  }

  /**
   * Sends QUIT and closes, as Postfix does (it closes the socket right after writing QUIT, so the
   * MTA, not the milter, ends each connection first and holds its TIME_WAIT). A Node socket's
   * end() would send its FIN only on the next turn of the event loop, after a milter that closes
   * on QUIT at once had often sent its own.
   */
  quit(): void {
    this.send({ type: "quit" });
    this.flush();
    if (this.socket.writableLength === 0) this.socket.destroy();
    else this.socket.end();
  }

  quitNewConnection(): void {
    this.send({ type: "quitNewConnection" });
    this.flush();
  }

  /** Writes raw bytes (tests use it to send what no MTA would). */
  sendRaw(bytes: Buffer): void {
    this.flush();
    this.socket.write(bytes);
  }

  /** Writes the packets sent so far, in one write. */
  flush(): void {
    const pending = this.pending;
    if (pending.length === 0) return;
    this.pending = [];
    this.socket.write(Buffer.concat(pending));
  }

  /** Waits for the next response, whatever it is. */
  async next(): Promise<MilterResponse> {
    this.flush();
    while (this.received.length === 0) {
      if (this.failure !== undefined) throw this.failure;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new MilterClientError(`no reply within ${this.replyTimeoutMs} ms`)),
          this.replyTimeoutMs,
        );
        this.waiter = {
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
          reject: (error) => {
            clearTimeout(timer);
            reject(error);
          },
        };
      });
    }
    return this.received.shift() as MilterResponse;
  }

  /** Resolves when the milter closes the connection. */
  closed(): Promise<void> {
    this.flush();
    if (this.socket.destroyed || this.socket.closed) return Promise.resolve();
    return new Promise((resolve) => this.socket.once("close", () => resolve()));
  }

  destroy(): void {
    this.socket.destroy();
  }

  private async stage(stage: Stage, command: MilterCommand): Promise<FinalResponse | undefined> {
    if (!this.sends(stage)) {
      // Postfix sends a skipped envelope stage's macros all the same (not a skipped header's,
      // end of headers' or body chunk's: it never reads the message for them).
      if (this.mta !== undefined && !CONTENT_STAGES.has(stage)) this.sendStageMacros(stage);
      return undefined;
    }
    this.sendStageMacros(stage);
    this.send(command);
    if (!this.expectsReply(stage)) return undefined;
    for (;;) {
      const response = await this.next();
      if (response.type === "progress") continue;
      if (!FINAL_TYPES.has(response.type)) {
        throw new MilterClientError(`'${response.type}' is not a valid reply to ${stage}`);
      }
      return response as FinalResponse;
    }
  }

  /**
   * The macros of this stage's list that the session knows, as Postfix sends them: the list the
   * milter asked for, else the MTA's default (when playing one). Without an MTA, nothing is sent
   * when no macro has a value; with one, an empty packet is, as Postfix does.
   */
  private sendStageMacros(stage: Stage): void {
    const command = STAGE_WIRE[stage].command;
    const explicit = this.sentMacros.delete(command);
    const listStage = macroListStage(stage);
    if (explicit || listStage === undefined) return;
    const asked = this.negotiated.macroLists.get(MACRO_STAGE_NUMBER[listStage]);
    const names = asked !== undefined && asked !== "" ? asked : this.mta?.lists[listStage];
    if (names === undefined) return;
    const macros: [string, string][] = [];
    for (const name of names.split(" ")) {
      const value = this.known.get(name);
      if (value !== undefined) macros.push([name, value]);
    }
    if (macros.length > 0 || this.mta !== undefined)
      this.send({ type: "macro", forCommand: command, macros });
  }

  private send(command: MilterCommand): void {
    if (this.failure !== undefined) throw this.failure;
    this.pending.push(encodeCommand(command));
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve();
  }

  private fail(error: Error): void {
    this.failure ??= error;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(this.failure);
  }
}

function isRefusal(reply: FinalResponse | undefined): boolean {
  return reply !== undefined && reply.type !== "continue" && reply.type !== "accept" && reply.type !== "skip";
}

/** The domain of an address as typed (`<user@example.org>`), empty when it has none. */
function domainOf(address: string): string {
  const bareAddress = bare(address);
  const at = bareAddress.lastIndexOf("@");
  return at < 0 ? "" : bareAddress.slice(at + 1);
}

let queueIds = 0;

/** A queue ID in the shape of Postfix's long IDs (what a milter logs; unique per process). */
function queueId(): string {
  queueIds += 1;
  return `4Z${queueIds.toString(36).toUpperCase().padStart(10, "0")}`;
}

/** An address as Postfix puts it in `{mail_addr}` and `{rcpt_addr}`: without the angle brackets. */
function bare(address: string): string {
  return address.startsWith("<") && address.endsWith(">") ? address.slice(1, -1) : address;
}
