/**
 * One MTA connection: negotiation, the per-connection state machine, and dispatch to the
 * handler with exactly one final reply for every command that expects one.
 *
 * Everything here is defensive: the MTA's stream is parsed, never trusted; a handler that
 * throws, rejects or hangs gets the fallback reply for that event and the connection goes on.
 */
import type { Socket } from "node:net";
import type { BudgetWaiter, InputBudget } from "./budget.js";
import {
  type ConnectInfo,
  decodeCommand,
  decodeMacro,
  encodeNegotiation,
  type Frame,
  FrameReader,
  type MilterCommand,
  PACKET,
  ProtocolError,
} from "./codec.js";
import {
  ActionFlag,
  Command,
  MACRO_STAGE_NUMBER,
  type MacroStage,
  MIN_PROTOCOL_VERSION,
  PROTOCOL_VERSION,
  ProtocolFlag,
  Response,
  STAGE_WIRE,
  type Stage,
} from "./constants.js";
import type {
  MilterHandler,
  MilterLogger,
  NegotiationWishes,
  SessionContext,
  StageInterest,
  StageResult,
} from "./handler.js";
import { MacroTable } from "./macros.js";
import {
  actionFlagFor,
  type EndOfMessageResult,
  encodeModification,
  encodeReply,
  InvalidReply,
  type Modification,
  type Reply,
} from "./reply.js";

export interface SessionOptions {
  maxPacketBytes: number;
  /** How long after accept a new connection must have negotiated (absolute). */
  negotiationTimeoutMs: number;
  /** How long after its first byte a packet must be complete (absolute). */
  packetTimeoutMs: number;
  /** How long the MTA may leave our replies unread before the connection is closed. */
  writeStallTimeoutMs: number;
  /** How long a negotiated connection may stay silent. */
  idleTimeoutMs: number;
  /** Characters of macro names and values kept per connection. */
  maxMacroBytes: number;
  /** Input held across all connections. */
  budget: InputBudget;
  /** How long a handler may take for one event before the fallback reply is sent. */
  handlerTimeoutMs: number;
  /** Reply used when a handler fails, hangs, or answers something invalid. */
  fallback: Reply;
  logger: MilterLogger;
}

/** Where a connection is, in SMTP order. Commands may only move forward inside a message. */
enum Phase {
  AwaitingNegotiation = 0,
  AwaitingConnect = 1,
  Connected = 2,
  Mail = 3,
  Rcpt = 4,
  Data = 5,
  Headers = 6,
  EndOfHeaders = 7,
  Body = 8,
}

/** What the server learns of a session's life. */
export interface SessionEvents {
  negotiated(session: Session): void;
  closed(session: Session): void;
}

function isPromiseLike<T>(value: unknown): value is PromiseLike<T> {
  return (
    typeof value === "object" && value !== null && typeof (value as { then?: unknown }).then === "function"
  );
}

function defaultInterests(handler: MilterHandler): Partial<Record<Stage, StageInterest>> {
  const interests: Partial<Record<Stage, StageInterest>> = {};
  for (const stage of Object.keys(STAGE_WIRE) as Stage[]) {
    if (typeof handler[stage] === "function") interests[stage] = "decide";
  }
  return interests;
}

/** What one negotiation settles: the same for every connection with the same wishes and offer. */
interface Agreement {
  version: number;
  actions: number;
  protocol: number;
  interests: Partial<Record<Stage, StageInterest>>;
  keptMacros: readonly string[] | undefined;
  sentStages: ReadonlySet<Stage>;
  answeredStages: ReadonlySet<Stage>;
  reply: Buffer;
}

/**
 * Agreements by wishes object and offer: a handler factory that hands every connection the same
 * wishes (the rules do, per ruleset) negotiates once per distinct MTA offer, not per connection.
 */
const agreements = new WeakMap<NegotiationWishes, Map<string, Agreement>>();

function agreementFor(handler: MilterHandler, offer: Extract<MilterCommand, { type: "optneg" }>): Agreement {
  const wishes = handler.wishes;
  if (wishes === undefined) return agree({}, defaultInterests(handler), offer);
  const key = `${offer.version} ${offer.actions} ${offer.protocol}`;
  let known = agreements.get(wishes);
  if (known === undefined) {
    known = new Map();
    agreements.set(wishes, known);
  }
  let agreement = known.get(key);
  if (agreement === undefined) {
    agreement = agree(wishes, wishes.stages ?? defaultInterests(handler), offer);
    known.set(key, agreement);
  }
  return agreement;
}

function agree(
  wishes: NegotiationWishes,
  interests: Partial<Record<Stage, StageInterest>>,
  offer: Extract<MilterCommand, { type: "optneg" }>,
): Agreement {
  const version = Math.min(offer.version, PROTOCOL_VERSION);
  let wantedProtocol = 0;
  for (const stage of Object.keys(STAGE_WIRE) as Stage[]) {
    const interest = interests[stage];
    const wire = STAGE_WIRE[stage];
    if (interest === undefined) wantedProtocol |= wire.skipFlag;
    else if (interest === "observe") wantedProtocol |= wire.noReplyFlag;
  }
  if (interests.body === "decide") wantedProtocol |= ProtocolFlag.Skip;
  if (wishes.headerLeadingSpace) wantedProtocol |= ProtocolFlag.HeaderLeadingSpace;
  // Never ask for what the MTA did not offer: Sendmail drops a filter that does.
  const protocol = wantedProtocol & offer.protocol;

  let actions = (wishes.actions ?? 0) & offer.actions & ~ActionFlag.SetMacroList;
  const macroLists = new Map<number, string>();
  if (wishes.macros !== undefined && (offer.actions & ActionFlag.SetMacroList) !== 0) {
    for (const [stage, names] of Object.entries(wishes.macros) as [MacroStage, readonly string[]][]) {
      macroLists.set(MACRO_STAGE_NUMBER[stage], names.join(" "));
    }
    if (macroLists.size > 0) actions |= ActionFlag.SetMacroList;
  }
  const sentStages = new Set<Stage>();
  const answeredStages = new Set<Stage>();
  for (const stage of Object.keys(STAGE_WIRE) as Stage[]) {
    const wire = STAGE_WIRE[stage];
    const skipped = (protocol & wire.skipFlag) !== 0 && wire.skipFlag !== 0;
    // Version 2 has no DATA nor UNKNOWN; version 3 has no DATA.
    const tooOld = (stage === "data" && version < 4) || (stage === "unknown" && version < 3);
    if (!skipped && !tooOld) sentStages.add(stage);
    if (!((protocol & wire.noReplyFlag) !== 0 && wire.noReplyFlag !== 0)) answeredStages.add(stage);
  }
  const keptMacros = wishes.macros === undefined ? undefined : Object.values(wishes.macros).flat();
  const reply = encodeNegotiation(Response.OptionNegotiation, version, actions, protocol, macroLists);
  return { version, actions, protocol, interests, keptMacros, sentStages, answeredStages, reply };
}

/**
 * A readable stream schedules a "read more" task after every chunk it delivers; for a socket
 * whose handle is already reading, that task finds nothing to do. Each one still costs a tick of
 * the event loop, and in Node 20 every tick drain also allocates a map for unhandled rejections
 * (about a twentieth of a session's allocation together). Node's own HTTP request objects mark
 * the task as already scheduled for the same reason; reading does not depend on it: the handle
 * reads until the buffer is full, and `resume()` starts it again (test/milter/session checks
 * that a paused connection goes on after resume).
 */
function suppressReadAhead(socket: Socket): void {
  const state = (socket as unknown as { _readableState?: { readingMore?: boolean } })._readableState;
  if (state !== undefined) state.readingMore = true;
}

export class Session implements SessionContext, BudgetWaiter {
  readonly negotiated = { version: 0, actions: 0, protocol: 0 };
  private readonly reader: FrameReader;
  private readonly macros: MacroTable;
  private phase = Phase.AwaitingNegotiation;
  /** A handler is working on a command: the next waits (one command at a time, in order). */
  private busy = false;
  private closed = false;
  /** Whether the socket is paused now (the result of the three reasons below). */
  private paused = false;
  /** The MTA does not read our replies: nothing more is read or processed until 'drain'. */
  private writeBlocked = false;
  /** Paused because input held across all connections passed the bound. */
  private budgetPaused = false;
  /** What this connection has counted in the shared input budget. */
  private charged = 0;
  /** When the first byte of the packet being assembled arrived; -1 when no packet is under way. */
  private packetSince = -1;
  private packetTimer: NodeJS.Timeout | undefined;
  private negotiationTimer: NodeJS.Timeout | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  private macrosDroppedNoted = false;
  /** Stages the MTA will send us, after negotiation. */
  private sentStages: ReadonlySet<Stage> = new Set<Stage>();
  /** Stages whose commands we must answer. */
  private answeredStages: ReadonlySet<Stage> = new Set<Stage>();
  private interests: Partial<Record<Stage, StageInterest>> = {};

  private peerName: string | undefined;

  constructor(
    readonly id: number,
    /** Names the peer (a getpeername call): asked only when a log line or the budget needs it. */
    private readonly peerOf: () => string,
    private readonly socket: Socket,
    private readonly handler: MilterHandler,
    private readonly options: SessionOptions,
    private readonly events: SessionEvents,
  ) {
    this.reader = new FrameReader(options.maxPacketBytes);
    this.macros = new MacroTable(options.maxMacroBytes);
    socket.setNoDelay(true);
    // Counted from accept, not from the last byte: a peer trickling its negotiation cannot
    // push it back (a socket idle timeout would restart at every byte).
    this.negotiationTimer = setTimeout(() => {
      this.log(
        "warn",
        { timeoutMs: options.negotiationTimeoutMs },
        "closing connection: no negotiation from the MTA in time",
      );
      this.close();
    }, options.negotiationTimeoutMs);
    suppressReadAhead(socket);
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    // Armed at negotiation: silence on a negotiated connection.
    socket.on("timeout", () => {
      this.log(
        "warn",
        { timeoutMs: options.idleTimeoutMs },
        "closing connection: no command from the MTA in time",
      );
      this.close();
    });
    socket.on("error", (error: NodeJS.ErrnoException) => {
      this.log("info", { err: error.code ?? error.message }, "connection error");
      this.close();
    });
    socket.on("end", () => {
      if (this.reader.bufferedBytes > 0 && !this.reader.hasFrame) {
        this.log(
          "warn",
          { pendingBytes: this.reader.bufferedBytes },
          "MTA closed the connection in the middle of a packet",
        );
      }
      this.close();
    });
    socket.on("close", () => {
      this.close();
      // A closed Socket outlives its connection in the heap: measured under load, nearly every
      // connection's Socket survived a young-generation collection and was promoted. Its
      // listeners would keep this session, its handler and their transaction alive with it;
      // dropped, those die young (sampled survivors per session 9.4 → 5.7 KB).
      socket.removeAllListeners();
    });
  }

  // --- SessionContext -------------------------------------------------------------------

  macro(name: string): string | undefined {
    return this.macros.get(name);
  }

  macrosOf(stage: Stage): Record<string, string> {
    return this.macros.forStage(STAGE_WIRE[stage].command);
  }

  /** False until the MTA has sent its option negotiation. */
  get hasNegotiated(): boolean {
    return this.phase !== Phase.AwaitingNegotiation;
  }

  /** True while a message is in progress (between MAIL and end of message or abort). */
  get inTransaction(): boolean {
    return this.phase >= Phase.Mail;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.negotiationTimer);
    clearTimeout(this.packetTimer);
    clearTimeout(this.stallTimer);
    this.options.budget.release(this);
    this.charged = 0;
    this.socket.destroy();
    this.safely("close", () => this.handler.close?.(this));
    this.events.closed(this);
  }

  get peer(): string {
    this.peerName ??= this.peerOf();
    return this.peerName;
  }

  /** The shared input budget has room again. */
  budgetFreed(): void {
    this.budgetPaused = false;
    if (!this.closed) this.flow();
  }

  // --- Input ---------------------------------------------------------------------------

  private receive(chunk: Buffer): void {
    if (this.closed) return;
    this.reader.append(chunk);
    this.pump();
  }

  /** Processes whole packets in order while nothing holds them back. */
  private pump(): void {
    while (!this.busy && !this.closed && !this.writeBlocked) {
      const item = this.reader.next();
      if (item === undefined) break;
      if (item instanceof ProtocolError) {
        this.protocolError(item.message);
        return;
      }
      // A packet completed: the packet clock restarts with the next packet's bytes.
      this.packetSince = -1;
      const pending = this.process(item);
      if (pending !== undefined) {
        this.busy = true;
        pending.then(
          () => this.resume(),
          (error: unknown) => {
            this.log("error", { err: String(error) }, "internal error while processing a command");
            this.close();
          },
        );
        break;
      }
    }
    if (!this.closed) this.settle();
  }

  private resume(): void {
    this.busy = false;
    this.pump();
  }

  /** After input was added or taken: count it in the budget, run the packet clock, pause or resume. */
  private settle(): void {
    const held = this.reader.bufferedBytes;
    if (held !== this.charged || this.budgetPaused) {
      this.budgetPaused = this.options.budget.hold(this, held, this.peer);
      this.charged = held;
    }
    if (held === 0) this.packetSince = -1;
    else if (this.packetSince === -1) this.startPacketClock();
    this.flow();
  }

  /**
   * Reading stops while the MTA leaves our replies unread, while this connection waits for the
   * input budget, and while a whole command already waits behind a busy handler (so pipelined
   * commands queue in the kernel, not here).
   */
  private flow(): void {
    const stop = this.writeBlocked || this.budgetPaused || (this.busy && this.reader.hasFrame);
    if (stop === this.paused) return;
    this.paused = stop;
    if (stop) this.socket.pause();
    else this.socket.resume();
  }

  private startPacketClock(): void {
    this.packetSince = Date.now();
    this.packetTimer ??= setTimeout(() => this.checkPacketClock(), this.options.packetTimeoutMs);
  }

  private checkPacketClock(): void {
    this.packetTimer = undefined;
    if (this.closed || this.packetSince === -1) return;
    // A whole packet waiting for us (a busy handler) is not the MTA being slow.
    if (this.reader.hasFrame) {
      this.startPacketClock();
      return;
    }
    const left = this.packetSince + this.options.packetTimeoutMs - Date.now();
    if (left > 0) {
      this.packetTimer = setTimeout(() => this.checkPacketClock(), left);
      return;
    }
    this.log(
      "warn",
      {
        timeoutMs: this.options.packetTimeoutMs,
        pendingBytes: this.reader.bufferedBytes,
        waitingForBudget: this.budgetPaused,
      },
      "closing connection: a packet from the MTA was not complete in time after its first byte",
    );
    this.close();
  }

  private protocolError(message: string): void {
    this.log("warn", { phase: this.phase }, `protocol error, closing connection: ${message}`);
    this.close();
  }

  /** Handles one frame; answers a promise only when the handler went asynchronous. */
  private process(frame: Frame): Promise<void> | undefined {
    // Macros are filtered while decoding: what is not kept is never turned into strings.
    const command =
      frame.code === Command.Macro && this.phase !== Phase.AwaitingNegotiation
        ? decodeMacro(frame.payload, this.macros.filter)
        : decodeCommand(frame);
    if (command instanceof ProtocolError) {
      this.protocolError(command.message);
      return undefined;
    }
    if (this.phase === Phase.AwaitingNegotiation && command.type !== "optneg") {
      this.protocolError(`'${String.fromCharCode(frame.code)}' before option negotiation`);
      return undefined;
    }
    switch (command.type) {
      case "optneg":
        this.negotiate(command);
        return undefined;
      case "macro":
        // Never answered, whatever it holds (including zero pairs).
        this.storeMacros(command.forCommand, command.macros);
        return undefined;
      case "abort":
        this.endMessage(true);
        return undefined;
      case "quit":
        this.close();
        return undefined;
      case "quitNewConnection":
        this.endMessage(true);
        this.safely("close", () => this.handler.close?.(this));
        this.macros.clearAll();
        this.phase = Phase.AwaitingConnect;
        return undefined;
      default:
        return this.dispatch(command);
    }
  }

  private storeMacros(forCommand: number, pairs: [string, string][]): void {
    this.macros.set(forCommand, pairs);
    // Dropping loses no mail (a rule sees the macro as absent); closing would make the MTA
    // apply its default action to every message of the connection.
    if (this.macros.dropped > 0 && !this.macrosDroppedNoted) {
      this.macrosDroppedNoted = true;
      this.log(
        "warn",
        { limit: this.options.maxMacroBytes, dropped: this.macros.dropped },
        "macros from the MTA over the per-connection limit: dropping those that do not fit (logged once per connection)",
      );
    }
  }

  // --- Negotiation -----------------------------------------------------------------------

  private negotiate(offer: Extract<MilterCommand, { type: "optneg" }>): void {
    if (this.phase !== Phase.AwaitingNegotiation) {
      this.protocolError("second option negotiation on one connection");
      return;
    }
    if (offer.version < MIN_PROTOCOL_VERSION) {
      this.protocolError(`MTA speaks milter protocol version ${offer.version}; version 2 or later is needed`);
      return;
    }
    const agreement = agreementFor(this.handler, offer);
    this.interests = agreement.interests;
    // The macros the handler named are all it reads: others are not kept, whatever the MTA sends.
    if (agreement.keptMacros !== undefined) this.macros.keepOnly(agreement.keptMacros);
    const { version, actions, protocol } = agreement;
    this.negotiated.version = version;
    this.negotiated.actions = actions;
    this.negotiated.protocol = protocol;
    this.sentStages = agreement.sentStages;
    this.answeredStages = agreement.answeredStages;
    this.phase = Phase.AwaitingConnect;
    clearTimeout(this.negotiationTimer);
    this.events.negotiated(this);
    this.socket.setTimeout(this.options.idleTimeoutMs);
    this.write(agreement.reply);
    if (this.options.logger.isLevelEnabled?.("debug") === false) return;
    this.log(
      "debug",
      { version, actions: hex(actions), protocol: hex(protocol), offered: hex(offer.protocol) },
      "negotiated",
    );
  }

  // --- State machine ---------------------------------------------------------------------

  private get connected(): boolean {
    return (
      this.phase >= Phase.Connected ||
      (this.phase === Phase.AwaitingConnect && !this.sentStages.has("connect"))
    );
  }

  /** A message is in progress, or may start implicitly because the MTA skips MAIL for us. */
  private enterMessage(): boolean {
    if (this.phase >= Phase.Mail) return true;
    if (!this.connected || this.sentStages.has("mail")) return false;
    this.phase = Phase.Mail;
    return true;
  }

  /** Returns the reason a command is out of order here, or undefined when it may proceed. */
  private admit(stage: Stage): string | undefined {
    switch (stage) {
      case "connect":
        if (this.phase !== Phase.AwaitingConnect) return "CONNECT on a connection that already has a client";
        this.phase = Phase.Connected;
        return undefined;
      case "helo":
        if (!this.connected) return "HELO before CONNECT";
        if (this.inTransaction) this.endMessage(true); // A new EHLO ends the transaction.
        this.phase = Phase.Connected;
        return undefined;
      case "mail":
        if (!this.connected) return "MAIL before CONNECT";
        // Sendmail starts the next message with MAIL directly, without an ABORT (also after a
        // MAIL the filter refused). The macros that came with this MAIL belong to the new
        // message: keep them (entering the MAIL stage drops those of later stages).
        if (this.inTransaction) this.endMessage(true, false);
        this.phase = Phase.Mail;
        return undefined;
      case "rcpt":
        if (!this.enterMessage()) return "RCPT before MAIL";
        if (this.phase > Phase.Rcpt) return "RCPT after DATA";
        this.phase = Phase.Rcpt;
        return undefined;
      case "data":
        if (!this.enterMessage()) return "DATA before MAIL";
        if (this.phase > Phase.Rcpt) return "DATA twice in one message";
        if (this.phase < Phase.Rcpt && this.sentStages.has("rcpt")) return "DATA before any RCPT";
        this.phase = Phase.Data;
        return undefined;
      case "header":
        if (!this.enterMessage()) return "header before MAIL";
        if (this.phase > Phase.Headers) return "header after the end of headers";
        this.phase = Phase.Headers;
        return undefined;
      case "eoh":
        if (!this.enterMessage()) return "end of headers before MAIL";
        if (this.phase > Phase.Headers) return "end of headers twice";
        this.phase = Phase.EndOfHeaders;
        return undefined;
      case "body":
        if (!this.enterMessage()) return "body before MAIL";
        if (this.phase < Phase.EndOfHeaders && this.sentStages.has("eoh"))
          return "body before end of headers";
        this.phase = Phase.Body;
        return undefined;
      case "eom":
        if (!this.enterMessage()) return "end of message before MAIL";
        return undefined;
      case "unknown":
        return this.connected ? undefined : "unknown SMTP command before CONNECT";
    }
  }

  /** Ends the message in progress (after EOM, on ABORT, or implicitly). */
  private endMessage(aborted: boolean, clearMacros = true): void {
    if (this.phase >= Phase.Mail) {
      if (aborted) this.safely("abort", () => this.handler.abort?.(this));
      this.phase = Phase.Connected;
    }
    if (clearMacros) this.macros.clearMessage();
  }

  // --- Dispatch --------------------------------------------------------------------------

  /** The handler may set its own deadline and fallback (they may change between its events). */
  private get handlerTimeoutMs(): number {
    return this.handler.handlerTimeoutMs ?? this.options.handlerTimeoutMs;
  }

  private get fallback(): Reply {
    return this.handler.fallback ?? this.options.fallback;
  }

  private dispatch(
    command: Exclude<MilterCommand, { type: "optneg" | "macro" | "abort" | "quit" | "quitNewConnection" }>,
  ) {
    // Command types are named after their stages.
    const stage: Stage = command.type;
    const answered = this.answeredStages.has(stage);
    const outOfOrder = this.admit(stage);
    if (outOfOrder !== undefined) {
      this.log("warn", { stage }, `command out of order: ${outOfOrder}; answering the fallback reply`);
      if (answered) this.sendReply(stage, this.fallback);
      return undefined;
    }
    this.macros.enterStage(STAGE_WIRE[stage].command);
    if (command.type === "eom") return this.endOfMessage(command.chunk);

    const method = this.interests[stage] === undefined ? undefined : this.handler[stage];
    if (method === undefined) {
      // The MTA sent a stage we asked it to skip (an old MTA cannot skip everything).
      if (answered) this.write(PACKET.continue);
      return undefined;
    }
    return this.invoke<StageResult>(
      stage,
      () => this.callStage(command),
      (result) => {
        if (answered) this.sendReply(stage, result ?? { action: "continue" });
      },
      () => {
        if (answered) this.sendReply(stage, this.fallback);
      },
    );
  }

  private callStage(command: MilterCommand): StageResult | Promise<StageResult> {
    const h = this.handler;
    switch (command.type) {
      case "connect": {
        const info: ConnectInfo = {
          hostname: command.hostname,
          family: command.family,
          port: command.port,
          address: command.address,
        };
        return h.connect?.(info, this);
      }
      case "helo":
        return h.helo?.(command.name, this);
      case "mail":
        return h.mail?.(command.sender, command.args, this);
      case "rcpt":
        return h.rcpt?.(command.recipient, command.args, this);
      case "data":
        return h.data?.(this);
      case "header":
        return h.header?.(command.name, command.value, this);
      case "eoh":
        return h.eoh?.(this);
      case "body":
        return h.body?.(command.chunk, this);
      case "unknown":
        return h.unknown?.(command.line, this);
      default:
        return undefined;
    }
  }

  private endOfMessage(lastChunk: Buffer): Promise<void> | undefined {
    const finish = () => this.endMessage(false);
    const call = (): EndOfMessageResult | StageResult | Promise<EndOfMessageResult | StageResult> => {
      // libmilter treats a payload on end-of-message as one last body chunk.
      if (lastChunk.length > 0 && this.interests.body !== undefined && this.handler.body !== undefined) {
        const before = this.handler.body(lastChunk, this);
        if (isPromiseLike(before)) return Promise.resolve(before).then(() => this.handler.eom?.(this));
      }
      return this.handler.eom?.(this);
    };
    return this.invoke(
      "eom",
      call,
      (result) => {
        const final = result ? ("action" in result ? { reply: result } : result) : undefined;
        this.sendEndOfMessage(final?.reply ?? { action: "continue" }, final?.modifications ?? []);
        finish();
      },
      () => {
        this.sendReply("eom", this.fallback);
        finish();
      },
    );
  }

  /**
   * Runs a handler call with the deadline: a sync result is handled at once (the fast path);
   * a promise is raced against the timer. Throwing, rejecting or timing out → `onFailure`.
   */
  private invoke<T>(
    stage: Stage,
    call: () => T | Promise<T>,
    onResult: (value: T) => void,
    onFailure: () => void,
  ): Promise<void> | undefined {
    let result: T | Promise<T>;
    try {
      result = call();
    } catch (error) {
      this.log("error", { stage, err: describe(error) }, "handler failed; answering the fallback reply");
      onFailure();
      return undefined;
    }
    if (!isPromiseLike<T>(result)) {
      onResult(result);
      return undefined;
    }
    return new Promise<void>((resolve) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        this.log(
          "error",
          { stage, timeoutMs: this.handlerTimeoutMs },
          "handler did not answer in time; answering the fallback reply",
        );
        if (!this.closed) onFailure();
        resolve();
      }, this.handlerTimeoutMs);
      (result as Promise<T>).then(
        (value) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          if (!this.closed) onResult(value);
          resolve();
        },
        (error: unknown) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          this.log("error", { stage, err: describe(error) }, "handler failed; answering the fallback reply");
          if (!this.closed) onFailure();
          resolve();
        },
      );
    });
  }

  // --- Output ----------------------------------------------------------------------------

  private sendReply(stage: Stage, value: Reply): void {
    let effective = value;
    // Skip is only meaningful for body chunks, and only when negotiated; elsewhere it is continue.
    if (
      value.action === "skip" &&
      (stage !== "body" || (this.negotiated.protocol & ProtocolFlag.Skip) === 0)
    ) {
      effective = { action: "continue" };
    }
    const encoded = encodeReply(effective);
    if (encoded instanceof InvalidReply) {
      this.log(
        "error",
        { stage, reply: value },
        `handler answered an invalid reply (${encoded.message}); using the fallback`,
      );
      const fallback = encodeReply(this.fallback);
      this.write(fallback instanceof InvalidReply ? PACKET.tempfail : fallback);
      return;
    }
    this.write(encoded);
  }

  private sendEndOfMessage(final: Reply, modifications: readonly Modification[]): void {
    // Postfix needs body replacement packets back to back, so they go last.
    const ordered = [
      ...modifications.filter((m) => m.type !== "replaceBody"),
      ...modifications.filter((m) => m.type === "replaceBody"),
    ];
    // The modifications and the final reply leave in one writev, not one write each.
    if (ordered.length > 0 && !this.closed) {
      this.socket.cork();
      try {
        this.sendModifications(ordered);
        this.sendReply("eom", final);
      } finally {
        this.socket.uncork();
      }
      return;
    }
    this.sendReply("eom", final);
  }

  private sendModifications(ordered: readonly Modification[]): void {
    for (const modification of ordered) {
      const flag = actionFlagFor(modification);
      if ((this.negotiated.actions & flag) === 0) {
        this.log(
          "error",
          { modification: modification.type },
          "modification not negotiated with the MTA; dropped",
        );
        continue;
      }
      const packets = encodeModification(modification);
      if (packets instanceof InvalidReply) {
        this.log(
          "error",
          { modification: modification.type },
          `invalid modification dropped: ${packets.message}`,
        );
        continue;
      }
      for (const packet of packets) this.write(packet);
    }
  }

  private write(packet: Buffer): void {
    if (this.closed) return;
    if (!this.socket.write(packet) && !this.writeBlocked) this.blockWrites();
  }

  /** The MTA does not read what we send: stop reading and processing until it does. */
  private blockWrites(): void {
    this.writeBlocked = true;
    this.socket.once("drain", this.unblockWrites);
    this.stallTimer = setTimeout(() => {
      this.log(
        "warn",
        { timeoutMs: this.options.writeStallTimeoutMs, unsentBytes: this.socket.writableLength },
        "closing connection: the MTA does not read our replies",
      );
      this.close();
    }, this.options.writeStallTimeoutMs);
    this.flow();
  }

  private readonly unblockWrites = (): void => {
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    this.writeBlocked = false;
    if (!this.closed) this.pump();
  };

  // --- Helpers ---------------------------------------------------------------------------

  private safely(what: string, action: () => void): void {
    try {
      action();
    } catch (error) {
      this.log("error", { err: describe(error) }, `handler ${what} failed`);
    }
  }

  private log(level: LogLevel, fields: object, message: string): void {
    const logger = this.options.logger;
    // The peer costs a getpeername() per connection: not for a debug line that is not written.
    if (logger.isLevelEnabled?.(level) === false) return;
    // The peer names the MTA connection, so a postmaster can find who sent what was refused.
    logger[level]({ conn: this.id, peer: this.peer, ...fields }, message);
  }
}

type LogLevel = "debug" | "info" | "warn" | "error";

function hex(value: number): string {
  return `0x${value.toString(16)}`;
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}
