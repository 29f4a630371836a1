/**
 * Sendmail milter protocol constants (protocol version 6).
 *
 * Values are the wire values; names follow libmilter's SMFIC_/SMFIR_/SMFIF_/SMFIP_
 * families with readable spellings so the rest of the code reads like the protocol docs.
 */

/** Highest protocol version we speak. */
export const PROTOCOL_VERSION = 6;
/** Lowest MTA version we accept (libmilter refuses anything older). */
export const MIN_PROTOCOL_VERSION = 2;

/** Commands sent by the MTA (SMFIC_*), as their ASCII byte. */
export const Command = {
  OptionNegotiation: 0x4f, // 'O'
  Macro: 0x44, // 'D'
  Connect: 0x43, // 'C'
  Helo: 0x48, // 'H'
  Mail: 0x4d, // 'M'
  Rcpt: 0x52, // 'R'
  Data: 0x54, // 'T'
  Header: 0x4c, // 'L'
  EndOfHeaders: 0x4e, // 'N'
  Body: 0x42, // 'B'
  EndOfMessage: 0x45, // 'E'
  Unknown: 0x55, // 'U'
  Abort: 0x41, // 'A'
  Quit: 0x51, // 'Q'
  QuitNewConnection: 0x4b, // 'K'
} as const;
export type CommandCode = (typeof Command)[keyof typeof Command];

/** Responses sent by the filter (SMFIR_*), as their ASCII byte. */
export const Response = {
  OptionNegotiation: 0x4f, // 'O'
  Continue: 0x63, // 'c'
  Accept: 0x61, // 'a'
  Reject: 0x72, // 'r'
  Tempfail: 0x74, // 't'
  Discard: 0x64, // 'd'
  ReplyCode: 0x79, // 'y'
  Shutdown: 0x34, // '4'
  Skip: 0x73, // 's'
  Progress: 0x70, // 'p'
  Quarantine: 0x71, // 'q'
  AddHeader: 0x68, // 'h'
  InsertHeader: 0x69, // 'i'
  ChangeHeader: 0x6d, // 'm'
  ChangeFrom: 0x65, // 'e'
  AddRecipient: 0x2b, // '+'
  AddRecipientWithArgs: 0x32, // '2'
  DeleteRecipient: 0x2d, // '-'
  ReplaceBody: 0x62, // 'b'
} as const;

/** Action flags (SMFIF_*): what the filter may do at end of message. */
export const ActionFlag = {
  AddHeaders: 0x001,
  ChangeBody: 0x002,
  AddRecipient: 0x004,
  DeleteRecipient: 0x008,
  ChangeHeaders: 0x010,
  Quarantine: 0x020,
  ChangeFrom: 0x040,
  AddRecipientWithArgs: 0x080,
  SetMacroList: 0x100,
} as const;

/** Protocol flags (SMFIP_*): which events the MTA skips, and which it expects no reply to. */
export const ProtocolFlag = {
  NoConnect: 0x00000001,
  NoHelo: 0x00000002,
  NoMail: 0x00000004,
  NoRcpt: 0x00000008,
  NoBody: 0x00000010,
  NoHeaders: 0x00000020,
  NoEndOfHeaders: 0x00000040,
  NoReplyHeader: 0x00000080,
  NoUnknown: 0x00000100,
  NoData: 0x00000200,
  Skip: 0x00000400,
  RejectedRcpt: 0x00000800,
  NoReplyConnect: 0x00001000,
  NoReplyHelo: 0x00002000,
  NoReplyMail: 0x00004000,
  NoReplyRcpt: 0x00008000,
  NoReplyData: 0x00010000,
  NoReplyUnknown: 0x00020000,
  NoReplyEndOfHeaders: 0x00040000,
  NoReplyBody: 0x00080000,
  HeaderLeadingSpace: 0x00100000,
} as const;

/** The events a handler can see, in SMTP order. */
export const STAGES = [
  "connect",
  "helo",
  "mail",
  "rcpt",
  "data",
  "header",
  "eoh",
  "body",
  "eom",
  "unknown",
] as const;
export type Stage = (typeof STAGES)[number];

/** Per stage: the command byte, the flag that skips it, and the flag that waives its reply. */
export const STAGE_WIRE: Record<Stage, { command: number; skipFlag: number; noReplyFlag: number }> = {
  connect: {
    command: Command.Connect,
    skipFlag: ProtocolFlag.NoConnect,
    noReplyFlag: ProtocolFlag.NoReplyConnect,
  },
  helo: { command: Command.Helo, skipFlag: ProtocolFlag.NoHelo, noReplyFlag: ProtocolFlag.NoReplyHelo },
  mail: { command: Command.Mail, skipFlag: ProtocolFlag.NoMail, noReplyFlag: ProtocolFlag.NoReplyMail },
  rcpt: { command: Command.Rcpt, skipFlag: ProtocolFlag.NoRcpt, noReplyFlag: ProtocolFlag.NoReplyRcpt },
  data: { command: Command.Data, skipFlag: ProtocolFlag.NoData, noReplyFlag: ProtocolFlag.NoReplyData },
  header: {
    command: Command.Header,
    skipFlag: ProtocolFlag.NoHeaders,
    noReplyFlag: ProtocolFlag.NoReplyHeader,
  },
  eoh: {
    command: Command.EndOfHeaders,
    skipFlag: ProtocolFlag.NoEndOfHeaders,
    noReplyFlag: ProtocolFlag.NoReplyEndOfHeaders,
  },
  body: { command: Command.Body, skipFlag: ProtocolFlag.NoBody, noReplyFlag: ProtocolFlag.NoReplyBody },
  // End of message can be neither skipped nor left unanswered.
  eom: { command: Command.EndOfMessage, skipFlag: 0, noReplyFlag: 0 },
  unknown: {
    command: Command.Unknown,
    skipFlag: ProtocolFlag.NoUnknown,
    noReplyFlag: ProtocolFlag.NoReplyUnknown,
  },
};

/** Stages for which a macro list can be requested in the negotiation reply (SMFIM_*). */
export const MACRO_STAGE_NUMBER = {
  connect: 0,
  helo: 1,
  mail: 2,
  rcpt: 3,
  data: 4,
  eom: 5,
  eoh: 6,
} as const;
export type MacroStage = keyof typeof MACRO_STAGE_NUMBER;

/** What Postfix, Sendmail and miltertest offer today: everything up to HDR_LEADSPC. */
export const ALL_ACTIONS = 0x1ff;
export const ALL_PROTOCOL_FLAGS = 0x1fffff;

/** libmilter refuses MTA packets above 64 KiB; we accept more because Postfix may send a long header. */
export const DEFAULT_MAX_PACKET_BYTES = 1024 * 1024;
/** Largest payload we ever send in one packet (what libmilter-based MTAs read). */
export const MAX_SEND_PAYLOAD = 65535;

// Hardening defaults (SPEC.md "Hardening"): no peer may stall the server or exhaust its memory.

/** A new connection must have negotiated this long after accept (an absolute deadline). */
export const DEFAULT_NEGOTIATION_TIMEOUT_MS = 10_000;
/** A packet must be complete this long after its first byte arrived (bytes cannot extend it). */
export const DEFAULT_PACKET_TIMEOUT_MS = 30_000;
/** A connection whose replies the MTA does not read is closed after this long. */
export const DEFAULT_WRITE_STALL_TIMEOUT_MS = 60_000;
/** Connections accepted but not yet negotiated; more are closed at once. */
export const DEFAULT_MAX_PENDING_NEGOTIATIONS = 256;
/** Unprocessed MTA input held across all connections before reading is paused. */
export const DEFAULT_MAX_BUFFERED_INPUT = 64 * 1024 * 1024;
/** Macro names and values kept per connection (in characters). */
export const DEFAULT_MAX_MACRO_BYTES = 64 * 1024;
