/**
 * Maildir++ `maildirsize` parsing: pure functions, no file access.
 *
 * Line 1 is the quota definition: comma-separated items `<n>S` (bytes) and `<n>C` (messages),
 * either order, either missing, blanks around items tolerated; 0 or a missing item = no limit
 * of that kind; any other item (`7B`, `10M`, `1000s`) is ignored. Every later line is
 * `<bytes> <count>` (either may be negative, any run of blanks or tabs, leading blanks), and
 * usage is the sum of those lines. A final fragment without LF is an append in progress (or a
 * torn one) and is dropped.
 *
 * The numbers are a cache kept by the delivery agent; `untrustedReasons` says, per the
 * Maildir++ rules, when they must not be believed and the maildir has to be counted again:
 * a file of 5120 bytes or more, a NUL byte, a line of another shape, a negative total, a sum
 * outside the exact range of a double, or an over-quota total that is older than 15 minutes
 * or made of more than one size line.
 */

/** Courier and Dovecot read at most 5120 bytes; a file that fills the buffer is recalculated. */
export const MAILDIRSIZE_RECALC_BYTES = 5120;
/** Read one byte more than that, to tell "exactly full" from "fits". */
export const MAILDIRSIZE_MAX_READ = MAILDIRSIZE_RECALC_BYTES + 1;
/** An over-quota total older than this is recounted (Courier's and Dovecot's 15 minutes). */
export const STALE_OVER_QUOTA_MS = 15 * 60 * 1000;

/** Limits from line 1; a kind that is absent had no item. 0 = no limit of that kind. */
export interface QuotaDefinition {
  bytes?: number;
  messages?: number;
}

export interface ParsedMaildirsize {
  /** Undefined when line 1 holds no `S` or `C` item at all (the file defines no quota). */
  definition?: QuotaDefinition;
  /** Items of line 1 that were not `<n>S` or `<n>C`, as written (ignored). */
  ignoredItems: string[];
  /** Sum of the byte column of every well-formed size line. */
  usage: number;
  /** Sum of the message column. */
  count: number;
  /** Well-formed size lines (line 2 onwards, torn tail excluded). */
  sizeLines: number;
  /** Why the sums cannot be trusted whatever the limits (empty when they can, so far). */
  suspect: string[];
  /** The final fragment without LF that was dropped, if any. */
  tornTail?: string;
}

const DEFINITION_ITEM = /^(\d{1,16})([SC])$/;
const SIZE_LINE = /^[ \t]*(-?\d{1,16})[ \t]+(-?\d{1,16})[ \t]*$/;

/** Line 1 → the definition (undefined when no item is a valid S or C item) and the ignored items. */
export function parseDefinition(line: string): { definition?: QuotaDefinition; ignoredItems: string[] } {
  const ignoredItems: string[] = [];
  let definition: QuotaDefinition | undefined;
  for (const raw of line.split(",")) {
    const item = raw.trim();
    if (item === "") continue;
    const match = DEFINITION_ITEM.exec(item);
    const value = match ? Number(match[1]) : Number.NaN;
    if (match === null || !Number.isSafeInteger(value)) {
      ignoredItems.push(item);
      continue;
    }
    definition ??= {};
    if (match[2] === "S") definition.bytes = value;
    else definition.messages = value;
  }
  return definition === undefined ? { ignoredItems } : { definition, ignoredItems };
}

function shown(text: string): string {
  const json = JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
  return json;
}

/**
 * Parses the bytes read from `maildirsize` (at most MAILDIRSIZE_MAX_READ of them).
 * `fileSize` is the file's size from fstat (the read may have stopped early).
 */
export function parseMaildirsize(data: Uint8Array | string, fileSize?: number): ParsedMaildirsize {
  const bytes =
    typeof data === "string"
      ? Buffer.from(data, "latin1")
      : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const size = fileSize ?? bytes.length;
  const suspect: string[] = [];
  if (size >= MAILDIRSIZE_RECALC_BYTES)
    suspect.push(`file is ${size} bytes (${MAILDIRSIZE_RECALC_BYTES} or more)`);
  if (bytes.includes(0)) suspect.push("file contains a NUL byte");

  // latin1 maps every byte to one character, so nothing is lost or replaced.
  const text = bytes.toString("latin1");
  const lines = text.split("\n");
  // The element after the last LF is "" for a complete file, else a fragment without LF.
  const tail = lines.pop() as string;
  const full = size >= MAILDIRSIZE_RECALC_BYTES || bytes.length < size;
  const result: ParsedMaildirsize = { ignoredItems: [], usage: 0, count: 0, sizeLines: 0, suspect };

  let header = lines.shift();
  if (header === undefined && !full) {
    // Only a header, without LF: writers emit line 1 in one write, so it is whole; keep it.
    header = tail;
  } else if (tail !== "" && !full) {
    result.tornTail = tail;
  }
  if (header === undefined) {
    // One huge first line with no LF in the buffer: not a definition anyone wrote.
    suspect.push(`line 1 has no end within the first ${MAILDIRSIZE_RECALC_BYTES} bytes`);
  } else {
    const { definition, ignoredItems } = parseDefinition(header);
    if (definition !== undefined) result.definition = definition;
    result.ignoredItems = ignoredItems;
  }

  let garbage = 0;
  let firstGarbage = "";
  for (const line of lines) {
    const match = SIZE_LINE.exec(line);
    if (match === null) {
      if (garbage++ === 0) firstGarbage = line;
      continue;
    }
    result.usage += Number(match[1]);
    result.count += Number(match[2]);
    result.sizeLines++;
  }
  if (garbage > 0) {
    suspect.push(
      `${garbage} line${garbage === 1 ? " is" : "s are"} not '<bytes> <count>' (first: ${shown(firstGarbage)})`,
    );
  }
  if (result.usage < 0 || result.count < 0)
    suspect.push(`negative total (${result.usage} bytes, ${result.count} messages)`);
  if (!Number.isSafeInteger(result.usage) || !Number.isSafeInteger(result.count))
    suspect.push("totals beyond 2^53: corrupt");
  return result;
}

/** Effective limits: the file's definition when it has one, else the source's `quota:`. */
export interface Limits {
  /** 0 = none. */
  bytes: number;
  /** 0 = none. */
  messages: number;
}

export function effectiveLimits(
  parsed: Pick<ParsedMaildirsize, "definition"> | undefined,
  fallback?: QuotaDefinition,
): Limits {
  const from = parsed?.definition ?? fallback ?? {};
  return { bytes: from.bytes ?? 0, messages: from.messages ?? 0 };
}

/** Over quota with one more message of 1 byte (the delivery agents' test, incoming unknown here). */
export function wouldBeOver(usage: number, count: number, limits: Limits): boolean {
  return (
    (limits.bytes > 0 && usage + 1 > limits.bytes) || (limits.messages > 0 && count + 1 > limits.messages)
  );
}

/**
 * Why the file's numbers must be recounted from the maildir; empty when they can be believed.
 * `fallbackApplies`: the limit comes from the source (the file has no definition) while the
 * source sets one — a headerless file is what Courier writes when it thinks there is no quota,
 * so its lines do not cover every message.
 */
export function untrustedReasons(
  parsed: ParsedMaildirsize,
  limits: Limits,
  mtimeMs: number,
  nowMs: number,
  fallbackApplies = false,
): string[] {
  const reasons = [...parsed.suspect];
  if (fallbackApplies && parsed.definition === undefined) reasons.push("line 1 is not a quota definition");
  if (reasons.length > 0) return reasons;
  if (wouldBeOver(parsed.usage, parsed.count, limits)) {
    if (parsed.sizeLines > 1) reasons.push(`over quota with ${parsed.sizeLines} size lines`);
    else if (nowMs - mtimeMs > STALE_OVER_QUOTA_MS)
      reasons.push(`over quota and last written ${Math.round((nowMs - mtimeMs) / 60_000)} minutes ago`);
  }
  return reasons;
}
