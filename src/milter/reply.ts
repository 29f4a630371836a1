/**
 * What a handler answers, and how it becomes bytes on the wire.
 *
 * A malformed custom reply must never reach the MTA: Postfix fails the whole SMTP session on
 * one, and Sendmail replaces it with its default (possibly turning a 4xx into a 5xx). So every
 * reply is checked here and refused (as a value) before anything is written.
 */

import { PACKET, packet } from "./codec.js";
import { ActionFlag, MAX_SEND_PAYLOAD, Response } from "./constants.js";

export type Reply =
  | { action: "continue" }
  | { action: "accept" }
  | { action: "discard" }
  /** Only meaningful as the answer to a body chunk: the MTA sends no more of the body. */
  | { action: "skip" }
  | { action: "reject" | "tempfail"; code?: number; enhancedCode?: string; text?: string };

export type Modification =
  | { type: "addHeader"; name: string; value: string }
  | { type: "insertHeader"; index: number; name: string; value: string }
  /** 1-based index among headers of that name; an empty value deletes the header. */
  | { type: "changeHeader"; index: number; name: string; value: string }
  | { type: "addRecipient"; address: string; esmtpArgs?: string }
  | { type: "deleteRecipient"; address: string }
  | { type: "changeFrom"; address: string; esmtpArgs?: string }
  | { type: "replaceBody"; body: Buffer }
  | { type: "quarantine"; reason: string };

/** The answer to end of message: modifications applied first, then the final reply. */
export interface EndOfMessageResult {
  reply: Reply;
  modifications?: Modification[];
}

/** Readable constructors: `reply.reject(550, "5.7.1", "No such user")`. */
export const reply = {
  continue: (): Reply => CONTINUE,
  accept: (): Reply => ({ action: "accept" }),
  discard: (): Reply => ({ action: "discard" }),
  skip: (): Reply => ({ action: "skip" }),
  reject: (code?: number, enhancedCode?: string, text?: string): Reply => ({
    action: "reject",
    ...(code === undefined ? {} : { code }),
    ...(enhancedCode === undefined ? {} : { enhancedCode }),
    ...(text === undefined ? {} : { text }),
  }),
  tempfail: (code?: number, enhancedCode?: string, text?: string): Reply => ({
    action: "tempfail",
    ...(code === undefined ? {} : { code }),
    ...(enhancedCode === undefined ? {} : { enhancedCode }),
    ...(text === undefined ? {} : { text }),
  }),
};
export const CONTINUE: Reply = Object.freeze({ action: "continue" });

export class InvalidReply {
  constructor(readonly message: string) {}
}

const ENHANCED_CODE = /^([245])\.(\d{1,3})\.(\d{1,3})$/;
/** libmilter's limits for a multi-line reply. */
const MAX_REPLY_LINES = 32;
const MAX_REPLY_LINE = 980;

/**
 * Makes reply text safe for both MTAs: no CR, NUL or other control characters except the
 * line breaks we join ourselves; `%` doubled because Sendmail reads the text as a format.
 */
export function sanitizeReplyLine(line: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point
  return line.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, "").replace(/%/g, "%%");
}

/** Cuts an escaped line to at most `max` characters without splitting a `%%` pair. */
function truncateEscaped(escaped: string, max: number): string {
  if (escaped.length <= max) return escaped;
  let cut = max;
  // Count the run of '%' ending at the cut: an odd run means a pair was split.
  let run = 0;
  while (cut - run - 1 >= 0 && escaped[cut - run - 1] === "%") run++;
  if (run % 2 === 1) cut--;
  return escaped.slice(0, cut);
}

/**
 * Builds the SMFIR_REPLYCODE text for a reject/tempfail with a code, or answers why it cannot.
 * Multi-line text (lines separated by `\n`) becomes `550-5.7.1 ...\r\n550 5.7.1 ...`.
 */
export function formatReplyText(
  action: "reject" | "tempfail",
  code: number,
  enhancedCode: string | undefined,
  text: string | undefined,
): string | InvalidReply {
  if (!Number.isInteger(code) || code < 400 || code > 599) {
    return new InvalidReply(`reply code ${code} is not a 4xx or 5xx code`);
  }
  const klass = Math.floor(code / 100);
  if (action === "reject" && klass !== 5) return new InvalidReply(`a reject needs a 5xx code, not ${code}`);
  if (action === "tempfail" && klass !== 4)
    return new InvalidReply(`a tempfail needs a 4xx code, not ${code}`);
  let enhanced = "";
  if (enhancedCode !== undefined && enhancedCode !== "") {
    const match = ENHANCED_CODE.exec(enhancedCode);
    if (match === null)
      return new InvalidReply(`enhanced status code '${enhancedCode}' is not of the form ${klass}.X.Y`);
    if (Number(match[1]) !== klass) {
      return new InvalidReply(`enhanced status code ${enhancedCode} does not agree with reply code ${code}`);
    }
    enhanced = `${enhancedCode} `;
  }
  const rawLines = (text ?? "").split(/\r?\n/);
  if (rawLines.length > MAX_REPLY_LINES)
    return new InvalidReply(`reply has more than ${MAX_REPLY_LINES} lines`);
  const lines = rawLines.map((line) => truncateEscaped(sanitizeReplyLine(line), MAX_REPLY_LINE));
  const last = lines.length - 1;
  return lines.map((line, i) => `${code}${i === last ? " " : "-"}${enhanced}${line}`.trimEnd()).join("\r\n");
}

/** Encodes a final reply, or refuses it. A reject without a code uses the MTA's own default text. */
export function encodeReply(value: Reply): Buffer | InvalidReply {
  switch (value.action) {
    case "continue":
      return PACKET.continue;
    case "accept":
      return PACKET.accept;
    case "discard":
      return PACKET.discard;
    case "skip":
      return PACKET.skip;
    case "reject":
    case "tempfail": {
      if (value.code === undefined) {
        if (value.text !== undefined || value.enhancedCode !== undefined) {
          return new InvalidReply("a reply text or enhanced code needs a reply code");
        }
        return value.action === "reject" ? PACKET.reject : PACKET.tempfail;
      }
      const text = formatReplyText(value.action, value.code, value.enhancedCode, value.text);
      if (text instanceof InvalidReply) return text;
      // Postfix needs "NNN " or "NNN-" after the code; formatReplyText always leaves a separator
      // unless the text and enhanced code are both empty.
      return packet(Response.ReplyCode, /^\d{3}$/.test(text) ? `${text} ` : text);
    }
  }
}

/** The action flag an end-of-message modification needs negotiated. */
export function actionFlagFor(modification: Modification): number {
  switch (modification.type) {
    case "addHeader":
    case "insertHeader":
      return ActionFlag.AddHeaders;
    case "changeHeader":
      return ActionFlag.ChangeHeaders;
    case "addRecipient":
      return modification.esmtpArgs ? ActionFlag.AddRecipientWithArgs : ActionFlag.AddRecipient;
    case "deleteRecipient":
      return ActionFlag.DeleteRecipient;
    case "changeFrom":
      return ActionFlag.ChangeFrom;
    case "replaceBody":
      return ActionFlag.ChangeBody;
    case "quarantine":
      return ActionFlag.Quarantine;
  }
}

/** Header names are printable ASCII without a colon (RFC 5322 field-name). */
const HEADER_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

/** Header values go out with LF folding only: CRLF would become `\r\r\n` in Postfix's queue file. */
function headerValue(value: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: NUL would truncate the value on the wire
  return value.replace(/\r\n?/g, "\n").replace(/\x00/g, "");
}

/** Encodes a modification as one or more packets (a long body is split), or refuses it. */
export function encodeModification(modification: Modification): Buffer[] | InvalidReply {
  switch (modification.type) {
    case "addHeader":
    case "insertHeader":
    case "changeHeader": {
      if (!HEADER_NAME.test(modification.name))
        return new InvalidReply(`invalid header name '${modification.name}'`);
      const value = headerValue(modification.value);
      if (modification.type === "addHeader") return [packet(Response.AddHeader, modification.name, value)];
      const code = modification.type === "insertHeader" ? Response.InsertHeader : Response.ChangeHeader;
      return [packet(code, { uint32: modification.index }, modification.name, value)];
    }
    case "addRecipient":
    case "changeFrom": {
      if (modification.address === "" || /[\r\n\0]/.test(modification.address)) {
        return new InvalidReply(`invalid address '${modification.address}'`);
      }
      const args = modification.esmtpArgs;
      if (args !== undefined && /[\r\n\0]/.test(args)) return new InvalidReply("invalid ESMTP arguments");
      if (modification.type === "changeFrom") {
        return [
          args
            ? packet(Response.ChangeFrom, modification.address, args)
            : packet(Response.ChangeFrom, modification.address),
        ];
      }
      return [
        args
          ? packet(Response.AddRecipientWithArgs, modification.address, args)
          : packet(Response.AddRecipient, modification.address),
      ];
    }
    case "deleteRecipient":
      return [packet(Response.DeleteRecipient, modification.address)];
    case "replaceBody": {
      const chunks: Buffer[] = [];
      const body = modification.body;
      for (let at = 0; at < body.length; at += MAX_SEND_PAYLOAD) {
        chunks.push(packet(Response.ReplaceBody, body.subarray(at, at + MAX_SEND_PAYLOAD)));
      }
      if (chunks.length === 0) chunks.push(packet(Response.ReplaceBody));
      return chunks;
    }
    case "quarantine":
      return [packet(Response.Quarantine, modification.reason.replace(/[\r\n\0]+/g, " "))];
  }
}
