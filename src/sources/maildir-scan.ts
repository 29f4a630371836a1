/**
 * Counting a Maildir++ mailbox from its directories, read-only, the way Courier recalculates
 * `maildirsize` (but never writing it):
 *
 * - `new/` and `cur/` of the root and of every `.Folder` directly below it; `.Trash` is not
 *   counted (Courier's rule; Dovecot sites exclude Trash by configuration); a folder that is a
 *   symbolic link is skipped; a folder without `new/` or `cur/` counts what it has.
 * - Names starting with `.` are skipped, and so are sub-directories.
 * - Deleted mail: a message whose flags (`:2,…`) contain `T` is not counted (Courier's rule;
 *   Dovecot's scan counts it; the difference is the size of mail flagged deleted but not yet
 *   expunged).
 * - Size: `,S=<digits>` in the part of the name before `:`, when followed by `,` or the end
 *   of that part (Dovecot's stricter reading of Courier's field); otherwise the file is
 *   stat()ed (skipped if it vanished meanwhile). `,W=` (Dovecot's CRLF size) is not used.
 *
 * Bounded: at most `maxEntries` directory entries in all and a deadline; beyond either the scan
 * fails (the rule's on_error applies), it never answers a partial count. Only asynchronous
 * fs calls are used, so the event loop keeps serving while a big mailbox is counted.
 */
import type { BigIntStats, Dir, Dirent } from "node:fs";
import { lstat, opendir, stat } from "node:fs/promises";
import { join } from "node:path";

export const DEFAULT_MAX_SCAN_ENTRIES = 100_000;
/** Files without `,S=` stat()ed at once. */
const STAT_CONCURRENCY = 16;
/** How often (in directory entries) the deadline and the signal are checked. */
const CHECK_EVERY = 256;

export interface ScanOptions {
  signal: AbortSignal;
  /** Most directory entries read in all (folders, messages, everything). */
  maxEntries: number;
  /** Date.now() value after which the scan fails. */
  deadline: number;
}

/** A directory's modification time when it was read; a change means the count is stale. */
export interface DirStamp {
  path: string;
  /** undefined: the directory did not exist. */
  mtimeNs: bigint | undefined;
}

export interface MaildirCount {
  usage: number;
  count: number;
  /** Directory entries read. */
  entries: number;
  /** Folders counted (the root not included). */
  folders: number;
  /** Messages skipped because they are flagged deleted (T). */
  deleted: number;
  /** Files whose size came from stat() (no usable `,S=`). */
  statted: number;
  /** Every directory the count depends on, with its mtime before it was read. */
  stamps: DirStamp[];
}

export class ScanLimitError extends Error {}

/** Size from the file name, or undefined when it carries none usable. */
export function sizeFromName(name: string): number | undefined {
  const colon = name.indexOf(":");
  const base = colon === -1 ? name : name.slice(0, colon);
  const match = /,S=(\d{1,16})(?=,|$)/.exec(base);
  if (match === null) return undefined;
  const size = Number(match[1]);
  return Number.isSafeInteger(size) ? size : undefined;
}

/** Courier: a message whose `:2,` flags contain `T` (trashed) is not counted. */
export function isFlaggedDeleted(name: string): boolean {
  const colon = name.indexOf(":");
  if (colon === -1) return false;
  const info = name.slice(colon + 1);
  return info.startsWith("2,") && info.includes("T", 2);
}

function code(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

async function dirStamp(path: string): Promise<DirStamp> {
  try {
    const st = await stat(path, { bigint: true });
    return { path, mtimeNs: st.isDirectory() ? st.mtimeNs : undefined };
  } catch (error) {
    if (code(error) === "ENOENT" || code(error) === "ENOTDIR") return { path, mtimeNs: undefined };
    throw error;
  }
}

/** Do the directories still look as they did when counted? */
export async function stampsStillValid(stamps: readonly DirStamp[]): Promise<boolean> {
  try {
    const now = await Promise.all(stamps.map((s) => dirStamp(s.path)));
    return now.every((s, i) => s.mtimeNs === stamps[i]?.mtimeNs);
  } catch {
    return false;
  }
}

class Scanner {
  usage = 0;
  count = 0;
  entries = 0;
  folders = 0;
  deleted = 0;
  statted = 0;
  readonly stamps: DirStamp[] = [];
  private readonly pending = new Set<Promise<void>>();
  private readonly failures: unknown[] = [];

  constructor(private readonly options: ScanOptions) {}

  private tick(): void {
    this.entries++;
    if (this.entries > this.options.maxEntries) {
      throw new ScanLimitError(
        `more than ${this.options.maxEntries} directory entries to count; refusing to guess the usage`,
      );
    }
    if (this.entries % CHECK_EVERY === 0) this.check();
  }

  check(): void {
    this.options.signal.throwIfAborted();
    if (Date.now() > this.options.deadline)
      throw new ScanLimitError(`counting took longer than allowed (${this.entries} entries read so far)`);
  }

  /** Opens a directory, or undefined when it does not exist; its stamp is recorded first. */
  async open(path: string): Promise<Dir | undefined> {
    const stamp = await dirStamp(path);
    this.stamps.push(stamp);
    if (stamp.mtimeNs === undefined) return undefined;
    try {
      return await opendir(path, { bufferSize: 128 });
    } catch (error) {
      if (code(error) === "ENOENT" || code(error) === "ENOTDIR") return undefined;
      throw error;
    }
  }

  /** The `.Folder`s below the root that count. */
  async folderNames(root: string): Promise<string[]> {
    const dir = await this.open(root);
    if (dir === undefined) throw Object.assign(new Error(`${root}: no such directory`), { code: "ENOENT" });
    const names: string[] = [];
    for await (const entry of dir) {
      this.tick();
      const name = entry.name;
      if (!name.startsWith(".") || name === "." || name === ".." || name === ".Trash") continue;
      if (await this.isRealDirectory(join(root, name), entry)) names.push(name);
    }
    return names.sort();
  }

  private async isRealDirectory(path: string, entry: Dirent): Promise<boolean> {
    if (entry.isDirectory()) return true;
    if (entry.isSymbolicLink() || entry.isFile() || entry.isFIFO() || entry.isSocket()) return false;
    if (entry.isBlockDevice() || entry.isCharacterDevice()) return false;
    // d_type unknown on this file system: ask.
    try {
      return (await lstat(path)).isDirectory();
    } catch {
      return false;
    }
  }

  async countMessages(path: string): Promise<void> {
    const dir = await this.open(path);
    if (dir === undefined) return;
    for await (const entry of dir) {
      this.tick();
      const name = entry.name;
      if (name.startsWith(".") || entry.isDirectory()) continue;
      if (isFlaggedDeleted(name)) {
        this.deleted++;
        continue;
      }
      const size = sizeFromName(name);
      if (size !== undefined) {
        this.usage += size;
        this.count++;
        continue;
      }
      await this.statLater(join(path, name));
    }
    await this.drain();
  }

  private async statLater(path: string): Promise<void> {
    while (this.pending.size >= STAT_CONCURRENCY) await Promise.race(this.pending);
    // Failures are collected, never left as unhandled rejections if the scan stops early.
    const job: Promise<void> = this.statOne(path)
      .catch((error: unknown) => {
        this.failures.push(error);
      })
      .finally(() => this.pending.delete(job));
    this.pending.add(job);
  }

  private async statOne(path: string): Promise<void> {
    let st: BigIntStats | undefined;
    try {
      st = await stat(path, { bigint: true });
    } catch (error) {
      if (code(error) === "ENOENT") return; // moved or expunged meanwhile
      throw error;
    }
    if (!st.isFile()) return;
    this.statted++;
    this.usage += Number(st.size);
    this.count++;
  }

  private async drain(): Promise<void> {
    await Promise.all([...this.pending]);
    if (this.failures.length > 0) throw this.failures[0];
  }
}

/** Counts the maildir at `root` (the Maildir++ root, not a folder). */
export async function countMaildir(root: string, options: ScanOptions): Promise<MaildirCount> {
  const scanner = new Scanner(options);
  scanner.check();
  const folders = await scanner.folderNames(root);
  for (const folder of ["", ...folders]) {
    const base = folder === "" ? root : join(root, folder);
    if (folder !== "") {
      // The folder's own mtime changes when its new/ or cur/ appears or goes.
      scanner.stamps.push(await dirStamp(base));
      scanner.folders++;
    }
    for (const sub of ["new", "cur"]) {
      scanner.check();
      await scanner.countMessages(join(base, sub));
    }
  }
  return {
    usage: scanner.usage,
    count: scanner.count,
    entries: scanner.entries,
    folders: scanner.folders,
    deleted: scanner.deleted,
    statted: scanner.statted,
    stamps: scanner.stamps,
  };
}
