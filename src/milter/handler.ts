/**
 * The contract between the protocol layer and whoever decides: one handler per MTA connection,
 * with an optional method per SMTP stage. A stage without a method is never asked for: the
 * MTA is told to skip it during negotiation.
 */
import type { ConnectInfo } from "./codec.js";
import type { MacroStage, Stage } from "./constants.js";
import type { EndOfMessageResult, Reply } from "./reply.js";

/** Anything pino-like. Fields first, message second. */
export interface MilterLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
  /** Whether lines of this level are written (pino's): a line nobody reads is not built. */
  isLevelEnabled?(level: string): boolean;
}

export const silentLogger: MilterLogger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** What the handler can see of its connection. */
export interface SessionContext {
  /** Connection number, unique in this process; use it to correlate log lines. */
  readonly id: number;
  /** Where the MTA connected from (not the SMTP client: that comes with `connect`). */
  readonly peer: string;
  /** The protocol version, actions and protocol flags agreed with the MTA. */
  readonly negotiated: Readonly<{ version: number; actions: number; protocol: number }>;
  /** A macro's current value (`"i"`, `"{auth_authen}"`), latest stage first. */
  macro(name: string): string | undefined;
  /** The macros the MTA sent with one stage's command. */
  macrosOf(stage: Stage): Record<string, string>;
}

/** `undefined` (or no return at all) means continue. */
// biome-ignore lint/suspicious/noConfusingVoidType: lets handlers that only observe simply return nothing
export type StageResult = Reply | undefined | void;
type MaybePromise<T> = T | Promise<T>;

/** How a handler wants a stage: `decide` may answer anything; `observe` never answers but continue. */
export type StageInterest = "decide" | "observe";

export interface NegotiationWishes {
  /**
   * Stages to receive. When absent, every stage with a method is wanted with `decide`.
   * `observe` stages are negotiated with the SMFIP_NR_* flags, so the MTA does not wait.
   */
  stages?: Partial<Record<Stage, StageInterest>>;
  /** SMFIF_* action flags for end-of-message modifications the handler may send. */
  actions?: number;
  /** Macro names per stage (sent as SMFIF_SETSYMLIST lists, replacing the MTA's lists for those stages). */
  macros?: Partial<Record<MacroStage, readonly string[]>>;
  /** Ask for header values exactly as received (SMFIP_HDR_LEADSPC). */
  headerLeadingSpace?: boolean;
}

export interface MilterHandler {
  /** Read once per MTA connection, at negotiation. */
  readonly wishes?: NegotiationWishes;
  /** This connection's deadline for one event, read at each event; default the server's handlerTimeoutMs. */
  readonly handlerTimeoutMs?: number | undefined;
  /** This connection's reply when the handler fails or hangs, read when needed; default the server's fallback. */
  readonly fallback?: Reply | undefined;
  connect?(info: ConnectInfo, session: SessionContext): MaybePromise<StageResult>;
  helo?(name: string, session: SessionContext): MaybePromise<StageResult>;
  mail?(sender: string, esmtpArgs: string[], session: SessionContext): MaybePromise<StageResult>;
  rcpt?(recipient: string, esmtpArgs: string[], session: SessionContext): MaybePromise<StageResult>;
  data?(session: SessionContext): MaybePromise<StageResult>;
  header?(name: string, value: string, session: SessionContext): MaybePromise<StageResult>;
  eoh?(session: SessionContext): MaybePromise<StageResult>;
  body?(chunk: Buffer, session: SessionContext): MaybePromise<StageResult>;
  eom?(session: SessionContext): MaybePromise<EndOfMessageResult | StageResult>;
  unknown?(line: string, session: SessionContext): MaybePromise<StageResult>;
  /** The current message was abandoned (RSET, a new MAIL, a new HELO): drop per-message state. */
  abort?(session: SessionContext): void;
  /** The MTA connection ended (QUIT, QUIT_NC, EOF, error or shutdown). */
  close?(session: SessionContext): void;
}

/** Facts about a new MTA connection, for the handler factory. */
export interface ConnectionInfo {
  id: number;
  peer: string;
}

export type HandlerFactory = (connection: ConnectionInfo) => MilterHandler;
