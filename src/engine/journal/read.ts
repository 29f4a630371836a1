/**
 * Journal files read line by line for `replay`: a day of traffic is hundreds of MB of JSON, and
 * its records are replayed one at a time, so none is held longer than its replay.
 */
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { createInterface } from "node:readline";
import { type JournalLine, parseJournalLine, type SkippedLine } from "./replay.js";

/** A journal that could not be read to its end (removed or failing after the first check). */
export class JournalReadError extends Error {}

function cannotRead(path: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  return `cannot read journal ${path}: ${code === "ENOENT" ? "no such file" : (code ?? String(error))}`;
}

/** Why a journal cannot be read (before anything is replayed), or undefined when every one can. */
export async function unreadableJournal(paths: readonly string[]): Promise<string | undefined> {
  for (const path of paths) {
    try {
      const handle = await open(path, "r");
      // A folder opens; reading it fails.
      const isFile = (await handle.stat()).isFile();
      await handle.close();
      if (!isFile) return `cannot read journal ${path}: not a regular file`;
    } catch (error) {
      return cannotRead(path, error);
    }
  }
  return undefined;
}

/**
 * The records of `paths` in order, file by file; malformed lines are added to `skipped`. A file
 * that fails while it is read (removed since the check, an I/O error) throws a JournalReadError.
 */
export async function* journalLines(
  paths: readonly string[],
  skipped: SkippedLine[],
): AsyncGenerator<JournalLine> {
  for (const path of paths) {
    const lines = createInterface({
      input: createReadStream(path, { encoding: "utf8" }),
      crlfDelay: Infinity,
    });
    let number = 0;
    try {
      for await (const raw of lines) {
        number++;
        const parsed = parseJournalLine(path, number, raw);
        if (parsed === undefined) continue;
        if ("record" in parsed) yield parsed;
        else skipped.push(parsed);
      }
    } catch (error) {
      throw new JournalReadError(cannotRead(path, error));
    }
  }
}
