/**
 * Reply expectations of `filterctl test`: `reject`, `reject 550`, `reject 550 5.7.1`,
 * `tempfail 452 4.2.2 "Mailbox of"`. An expectation matches a reply word by word from the left, so
 * a test says as much as it cares about and no more. The words are checked when the test file is
 * read, as a rule's action is: a reject code is 5xx, a tempfail code 4xx, and the enhanced code's
 * class agrees.
 */
import { suggest } from "../common/suggest.js";

/** What a stage, a recipient or the transaction as a whole can end with. */
export const VERDICTS = ["continue", "accept", "reject", "tempfail", "discard", "quarantine"] as const;
/** What a transaction as a whole can end with (`expect.result`). */
export const RESULTS = ["accept", "reject", "tempfail", "discard", "quarantine"] as const;

export interface ReplyPattern {
  /** As written in the test file. */
  text: string;
  /** The words to match, quotes of a text taken off. */
  words: string[];
}

/** A mistake in an expectation: the message, and where in its text it is (0 = its start). */
export interface PatternError {
  message: string;
  hint?: string;
  at: number;
}

/**
 * Splits a reply into words; a text in double quotes (the way rules write it) is a run of words
 * without its quotes.
 */
export function replyWords(text: string): string[] {
  return text
    .replace(/"/g, " ")
    .split(/\s+/)
    .filter((w) => w !== "");
}

/** Does the reply `got` ("tempfail 452 4.2.2 Mailbox of bob@example.org is full") match `pattern`? */
export function matchesReply(pattern: ReplyPattern, got: string): boolean {
  const words = replyWords(got);
  if (pattern.words.length > words.length) return false;
  return pattern.words.every((word, i) => word === words[i]);
}

function checkCode(verdict: string, code: string | undefined, at: number): PatternError | undefined {
  if (code === undefined) return undefined;
  const wanted = verdict === "reject" ? "5" : "4";
  if (!/^[245]\d\d$/.test(code))
    return {
      message: `'${code}' is not an SMTP reply code`,
      hint: `${verdict} takes a ${wanted}xx code`,
      at,
    };
  if (code[0] !== wanted) return { message: `${verdict} takes a ${wanted}xx code, not ${code}`, at };
  return undefined;
}

function checkEnhanced(verdict: string, enhanced: string | undefined, at: number): PatternError | undefined {
  if (enhanced === undefined || !/^\d/.test(enhanced)) return undefined;
  const wanted = verdict === "reject" ? "5" : "4";
  if (!/^[245]\.\d{1,3}\.\d{1,3}$/.test(enhanced))
    return { message: `'${enhanced}' is not an enhanced status code (like ${wanted}.7.1)`, at };
  if (enhanced[0] !== wanted)
    return { message: `${verdict} takes a ${wanted}.x.x enhanced code, not ${enhanced}`, at };
  return undefined;
}

/**
 * Reads an expectation; an error says what is wrong and where. `allowed` are the first words this
 * expectation may start with (a result cannot be `continue`).
 */
export function parseReplyPattern(
  text: string,
  allowed: readonly string[] = VERDICTS,
): ReplyPattern | PatternError {
  const words = replyWords(text);
  const verdict = words[0];
  if (verdict === undefined) return { message: `an expectation needs a word: ${allowed.join(", ")}`, at: 0 };
  if (!allowed.includes(verdict)) {
    const hint = suggest(verdict, allowed) ?? `one of ${allowed.join(", ")}`;
    return { message: `unknown decision '${verdict}'`, hint, at: text.indexOf(verdict) };
  }
  if ((text.match(/"/g) ?? []).length % 2 !== 0)
    return { message: "the reply text has an opening quote without its closing one", at: text.indexOf('"') };
  if (verdict === "reject" || verdict === "tempfail") {
    const at = (word: string | undefined) => (word === undefined ? 0 : text.indexOf(word));
    const error =
      checkCode(verdict, /^\d/.test(words[1] ?? "") ? words[1] : undefined, at(words[1])) ??
      checkEnhanced(verdict, words[2], at(words[2]));
    if (error !== undefined) return error;
    if (words[1] !== undefined && !/^\d/.test(words[1]))
      return {
        message: `${verdict}: the code comes before the text (${verdict} 550 5.7.1 "text")`,
        at: at(words[1]),
      };
  } else if (words.length > 1) {
    return {
      message: `'${verdict}' has no code or text to match: write just '${verdict}'`,
      at: text.indexOf(words[1] as string),
    };
  }
  return { text, words };
}

export function isPatternError(value: ReplyPattern | PatternError): value is PatternError {
  return "message" in value;
}
