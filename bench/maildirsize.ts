/**
 * Maildir++ `maildirsize` reading for the benchmark's quota policy (read-only).
 *
 * Line 1 is the quota definition: comma-separated `<n>S` (bytes) and `<n>C` (messages) items
 * in any order, blanks around items allowed, other items ignored; no valid item = no quota.
 * Every later line is `<bytes> <count>` (either may be negative, any run of blanks between);
 * usage is the sum of those lines. A final fragment without LF is a torn append and ignored.
 *
 * The answer is "unknown" (never a reason to refuse mail) when the cached numbers cannot be
 * trusted: a file of 5120 bytes or more, a NUL byte, a line of another shape, a negative total.
 * Courier's and Dovecot's recalculation (rescanning the maildir) is not modelled, in this
 * reader nor in the C baseline, which implements exactly the same rules.
 */

/** Courier and Dovecot read at most 5120 bytes; a full buffer means "recalculate". */
export const RECALC_SIZE = 5120;
/** Read one byte more than that, to tell "exactly full" from "fits". */
export const MAX_READ = RECALC_SIZE + 1;
const MAX_DIGITS = 16;

export type QuotaVerdict = "ok" | "over" | "unknown";

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const MINUS = 0x2d;
const COMMA = 0x2c;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const UPPER_S = 0x53;
const UPPER_C = 0x43;

function isBlank(byte: number): boolean {
  return byte === SPACE || byte === TAB;
}

/** Shared cursor so the number parser can hand back both a value and a position without allocating. */
let cursor = 0;

/** Parses a decimal of 1..16 digits at `at` (optionally `-`-prefixed); sets `cursor`, or answers NaN. */
function parseNumber(buf: Buffer, at: number, end: number, allowNegative: boolean): number {
  let p = at;
  let negative = false;
  if (allowNegative && p < end && buf[p] === MINUS) {
    negative = true;
    p++;
  }
  let value = 0;
  let digits = 0;
  while (p < end) {
    const byte = buf[p] as number;
    if (byte < DIGIT_0 || byte > DIGIT_9) break;
    if (++digits > MAX_DIGITS) return Number.NaN;
    value = value * 10 + (byte - DIGIT_0);
    p++;
  }
  if (digits === 0) return Number.NaN;
  cursor = p;
  return negative ? -value : value;
}

/** Decides whether one more message of `incomingBytes` fits, from what was read of a `maildirsize` file. */
export function evaluateMaildirsize(buf: Buffer, incomingBytes = 1): QuotaVerdict {
  const length = buf.length;
  if (length >= RECALC_SIZE) return "unknown";
  if (buf.indexOf(0) !== -1) return "unknown";
  const newline = buf.indexOf(LF);
  const headerEnd = newline === -1 ? length : newline;

  let sizeLimit = 0;
  let countLimit = 0;
  let found = false;
  let p = 0;
  while (p <= headerEnd) {
    let comma = buf.indexOf(COMMA, p);
    if (comma >= headerEnd) comma = -1;
    let a = p;
    let b = comma === -1 ? headerEnd : comma;
    while (a < b && isBlank(buf[a] as number)) a++;
    while (b > a && isBlank(buf[b - 1] as number)) b--;
    const kind = buf[b - 1];
    if (b - a >= 2 && (kind === UPPER_S || kind === UPPER_C)) {
      const value = parseNumber(buf, a, b - 1, false);
      if (!Number.isNaN(value) && cursor === b - 1) {
        if (kind === UPPER_S) sizeLimit = value;
        else countLimit = value;
        found = true;
      }
    }
    if (comma === -1) break;
    p = comma + 1;
  }
  if (!found) return "ok";

  let bytes = 0;
  let count = 0;
  p = newline === -1 ? length : newline + 1;
  while (p < length) {
    const eol = buf.indexOf(LF, p);
    if (eol === -1) break; // torn append: ignored, as Dovecot does
    let q = p;
    while (q < eol && isBlank(buf[q] as number)) q++;
    const lineBytes = parseNumber(buf, q, eol, true);
    if (Number.isNaN(lineBytes)) return "unknown";
    q = cursor;
    if (q >= eol || !isBlank(buf[q] as number)) return "unknown";
    while (q < eol && isBlank(buf[q] as number)) q++;
    const lineCount = parseNumber(buf, q, eol, true);
    if (Number.isNaN(lineCount)) return "unknown";
    q = cursor;
    while (q < eol && isBlank(buf[q] as number)) q++;
    if (q !== eol) return "unknown";
    bytes += lineBytes;
    count += lineCount;
    p = eol + 1;
  }
  if (bytes < 0 || count < 0) return "unknown";
  if (sizeLimit > 0 && bytes + incomingBytes > sizeLimit) return "over";
  if (countLimit > 0 && count + 1 > countLimit) return "over";
  return "ok";
}

/** `<User@Example.test>` → `user`; undefined for anything that could leave the maildir root. */
export function mailboxOf(recipient: string): string | undefined {
  let start = 0;
  let end = recipient.length;
  if (end > 0 && recipient.charCodeAt(0) === 0x3c) start++;
  if (end > start && recipient.charCodeAt(end - 1) === 0x3e) end--;
  const at = recipient.lastIndexOf("@", end - 1);
  const localEnd = at >= start ? at : end;
  const local = recipient.slice(start, localEnd).toLowerCase();
  if (local.length === 0 || local.length > 64 || !/^[a-z0-9_-][a-z0-9._-]*$/.test(local)) return undefined;
  return local;
}
