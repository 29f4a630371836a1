/**
 * Milter framing and the typed values of every command and response.
 *
 * A packet is a 32-bit big-endian length, one code byte, and `length - 1` payload bytes.
 * Decoding never throws on hostile input: it answers a `ProtocolError` value instead.
 */
import { Command, Response } from "./constants.js";

export type ConnectFamily = "inet" | "inet6" | "unix" | "unknown";

export interface ConnectInfo {
  /** The client's host name as the MTA reports it (Postfix: `[1.2.3.4]` when unknown). */
  hostname: string;
  family: ConnectFamily;
  port: number;
  /** Client address; Sendmail's `IPv6:` prefix is removed. Empty for family `unknown`. */
  address: string;
}

export type MilterCommand =
  | { type: "optneg"; version: number; actions: number; protocol: number; macroLists: Map<number, string> }
  | { type: "macro"; forCommand: number; macros: [string, string][] }
  | ({ type: "connect" } & ConnectInfo)
  | { type: "helo"; name: string }
  | { type: "mail"; sender: string; args: string[] }
  | { type: "rcpt"; recipient: string; args: string[] }
  | { type: "data" }
  | { type: "header"; name: string; value: string }
  | { type: "eoh" }
  | { type: "body"; chunk: Buffer }
  | { type: "eom"; chunk: Buffer }
  | { type: "unknown"; line: string }
  | { type: "abort" }
  | { type: "quit" }
  | { type: "quitNewConnection" };

/** What the filter may send back, decoded (used by the MTA-side client). */
export type MilterResponse =
  | { type: "optneg"; version: number; actions: number; protocol: number; macroLists: Map<number, string> }
  | { type: "continue" }
  | { type: "accept" }
  | { type: "reject" }
  | { type: "tempfail" }
  | { type: "discard" }
  | { type: "replycode"; text: string }
  | { type: "shutdown" }
  | { type: "skip" }
  | { type: "progress" }
  | { type: "quarantine"; reason: string }
  | { type: "addHeader"; name: string; value: string }
  | { type: "insertHeader"; index: number; name: string; value: string }
  | { type: "changeHeader"; index: number; name: string; value: string }
  | { type: "changeFrom"; address: string; args: string | undefined }
  | { type: "addRecipient"; address: string; args: string | undefined }
  | { type: "deleteRecipient"; address: string }
  | { type: "replaceBody"; chunk: Buffer };

export class ProtocolError {
  constructor(readonly message: string) {}
}

export interface Frame {
  code: number;
  payload: Buffer;
}

/** Reads shorter than this are merged into the previous one (a peer trickling bytes keeps the list short). */
const SMALL_READ = 4096;

/**
 * Cuts a byte stream into frames. Copes with a packet split over many reads and with many
 * packets in one read. Input is kept as the reads it came in (no copy) until it is taken as a
 * frame: a packet spread over many reads is copied once, when it is complete, so a peer that
 * sends a length and then trickles bytes never makes us allocate what it announced.
 */
export class FrameReader {
  /** Unconsumed input; `chunks[0]` is read from `head`. */
  private chunks: Buffer[] = [];
  private head = 0;
  private held = 0;
  private failure: ProtocolError | undefined;

  constructor(private readonly maxPacketBytes: number) {}

  /** Bytes received and not yet taken as frames (whole packets waiting and an unfinished one). */
  get bufferedBytes(): number {
    return this.held;
  }

  /** Whether `next()` would answer something now (a whole packet or an error). */
  get hasFrame(): boolean {
    const length = this.peekLength();
    if (length === undefined) return false;
    return length === 0 || length > this.maxPacketBytes || this.held >= 4 + length;
  }

  /** Keeps bytes for `next()`. */
  append(chunk: Buffer): void {
    if (chunk.length === 0 || this.failure !== undefined) return;
    const last = this.chunks.length - 1;
    const tail = this.chunks[last];
    if (
      tail !== undefined &&
      chunk.length < SMALL_READ &&
      tail.length - (last === 0 ? this.head : 0) < SMALL_READ
    ) {
      this.chunks[last] = Buffer.concat([last === 0 ? tail.subarray(this.head) : tail, chunk]);
      if (last === 0) this.head = 0;
    } else {
      this.chunks.push(chunk);
    }
    this.held += chunk.length;
  }

  /**
   * The next whole frame, undefined when none is complete yet, or a `ProtocolError` when the
   * stream is no longer trustworthy (zero or absurd length): the caller must then close.
   */
  next(): Frame | ProtocolError | undefined {
    if (this.failure !== undefined) return this.failure;
    const length = this.peekLength();
    if (length === undefined) return undefined;
    if (length === 0) return this.fail("packet length 0");
    if (length > this.maxPacketBytes)
      return this.fail(`packet length ${length} exceeds the limit of ${this.maxPacketBytes} bytes`);
    if (this.held < 4 + length) {
      this.compact();
      return undefined;
    }
    const first = this.chunks[0] as Buffer;
    if (first.length - this.head >= 4 + length) {
      const at = this.head;
      this.skip(4 + length);
      return { code: first[at + 4] as number, payload: first.subarray(at + 5, at + 4 + length) };
    }
    const whole = this.take(4 + length);
    return { code: whole[4] as number, payload: whole.subarray(5) };
  }

  /**
   * Feeds bytes and returns every complete frame; a `ProtocolError` ends the list when the
   * stream is no longer trustworthy. The caller must then close.
   */
  push(chunk: Buffer): (Frame | ProtocolError)[] {
    this.append(chunk);
    const frames: (Frame | ProtocolError)[] = [];
    for (;;) {
      const item = this.next();
      if (item === undefined) return frames;
      frames.push(item);
      if (item instanceof ProtocolError) return frames;
    }
  }

  private peekLength(): number | undefined {
    if (this.held < 4) return undefined;
    const first = this.chunks[0] as Buffer;
    if (first.length - this.head >= 4) return first.readUInt32BE(this.head);
    let length = 0;
    let index = 0;
    let at = this.head;
    for (let i = 0; i < 4; i++) {
      let chunk = this.chunks[index] as Buffer;
      while (at >= chunk.length) {
        index++;
        at = 0;
        chunk = this.chunks[index] as Buffer;
      }
      length = length * 256 + (chunk[at++] as number);
    }
    return length;
  }

  private fail(message: string): ProtocolError {
    this.failure = new ProtocolError(message);
    this.chunks = [];
    this.head = 0;
    this.held = 0;
    return this.failure;
  }

  /** Drops `count` bytes, all inside the first chunk. */
  private skip(count: number): void {
    this.head += count;
    this.held -= count;
    if (this.head === (this.chunks[0] as Buffer).length) {
      this.chunks.shift();
      this.head = 0;
    }
  }

  /** Copies out and drops the next `count` bytes, which span several chunks. */
  private take(count: number): Buffer {
    const out = Buffer.allocUnsafe(count);
    let filled = 0;
    while (filled < count) {
      const chunk = this.chunks[0] as Buffer;
      const n = Math.min(chunk.length - this.head, count - filled);
      chunk.copy(out, filled, this.head, this.head + n);
      filled += n;
      this.skip(n);
    }
    return out;
  }

  /** A few leftover bytes of a large read are copied, so the read's buffer is not retained for them. */
  private compact(): void {
    const first = this.chunks[0] as Buffer;
    if (this.head > 0 && first.length - this.head < SMALL_READ) {
      this.chunks[0] = Buffer.from(first.subarray(this.head));
      this.head = 0;
    }
  }
}

/** Splits a NUL-terminated string list. Answers null when the payload does not end in NUL. */
function splitStrings(payload: Buffer): string[] | null {
  if (payload.length === 0 || payload[payload.length - 1] !== 0) return null;
  const parts: string[] = [];
  let start = 0;
  for (;;) {
    const end = payload.indexOf(0, start);
    if (end === -1) break;
    parts.push(payload.toString("utf8", start, end));
    start = end + 1;
    if (start >= payload.length) break;
  }
  return parts;
}

function decodeMacroLists(payload: Buffer, offset: number): Map<number, string> | ProtocolError {
  const lists = new Map<number, string>();
  let at = offset;
  while (at < payload.length) {
    if (payload.length - at < 5) return new ProtocolError("truncated macro list in negotiation");
    const stage = payload.readUInt32BE(at);
    const end = payload.indexOf(0, at + 4);
    if (end === -1) return new ProtocolError("unterminated macro list in negotiation");
    lists.set(stage, payload.toString("latin1", at + 4, end));
    at = end + 1;
  }
  return lists;
}

function decodeNegotiation(payload: Buffer): MilterCommand | ProtocolError {
  if (payload.length < 12)
    return new ProtocolError(`negotiation packet of ${payload.length} bytes, expected 12`);
  const macroLists = decodeMacroLists(payload, 12);
  if (macroLists instanceof ProtocolError) return macroLists;
  return {
    type: "optneg",
    version: payload.readUInt32BE(0),
    actions: payload.readUInt32BE(4),
    protocol: payload.readUInt32BE(8),
    macroLists,
  };
}

function decodeConnect(payload: Buffer): MilterCommand | ProtocolError {
  const hostEnd = payload.indexOf(0);
  if (hostEnd === -1) return new ProtocolError("connect: unterminated host name");
  const hostname = payload.toString("utf8", 0, hostEnd);
  if (payload.length < hostEnd + 2) return new ProtocolError("connect: missing address family");
  const familyByte = String.fromCharCode(payload[hostEnd + 1] as number);
  if (familyByte === "U") return { type: "connect", hostname, family: "unknown", port: 0, address: "" };
  const family: ConnectFamily | undefined =
    familyByte === "4" ? "inet" : familyByte === "6" ? "inet6" : familyByte === "L" ? "unix" : undefined;
  if (family === undefined) return new ProtocolError(`connect: unknown address family '${familyByte}'`);
  const portAt = hostEnd + 2;
  if (payload.length < portAt + 3) return new ProtocolError("connect: truncated port or address");
  const port = payload.readUInt16BE(portAt);
  const addressEnd = payload.indexOf(0, portAt + 2);
  if (addressEnd === -1) return new ProtocolError("connect: unterminated address");
  let address = payload.toString("utf8", portAt + 2, addressEnd);
  // Sendmail writes IPv6 client addresses as "IPv6:2001:db8::1".
  if (address.length > 5 && address.slice(0, 5).toLowerCase() === "ipv6:") address = address.slice(5);
  return { type: "connect", hostname, family, port, address };
}

/** Decides, from a macro's name bytes and value size, the name to keep it under, or undefined to drop it. */
export type MacroFilter = (name: Buffer, valueBytes: number) => string | undefined;

const keepEveryMacro: MacroFilter = (name) => name.toString("utf8");

/**
 * Decodes a macro packet. `keep` sees each pair before anything of it is decoded, so a flood of
 * macros nobody asked for (or too large to keep) costs no strings.
 */
export function decodeMacro(
  payload: Buffer,
  keep: MacroFilter = keepEveryMacro,
): MilterCommand | ProtocolError {
  if (payload.length < 1) return new ProtocolError("macro packet without a command code");
  const forCommand = payload[0] as number;
  const macros: [string, string][] = [];
  if (payload.length === 1) return { type: "macro", forCommand, macros };
  if (payload[payload.length - 1] !== 0) return new ProtocolError("macro packet not NUL-terminated");
  let at = 1;
  while (at < payload.length) {
    const nameEnd = payload.indexOf(0, at);
    const valueEnd = payload.indexOf(0, nameEnd + 1);
    // A dangling name without a value is tolerated, like libmilter does: it is dropped.
    if (valueEnd === -1) break;
    const name = keep(payload.subarray(at, nameEnd), valueEnd - nameEnd - 1);
    if (name !== undefined) macros.push([name, payload.toString("utf8", nameEnd + 1, valueEnd)]);
    at = valueEnd + 1;
  }
  return { type: "macro", forCommand, macros };
}

function decodeEnvelope(kind: "mail" | "rcpt", payload: Buffer): MilterCommand | ProtocolError {
  const strings = splitStrings(payload);
  if (strings === null || strings.length === 0) return new ProtocolError(`${kind}: malformed address packet`);
  const [address, ...args] = strings as [string, ...string[]];
  return kind === "mail"
    ? { type: "mail", sender: address, args }
    : { type: "rcpt", recipient: address, args };
}

function single(kind: string, payload: Buffer): string | ProtocolError {
  const strings = splitStrings(payload);
  if (strings === null || strings.length !== 1)
    return new ProtocolError(`${kind}: expected one NUL-terminated string`);
  return strings[0] as string;
}

/** Decodes one MTA command. Unknown codes and malformed payloads come back as `ProtocolError`. */
export function decodeCommand(frame: Frame): MilterCommand | ProtocolError {
  const { code, payload } = frame;
  switch (code) {
    case Command.OptionNegotiation:
      return decodeNegotiation(payload);
    case Command.Macro:
      return decodeMacro(payload);
    case Command.Connect:
      return decodeConnect(payload);
    case Command.Helo: {
      const name = single("helo", payload);
      return name instanceof ProtocolError ? name : { type: "helo", name };
    }
    case Command.Mail:
      return decodeEnvelope("mail", payload);
    case Command.Rcpt:
      return decodeEnvelope("rcpt", payload);
    case Command.Data:
      return { type: "data" };
    case Command.Header: {
      const strings = splitStrings(payload);
      if (strings === null || strings.length !== 2)
        return new ProtocolError("header: expected name and value");
      return { type: "header", name: strings[0] as string, value: strings[1] as string };
    }
    case Command.EndOfHeaders:
      return { type: "eoh" };
    case Command.Body:
      return { type: "body", chunk: payload };
    case Command.EndOfMessage:
      return { type: "eom", chunk: payload };
    case Command.Unknown: {
      // Sendmail sends the line NUL-terminated; be lenient if the NUL is missing.
      const end = payload.indexOf(0);
      return { type: "unknown", line: payload.toString("utf8", 0, end === -1 ? payload.length : end) };
    }
    case Command.Abort:
      return { type: "abort" };
    case Command.Quit:
      return { type: "quit" };
    case Command.QuitNewConnection:
      return { type: "quitNewConnection" };
    default:
      return new ProtocolError(`unknown command byte 0x${code.toString(16).padStart(2, "0")}`);
  }
}

// ---------------------------------------------------------------------------------------
// Encoding

type Part = string | Buffer | { uint32: number } | { uint16: number } | { byte: number };

function partLength(part: Part): number {
  if (typeof part === "string") return Buffer.byteLength(part, "utf8") + 1;
  if (Buffer.isBuffer(part)) return part.length;
  if ("uint32" in part) return 4;
  if ("uint16" in part) return 2;
  return 1;
}

/** Builds one whole packet (header and payload) so it can go out in a single write. */
export function packet(code: number, ...parts: Part[]): Buffer {
  let payloadLength = 0;
  for (const part of parts) payloadLength += partLength(part);
  const out = Buffer.allocUnsafe(5 + payloadLength);
  out.writeUInt32BE(payloadLength + 1, 0);
  out[4] = code;
  let at = 5;
  for (const part of parts) {
    if (typeof part === "string") {
      at += out.write(part, at, "utf8");
      out[at++] = 0;
    } else if (Buffer.isBuffer(part)) {
      at += part.copy(out, at);
    } else if ("uint32" in part) {
      at = out.writeUInt32BE(part.uint32 >>> 0, at);
    } else if ("uint16" in part) {
      at = out.writeUInt16BE(part.uint16 & 0xffff, at);
    } else {
      out[at++] = part.byte;
    }
  }
  return out;
}

/** Frequent one-byte replies, built once. */
export const PACKET = {
  continue: packet(Response.Continue),
  accept: packet(Response.Accept),
  reject: packet(Response.Reject),
  tempfail: packet(Response.Tempfail),
  discard: packet(Response.Discard),
  skip: packet(Response.Skip),
  progress: packet(Response.Progress),
} as const;

export function encodeNegotiation(
  code: number,
  version: number,
  actions: number,
  protocol: number,
  macroLists: Map<number, string> = new Map(),
): Buffer {
  const parts: Part[] = [{ uint32: version }, { uint32: actions }, { uint32: protocol }];
  for (const [stage, names] of macroLists) parts.push({ uint32: stage }, names);
  return packet(code, ...parts);
}

/** Encodes an MTA-side command (used by the client). */
export function encodeCommand(command: MilterCommand): Buffer {
  switch (command.type) {
    case "optneg":
      return encodeNegotiation(
        Command.OptionNegotiation,
        command.version,
        command.actions,
        command.protocol,
        command.macroLists,
      );
    case "macro":
      return packet(Command.Macro, { byte: command.forCommand }, ...command.macros.flat());
    case "connect": {
      if (command.family === "unknown") return packet(Command.Connect, command.hostname, { byte: 0x55 });
      const familyByte = command.family === "inet" ? 0x34 : command.family === "inet6" ? 0x36 : 0x4c;
      return packet(
        Command.Connect,
        command.hostname,
        { byte: familyByte },
        { uint16: command.port },
        command.address,
      );
    }
    case "helo":
      return packet(Command.Helo, command.name);
    case "mail":
      return packet(Command.Mail, command.sender, ...command.args);
    case "rcpt":
      return packet(Command.Rcpt, command.recipient, ...command.args);
    case "data":
      return packet(Command.Data);
    case "header":
      return packet(Command.Header, command.name, command.value);
    case "eoh":
      return packet(Command.EndOfHeaders);
    case "body":
      return packet(Command.Body, command.chunk);
    case "eom":
      return packet(Command.EndOfMessage, command.chunk);
    case "unknown":
      return packet(Command.Unknown, command.line);
    case "abort":
      return packet(Command.Abort);
    case "quit":
      return packet(Command.Quit);
    case "quitNewConnection":
      return packet(Command.QuitNewConnection);
  }
}

function optionalSecond(strings: string[]): string | undefined {
  return strings.length > 1 ? strings[1] : undefined;
}

/** Decodes a filter response (used by the client). */
export function decodeResponse(frame: Frame): MilterResponse | ProtocolError {
  const { code, payload } = frame;
  const empty = <T extends MilterResponse>(value: T): T | ProtocolError =>
    payload.length === 0
      ? value
      : new ProtocolError(
          `response '${String.fromCharCode(code)}' carries ${payload.length} unexpected bytes`,
        );
  switch (code) {
    case Response.OptionNegotiation: {
      const negotiation = decodeNegotiation(payload);
      if (negotiation instanceof ProtocolError || negotiation.type !== "optneg")
        return negotiation as ProtocolError;
      return { ...negotiation, type: "optneg" };
    }
    case Response.Continue:
      return empty({ type: "continue" });
    case Response.Accept:
      return empty({ type: "accept" });
    case Response.Reject:
      return empty({ type: "reject" });
    case Response.Tempfail:
      return empty({ type: "tempfail" });
    case Response.Discard:
      return empty({ type: "discard" });
    case Response.Shutdown:
      return empty({ type: "shutdown" });
    case Response.Skip:
      return empty({ type: "skip" });
    case Response.Progress:
      return empty({ type: "progress" });
    case Response.ReplyCode: {
      const text = single("replycode", payload);
      return text instanceof ProtocolError ? text : { type: "replycode", text };
    }
    case Response.Quarantine: {
      const reason = single("quarantine", payload);
      return reason instanceof ProtocolError ? reason : { type: "quarantine", reason };
    }
    case Response.AddHeader: {
      const strings = splitStrings(payload);
      if (strings?.length !== 2) return new ProtocolError("addheader: expected name and value");
      return { type: "addHeader", name: strings[0] as string, value: strings[1] as string };
    }
    case Response.InsertHeader:
    case Response.ChangeHeader: {
      if (payload.length < 4) return new ProtocolError("header change: truncated index");
      const strings = splitStrings(payload.subarray(4));
      if (strings?.length !== 2) return new ProtocolError("header change: expected name and value");
      const index = payload.readUInt32BE(0);
      const [name, value] = strings as [string, string];
      return code === Response.InsertHeader
        ? { type: "insertHeader", index, name, value }
        : { type: "changeHeader", index, name, value };
    }
    case Response.ChangeFrom:
    case Response.AddRecipient:
    case Response.AddRecipientWithArgs: {
      const strings = splitStrings(payload);
      if (strings === null || strings.length < 1 || strings.length > 2) {
        return new ProtocolError("address change: expected an address and at most one argument string");
      }
      const address = strings[0] as string;
      return code === Response.ChangeFrom
        ? { type: "changeFrom", address, args: optionalSecond(strings) }
        : { type: "addRecipient", address, args: optionalSecond(strings) };
    }
    case Response.DeleteRecipient: {
      const address = single("delrcpt", payload);
      return address instanceof ProtocolError ? address : { type: "deleteRecipient", address };
    }
    case Response.ReplaceBody:
      return { type: "replaceBody", chunk: payload };
    default:
      return new ProtocolError(`unknown response byte 0x${code.toString(16).padStart(2, "0")}`);
  }
}
