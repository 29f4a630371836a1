/**
 * Macros the MTA sends (SMFIC_MACRO), kept per stage as libmilter does: when a command of an
 * earlier stage arrives, values of later stages are stale and dropped; lookups search the
 * latest stage first. `i` and `{i}` name the same macro.
 *
 * What is kept is bounded: only the names the handler asked for at negotiation (when it named
 * any), and at most `maxChars` characters of names and values per connection. A macro past the
 * bound is dropped (the message goes on without it) and counted, never an error.
 */
import { Command } from "./constants.js";

/** Stage order of the commands macros can belong to. */
const STAGE_ORDER: readonly number[] = [
  Command.Connect,
  Command.Helo,
  Command.Mail,
  Command.Rcpt,
  Command.Data,
  Command.Header,
  Command.EndOfHeaders,
  Command.Body,
  Command.EndOfMessage,
  Command.Unknown,
];

export function canonicalName(name: string): string {
  // Single-letter macros arrive bare (`i`) but are often asked for in braces (`{i}`).
  return name.length === 3 && name.startsWith("{") && name.endsWith("}") ? (name[1] as string) : name;
}

/** The sets built for a list of names, by the list: connections negotiated alike share one. */
const wantedSets = new WeakMap<readonly string[], { wanted: ReadonlySet<string>; longest: number }>();

export class MacroTable {
  private readonly byStage: (Map<string, string> | undefined)[] = new Array(STAGE_ORDER.length);
  private readonly charsByStage: number[] = STAGE_ORDER.map(() => 0);
  private chars = 0;
  private wanted: ReadonlySet<string> | undefined;
  /** Bytes of the longest name on the wire that can be wanted (braces included). */
  private longestWanted = Number.POSITIVE_INFINITY;
  /** Macros dropped because they did not fit, since the connection opened. */
  dropped = 0;

  constructor(private readonly maxChars = Number.POSITIVE_INFINITY) {}

  /** Characters of names and values held now. */
  get size(): number {
    return this.chars;
  }

  /** From now on, keep only these macros (`i` and `{i}` alike); undefined keeps every name. */
  keepOnly(names: readonly string[] | undefined): void {
    if (names === undefined) {
      this.wanted = undefined;
      this.longestWanted = Number.POSITIVE_INFINITY;
      return;
    }
    let known = wantedSets.get(names);
    if (known === undefined) {
      const wanted = new Set(names.map(canonicalName));
      const longest = Math.max(0, ...[...wanted].map((name) => Buffer.byteLength(name) + 2));
      known = { wanted, longest };
      wantedSets.set(names, known);
    }
    this.wanted = known.wanted;
    this.longestWanted = known.longest;
  }

  /**
   * For the decoder: the name to keep a macro under, or undefined when it is not wanted or
   * could never fit (its value is then not even decoded).
   */
  readonly filter = (name: Buffer, valueBytes: number): string | undefined => {
    if (this.wanted === undefined && name.length + valueBytes > this.maxChars) {
      this.dropped++;
      return undefined;
    }
    // A name longer than every wanted one is not among them: no need to decode it.
    if (name.length > this.longestWanted) return undefined;
    const key = canonicalName(name.toString("utf8"));
    if (this.wanted !== undefined && !this.wanted.has(key)) return undefined;
    if (key.length + valueBytes > this.maxChars) {
      this.dropped++;
      return undefined;
    }
    return key;
  };

  /**
   * Stores the macros announced for `forCommand`, replacing that stage's. Unknown stage bytes
   * are ignored. Answers how many pairs were dropped because of the size bound.
   */
  set(forCommand: number, pairs: readonly [string, string][]): number {
    const index = STAGE_ORDER.indexOf(forCommand);
    if (index === -1) return 0;
    let table = this.byStage[index];
    if (table === undefined) {
      table = new Map();
      this.byStage[index] = table;
    } else {
      this.clearStage(index);
    }
    let dropped = 0;
    for (const [name, value] of pairs) {
      const key = canonicalName(name);
      if (this.wanted !== undefined && !this.wanted.has(key)) continue;
      const previous = table.get(key);
      const freed = previous === undefined ? 0 : key.length + previous.length;
      const size = key.length + value.length;
      if (this.chars - freed + size > this.maxChars) {
        dropped++;
        this.dropped++;
        continue;
      }
      table.set(key, value);
      this.chars += size - freed;
      this.charsByStage[index] = (this.charsByStage[index] ?? 0) + size - freed;
    }
    return dropped;
  }

  /** A command of this stage arrived: forget values of the stages that come after it. */
  enterStage(command: number): void {
    const index = STAGE_ORDER.indexOf(command);
    if (index === -1) return;
    // Only envelope commands reset later stages (libmilter's behaviour); content stages
    // (header, body) repeat and must not wipe each other.
    if (index > 3) return;
    for (let i = index + 1; i < STAGE_ORDER.length; i++) this.clearStage(i);
  }

  /** Forgets the message's macros (MAIL and later) after an abort or the end of a message. */
  clearMessage(): void {
    for (let i = 2; i < STAGE_ORDER.length; i++) this.clearStage(i);
  }

  clearAll(): void {
    for (let i = 0; i < STAGE_ORDER.length; i++) this.clearStage(i);
  }

  private clearStage(index: number): void {
    this.byStage[index]?.clear();
    this.chars -= this.charsByStage[index] ?? 0;
    this.charsByStage[index] = 0;
  }

  /** The value of a macro, searching the latest stage first; undefined when never sent. */
  get(name: string): string | undefined {
    const key = canonicalName(name);
    for (let i = this.byStage.length - 1; i >= 0; i--) {
      const value = this.byStage[i]?.get(key);
      if (value !== undefined) return value;
    }
    return undefined;
  }

  /** The macros that came with one stage's command (a copy). */
  forStage(command: number): Record<string, string> {
    const index = STAGE_ORDER.indexOf(command);
    const table = index === -1 ? undefined : this.byStage[index];
    return table === undefined ? {} : Object.fromEntries(table);
  }
}
