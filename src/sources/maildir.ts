/**
 * The `maildir` quota source: Maildir++ quota from `maildirsize`, read-only.
 *
 *   const source = createMaildirSource(config, ctx);
 *   await source.quota("alice@example.org", signal); // {usage, limit, count, countLimit} | undefined
 *
 * - The path template is filled with `{user}`, `{domain}`, `{address}`, `{key}`; an unsafe
 *   value (`/`, `..`, a leading dot, NUL or another control character) answers undefined ("no
 *   such mailbox") without touching the file system. A relative path is relative to the
 *   rules file's folder.
 * - No Maildir directory: undefined. `maildirsize` missing: no quota in the file; when the
 *   source sets `quota:` the mailbox is counted (see maildir-scan.ts) against that limit,
 *   else the status has no limit (never over) and zero usage, unless `measureWithoutLimit`
 *   (the quota service) asks for the count anyway.
 * - `maildirsize` is opened O_RDONLY|O_NOFOLLOW|O_NONBLOCK, must be a regular file (a
 *   symbolic link, directory or FIFO is a lookup error), and at most 5121 bytes are read from
 *   that one descriptor. A file that exists but cannot be read (EACCES) is a lookup error.
 * - The file's definition (line 1) is the limit; when it has none, the source's `quota:`.
 *   When the Maildir++ rules say the numbers cannot be trusted (maildirsize.ts), the mailbox
 *   is counted instead, bounded in entries and time; over the bound it is a lookup error.
 * - Never writes anything.
 *
 * Caches (inside the source, apart from the registry's TTL cache): the parsed file, keyed on
 * (inode, size, mtime, ctime) and re-validated with one synchronous lstat of the path per lookup
 * (see `statFile`); and a count, re-validated by
 * the mtimes of the directories it read (only kept when those were quiet for 2 s, so a change
 * within the file system's timestamp granularity cannot hide).
 */
import { constants as fsConstants, lstatSync, type Stats, statSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { dirname, resolve, sep } from "node:path";
import { LRUCache } from "lru-cache";
import { abortAfter, withDeadline } from "../common/deadline.js";
import type { QuotaLimit, SourceConfigBase } from "../config/types.js";
import type { QuotaStatus } from "../runtime/lookups.js";
import { LATER, type Now } from "./cache.js";
import {
  countMaildir,
  DEFAULT_MAX_SCAN_ENTRIES,
  type MaildirCount,
  stampsStillValid,
} from "./maildir-scan.js";
import {
  effectiveLimits,
  MAILDIRSIZE_MAX_READ,
  type ParsedMaildirsize,
  parseMaildirsize,
  untrustedReasons,
} from "./maildirsize.js";
import { fillPath, valuesFor } from "./placeholders.js";
import type { QuotaSource, SourceContext } from "./types.js";

export interface MaildirSourceConfig extends SourceConfigBase {
  type: "maildir";
  path: string;
  quota?: QuotaLimit;
}

export interface MaildirSourceOptions {
  /** Most directory entries one count may read (default 100 000). */
  maxScanEntries?: number;
  /** Longest one count may take, ms (default: the source's timeout). */
  scanTimeoutMs?: number;
  /** Parsed files kept (default 10 000). */
  maxCachedFiles?: number;
  /** Counts kept (default 1000). */
  maxCachedCounts?: number;
  /** Clock, for tests. */
  now?: () => number;
  /**
   * Count a mailbox that has no `maildirsize` and no limit, instead of answering zeros. The quota
   * service reports usage, so it sets this; rules do not (never over needs no count).
   */
  measureWithoutLimit?: boolean;
}

/** A count is reused only if every directory it read was unchanged for this long before it began. */
const QUIET_MS = 2000;
/** And for at most this long. */
const COUNT_MAX_AGE_MS = 5 * 60 * 1000;

/** A remembered address whose template gave no path (an unsafe value): no mailbox. */
const NO_MAILBOX = "";
const MAX_REMEMBERED_ROOTS = 10_000;
/** Appended to a maildir's path as `join` would: mailboxPath's paths are normalised, without a trailing slash. */
const MAILDIRSIZE = `${sep}maildirsize`;

const OPEN_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK;

/**
 * The mailbox path for an address, or undefined when a value used by the template is unsafe.
 * Relative results are resolved against the folder of the rules file; every result is normalised.
 */
export function mailboxPath(
  template: string,
  address: string,
  recipientDelimiter: string | undefined,
  configPath: string,
): string | undefined {
  const filled = fillPath(template, valuesFor(address, recipientDelimiter));
  if (filled === undefined) return undefined;
  // resolve() also normalises an absolute one (no `//`, no trailing slash): `MAILDIRSIZE` is appended to it.
  return resolve(dirname(configPath), filled);
}

/**
 * lstat of `maildirsize`, undefined when it (or its maildir) does not exist.
 *
 * Synchronous on purpose: this is the whole cost of a lookup answered from the parsed file, and
 * an async lstat is a thread-pool round trip several times the syscall. It names the path rather
 * than fstat-ing a kept descriptor so that every change is seen by the next lookup — an append
 * (size, mtime), a recalculation renamed over the file (inode), chmod (ctime), and also the
 * maildir itself removed or renamed away, which a kept descriptor would not notice — with no
 * descriptors to budget. The price: a file system that hangs a stat (a dead NFS server) stalls
 * the process instead of one lookup, as the C milters that read the file in their thread do.
 */
function statFile(path: string): Stats | undefined {
  let st: Stats | undefined;
  try {
    // Numbers, not BigInts: the BigInt form allocates a BigInt per field on every lookup. A
    // double of milliseconds tells mtimes 0.24 µs apart, and every change a delivery or a
    // recalculation makes also moves the size or the inode.
    st = lstatSync(path, { throwIfNoEntry: false });
  } catch (error) {
    if (code(error) === "ENOTDIR") return undefined;
    throw new Error(`cannot read ${path}: ${describe(error)}`);
  }
  return st;
}

function code(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

function describe(error: unknown): string {
  const c = code(error);
  return c ?? (error instanceof Error ? error.message : String(error));
}

interface CachedFile {
  ino: number;
  size: number;
  mtimeMs: number;
  /** chmod/chown change only ctime: a file made unreadable is not served from the cache. */
  ctimeMs: number;
  parsed: ParsedMaildirsize;
}

interface CachedCount {
  at: number;
  result: MaildirCount;
}

type FileState = { kind: "no-mailbox" } | { kind: "missing" } | { kind: "file"; file: CachedFile };

function hasLimit(quota: QuotaLimit | undefined): boolean {
  return (quota?.bytes ?? 0) > 0 || (quota?.messages ?? 0) > 0;
}

/** What the source did, for tests, benchmarks and metrics. */
export interface MaildirSourceStats {
  /** maildirsize files opened and parsed. */
  fileReads: number;
  /** Lookups answered from the parsed-file cache (one synchronous lstat). */
  fileCacheHits: number;
  /** Maildirs counted from their directories. */
  counts: number;
  /** Counts reused because no directory changed. */
  countCacheHits: number;
}

export class MaildirQuotaSource implements QuotaSource {
  readonly kind = "quota" as const;
  readonly stats: MaildirSourceStats = { fileReads: 0, fileCacheHits: 0, counts: 0, countCacheHits: 0 };
  private readonly files: LRUCache<string, CachedFile>;
  private readonly counts: LRUCache<string, CachedCount>;
  private readonly inFlight = new Map<string, Promise<MaildirCount>>();
  private readonly roots = new Map<string, string>();
  private readonly maxScanEntries: number;
  private readonly scanTimeoutMs: number;
  private readonly now: () => number;
  private readonly measureWithoutLimit: boolean;
  private closed = false;

  constructor(
    private readonly config: MaildirSourceConfig,
    private readonly ctx: SourceContext,
    options: MaildirSourceOptions = {},
  ) {
    this.files = new LRUCache({ max: options.maxCachedFiles ?? 10_000 });
    this.counts = new LRUCache({ max: options.maxCachedCounts ?? 1000 });
    this.maxScanEntries = options.maxScanEntries ?? DEFAULT_MAX_SCAN_ENTRIES;
    this.scanTimeoutMs = options.scanTimeoutMs ?? config.timeoutMs;
    this.now = options.now ?? Date.now;
    this.measureWithoutLimit = options.measureWithoutLimit ?? false;
  }

  async quota(address: string, signal: AbortSignal): Promise<QuotaStatus | undefined> {
    if (this.closed) throw new Error(`source '${this.config.name}' is closed`);
    const root = this.mailboxOf(address);
    if (root === undefined) return undefined;
    signal.throwIfAborted();

    const state = await this.readFile(root);
    if (state.kind === "no-mailbox") return undefined;
    const fallback = this.config.quota;

    if (state.kind === "missing") {
      if (!hasLimit(fallback)) return this.withoutLimit(root, signal);
      const limits = effectiveLimits(undefined, fallback);
      const counted = await this.count(root, ["maildirsize is missing"], signal);
      return { usage: counted.usage, limit: limits.bytes, count: counted.count, countLimit: limits.messages };
    }

    const { parsed, mtimeMs } = state.file;
    const limits = effectiveLimits(parsed, fallback);
    const reasons = untrustedReasons(parsed, limits, mtimeMs, this.now(), hasLimit(fallback));
    if (reasons.length === 0) {
      return { usage: parsed.usage, limit: limits.bytes, count: parsed.count, countLimit: limits.messages };
    }
    const counted = await this.count(root, reasons, signal);
    return { usage: counted.usage, limit: limits.bytes, count: counted.count, countLimit: limits.messages };
  }

  /**
   * No `maildirsize` and no limit: never over, so rules need no count. The quota service reports
   * usage and counts; if that count fails (too big, too slow) its answer stays "no limit, never
   * over" with zero usage, as an error would make front-ends refuse mail to an unlimited mailbox.
   */
  private async withoutLimit(root: string, signal: AbortSignal): Promise<QuotaStatus> {
    const unmeasured = { usage: 0, limit: 0, count: 0, countLimit: 0 };
    if (!this.measureWithoutLimit) return unmeasured;
    try {
      const counted = await this.count(root, ["maildirsize is missing"], signal);
      return { ...unmeasured, usage: counted.usage, count: counted.count };
    } catch (error) {
      if (signal.aborted) throw error;
      this.ctx.logger.warn(
        {
          source: this.config.name,
          maildir: root,
          err: error instanceof Error ? error.message : String(error),
        },
        "no maildirsize and no limit: could not count the maildir; answering usage 0",
      );
      return unmeasured;
    }
  }

  /**
   * The answer `quota` would give, when it needs nothing but the lstat: the parsed file is still
   * the file and its numbers can be trusted, or there is no mailbox, or no file and no limit.
   * A file to read or a mailbox to count is LATER (the asynchronous path does it).
   */
  quotaNow(address: string): Now<QuotaStatus | undefined> {
    if (this.closed) return LATER;
    const root = this.mailboxOf(address);
    if (root === undefined) return undefined;
    const state = this.fileNow(root);
    if (state === undefined) return LATER;
    if (state.kind === "no-mailbox") return undefined;
    const fallback = this.config.quota;
    if (state.kind === "missing") {
      return hasLimit(fallback) || this.measureWithoutLimit
        ? LATER
        : { usage: 0, limit: 0, count: 0, countLimit: 0 };
    }
    const { parsed, mtimeMs } = state.file;
    const limits = effectiveLimits(parsed, fallback);
    if (untrustedReasons(parsed, limits, mtimeMs, this.now(), hasLimit(fallback)).length > 0) return LATER;
    return { usage: parsed.usage, limit: limits.bytes, count: parsed.count, countLimit: limits.messages };
  }

  /**
   * `maildirsize` of the maildir at `root` as far as one lstat tells: the parsed file when it is
   * unchanged, missing, or no mailbox; undefined when the file must be read.
   */
  /**
   * The maildir of an address, remembered: the path is a function of the address alone (the
   * template, delimiter and rules file are the source's), and building it — normalising,
   * splitting, filling, checking each value — was a fifth of a lookup answered from memory.
   */
  private mailboxOf(address: string): string | undefined {
    const known = this.roots.get(address);
    if (known !== undefined) return known === NO_MAILBOX ? undefined : known;
    const root = mailboxPath(this.config.path, address, this.config.recipientDelimiter, this.ctx.configPath);
    // Bounded by starting over: addresses come from SMTP clients.
    if (this.roots.size >= MAX_REMEMBERED_ROOTS) this.roots.clear();
    this.roots.set(address, root ?? NO_MAILBOX);
    return root;
  }

  private fileNow(root: string): FileState | undefined {
    const path = root + MAILDIRSIZE;
    const st = statFile(path);
    if (st === undefined) return this.withoutFile(root);
    if (st.isSymbolicLink()) throw new Error(`${path} is a symbolic link; refusing to follow it`);
    if (!st.isFile()) throw new Error(`${path} is not a regular file`);
    const cached = this.files.get(root);
    if (
      cached &&
      cached.ino === st.ino &&
      cached.size === st.size &&
      cached.mtimeMs === st.mtimeMs &&
      cached.ctimeMs === st.ctimeMs
    ) {
      this.stats.fileCacheHits++;
      return { kind: "file", file: cached };
    }
    return undefined;
  }

  /** `maildirsize` of the maildir at `root`: parsed (from the cache when unchanged), missing, or no mailbox. */
  private async readFile(root: string): Promise<FileState> {
    const known = this.fileNow(root);
    if (known !== undefined) return known;
    const path = root + MAILDIRSIZE;
    let handle: FileHandle;
    try {
      handle = await open(path, OPEN_FLAGS);
    } catch (error) {
      if (code(error) === "ENOENT") return this.withoutFile(root);
      if (code(error) === "ELOOP") throw new Error(`${path} is a symbolic link; refusing to follow it`);
      throw new Error(`cannot read ${path}: ${describe(error)}`);
    }
    try {
      const fst = await handle.stat();
      if (!fst.isFile()) throw new Error(`${path} is not a regular file`);
      const buffer = Buffer.alloc(MAILDIRSIZE_MAX_READ);
      let length = 0;
      while (length < buffer.length) {
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
        if (bytesRead === 0) break;
        length += bytesRead;
      }
      this.stats.fileReads++;
      const parsed = parseMaildirsize(buffer.subarray(0, length), Math.max(Number(fst.size), length));
      if (parsed.ignoredItems.length > 0) {
        this.ctx.logger.warn(
          { source: this.config.name, file: path, items: parsed.ignoredItems },
          "maildirsize: ignored items in the quota definition",
        );
      }
      const file: CachedFile = {
        ino: fst.ino,
        size: fst.size,
        mtimeMs: fst.mtimeMs,
        ctimeMs: fst.ctimeMs,
        parsed,
      };
      this.files.set(root, file);
      return { kind: "file", file };
    } catch (error) {
      if (error instanceof Error && error.message.startsWith(path)) throw error;
      throw new Error(`cannot read ${path}: ${describe(error)}`);
    } finally {
      await handle.close();
    }
  }

  /** Synchronous for the reason `statFile` gives: a mailbox without the file is as common a lookup. */
  private withoutFile(root: string): FileState {
    this.files.delete(root);
    try {
      const st = statSync(root);
      if (!st.isDirectory()) throw new Error(`${root} is not a directory`);
      return { kind: "missing" };
    } catch (error) {
      if (code(error) === "ENOENT" || code(error) === "ENOTDIR") return { kind: "no-mailbox" };
      if (error instanceof Error && error.message.startsWith(root)) throw error;
      throw new Error(`cannot read ${root}: ${describe(error)}`);
    }
  }

  /** Counts the mailbox, reusing a count whose directories have not changed, one count per maildir at a time. */
  private async count(root: string, reasons: string[], signal: AbortSignal): Promise<MaildirCount> {
    const cached = this.counts.get(root);
    if (
      cached &&
      Date.now() - cached.at <= COUNT_MAX_AGE_MS &&
      (await stampsStillValid(cached.result.stamps))
    ) {
      this.stats.countCacheHits++;
      return cached.result;
    }
    let running = this.inFlight.get(root);
    if (running === undefined) {
      running = this.scan(root, reasons).finally(() => this.inFlight.delete(root));
      this.inFlight.set(root, running);
      // The caller may give up (signal); the count still ends within its own deadline.
      running.catch(() => {});
    }
    return withDeadline(running, { signal });
  }

  private async scan(root: string, reasons: string[]): Promise<MaildirCount> {
    this.stats.counts++;
    const started = Date.now();
    const deadline = abortAfter(
      this.scanTimeoutMs,
      () => new Error(`counting ${root} took more than ${this.scanTimeoutMs} ms`),
    );
    try {
      const result = await countMaildir(root, {
        signal: deadline.signal,
        maxEntries: this.maxScanEntries,
        deadline: Date.now() + this.scanTimeoutMs,
      });
      const quietBefore = started - QUIET_MS;
      const quiet = result.stamps.every(
        (s) => s.mtimeNs === undefined || Number(s.mtimeNs / 1_000_000n) <= quietBefore,
      );
      if (quiet) this.counts.set(root, { at: started, result });
      else this.counts.delete(root);
      this.ctx.logger.info(
        {
          source: this.config.name,
          maildir: root,
          reasons,
          usage: result.usage,
          count: result.count,
          entries: result.entries,
          folders: result.folders,
          ms: Date.now() - started,
        },
        "maildirsize not trusted: counted the maildir (read-only)",
      );
      return result;
    } catch (error) {
      throw new Error(`cannot count ${root}: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      deadline.cancel();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.files.clear();
    this.counts.clear();
  }
}

export function createMaildirSource(
  config: MaildirSourceConfig,
  ctx: SourceContext,
  options: MaildirSourceOptions = {},
): QuotaSource {
  return new MaildirQuotaSource(config, ctx, options);
}
