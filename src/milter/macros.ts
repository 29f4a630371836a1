/**
 * Macros the MTA sends (SMFIC_MACRO), kept per stage as libmilter does: when a command of an
 * earlier stage arrives, values of later stages are stale and dropped; lookups search the
 * latest stage first. `i` and `{i}` name the same macro.
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

function canonicalName(name: string): string {
  // Single-letter macros arrive bare (`i`) but are often asked for in braces (`{i}`).
  return name.length === 3 && name.startsWith("{") && name.endsWith("}") ? (name[1] as string) : name;
}

export class MacroTable {
  private readonly byStage: (Map<string, string> | undefined)[] = new Array(STAGE_ORDER.length);

  /** Stores the macros announced for `forCommand`. Unknown stage bytes are ignored. */
  set(forCommand: number, pairs: readonly [string, string][]): void {
    const index = STAGE_ORDER.indexOf(forCommand);
    if (index === -1) return;
    let table = this.byStage[index];
    if (table === undefined) {
      table = new Map();
      this.byStage[index] = table;
    } else {
      table.clear();
    }
    for (const [name, value] of pairs) table.set(canonicalName(name), value);
  }

  /** A command of this stage arrived: forget values of the stages that come after it. */
  enterStage(command: number): void {
    const index = STAGE_ORDER.indexOf(command);
    if (index === -1) return;
    // Only envelope commands reset later stages (libmilter's behaviour); content stages
    // (header, body) repeat and must not wipe each other.
    if (index > 3) return;
    for (let i = index + 1; i < STAGE_ORDER.length; i++) this.byStage[i]?.clear();
  }

  /** Forgets the message's macros (MAIL and later) after an abort or the end of a message. */
  clearMessage(): void {
    for (let i = 2; i < STAGE_ORDER.length; i++) this.byStage[i]?.clear();
  }

  clearAll(): void {
    for (const table of this.byStage) table?.clear();
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
