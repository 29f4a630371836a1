/**
 * The `mbox` quota source: usage is the spool file's size, the limits come from the source's
 * `quota:` (an mbox carries none).
 *
 *   const source = createMboxSource(config, ctx);
 *   await source.quota("alice@example.org", signal); // {usage, limit, count, countLimit} | undefined
 *
 * - The path template is filled like the maildir source's; an unsafe value answers undefined
 *   ("no such mailbox") without touching the file system.
 * - A missing spool is a user without mail: usage 0, count 0 (many MUAs delete an empty spool,
 *   so "no file" cannot mean "no such user" here).
 * - The spool must be a regular file: a symbolic link, directory or FIFO is a lookup error, as
 *   is a spool that cannot be examined (EACCES). With a byte limit only, the size comes from
 *   lstat and the file is never opened; counting messages needs read permission.
 * - Messages are counted only when the source sets a message limit: lines starting `From ` at
 *   the start of the file or after an empty line, read in chunks from one O_NOFOLLOW
 *   descriptor, at most `maxCountBytes` (default 1 GiB; a bigger spool is a lookup error, not a
 *   guess). mboxcl files may hold unescaped `From ` body lines, so the count is approximate.
 *   Counts are cached by (inode, size, mtime, ctime).
 */
import { type BigIntStats, constants as fsConstants } from "node:fs";
import { type FileHandle, lstat, open } from "node:fs/promises";
import { LRUCache } from "lru-cache";
import type { QuotaLimit, SourceConfigBase } from "../config/types.js";
import type { QuotaStatus } from "../runtime/lookups.js";
import { mailboxPath } from "./maildir.js";
import type { QuotaSource, SourceContext } from "./types.js";

export interface MboxSourceConfig extends SourceConfigBase {
  type: "mbox";
  path: string;
  quota?: QuotaLimit;
}

export interface MboxSourceOptions {
  /** Largest spool whose messages are counted (default 1 GiB). */
  maxCountBytes?: number;
  /** Counts kept (default 10 000). */
  maxCachedCounts?: number;
  /** Read size (default 256 KiB). */
  chunkBytes?: number;
}

const DEFAULT_MAX_COUNT_BYTES = 1024 * 1024 * 1024;
const OPEN_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK;
const SEPARATOR = Buffer.from("\n\nFrom ", "latin1");

function code(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Counts `From ` lines at the start of the data or after an empty line, across chunks: feed
 * every chunk in order to `add`, read `count`.
 */
export class FromLineCounter {
  count = 0;
  /** The last bytes seen, so a separator split across chunks is found; "\n\n" at the start. */
  private carry: Buffer = Buffer.from("\n\n", "latin1");

  add(chunk: Buffer): void {
    if (chunk.length === 0) return;
    const data = Buffer.concat([this.carry, chunk]);
    let at = data.indexOf(SEPARATOR);
    while (at !== -1) {
      this.count++;
      at = data.indexOf(SEPARATOR, at + 1);
    }
    // The separator is 7 bytes: keeping 6 means every match includes at least one new byte.
    this.carry = Buffer.from(data.subarray(Math.max(0, data.length - (SEPARATOR.length - 1))));
  }
}

interface CachedCount {
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  /** chmod/chown change only ctime: a file made unreadable is not served from the cache. */
  ctimeNs: bigint;
  count: number;
}

export class MboxQuotaSource implements QuotaSource {
  readonly kind = "quota" as const;
  /** Spools read to count messages, and counts answered from the cache. */
  readonly stats = { countReads: 0, countCacheHits: 0 };
  private readonly counts: LRUCache<string, CachedCount>;
  private readonly maxCountBytes: number;
  private readonly chunkBytes: number;
  private closed = false;

  constructor(
    private readonly config: MboxSourceConfig,
    private readonly ctx: SourceContext,
    options: MboxSourceOptions = {},
  ) {
    this.maxCountBytes = options.maxCountBytes ?? DEFAULT_MAX_COUNT_BYTES;
    this.counts = new LRUCache({ max: options.maxCachedCounts ?? 10_000 });
    this.chunkBytes = options.chunkBytes ?? 256 * 1024;
  }

  async quota(address: string, signal: AbortSignal): Promise<QuotaStatus | undefined> {
    if (this.closed) throw new Error(`source '${this.config.name}' is closed`);
    const path = mailboxPath(this.config.path, address, this.config.recipientDelimiter, this.ctx.configPath);
    if (path === undefined) return undefined;
    signal.throwIfAborted();
    const limit = this.config.quota?.bytes ?? 0;
    const countLimit = this.config.quota?.messages ?? 0;

    let st: BigIntStats;
    try {
      st = await lstat(path, { bigint: true });
    } catch (error) {
      if (code(error) === "ENOENT" || code(error) === "ENOTDIR") {
        this.counts.delete(path);
        return { usage: 0, limit, count: 0, countLimit };
      }
      throw new Error(`cannot read ${path}: ${code(error) ?? String(error)}`);
    }
    if (st.isSymbolicLink()) throw new Error(`${path} is a symbolic link; refusing to follow it`);
    if (!st.isFile()) throw new Error(`${path} is not a regular file`);
    // A byte limit needs the size only: the spool itself is not opened (stat needs no read
    // permission on it; a directory we may not search is EACCES above, a lookup error).
    if (countLimit <= 0) return { usage: Number(st.size), limit, count: 0, countLimit };
    const counted = await this.countMessages(path, st, signal);
    return { usage: counted.size, limit, count: counted.count, countLimit };
  }

  private async openSpool(path: string): Promise<FileHandle> {
    try {
      return await open(path, OPEN_FLAGS);
    } catch (error) {
      if (code(error) === "ELOOP") throw new Error(`${path} is a symbolic link; refusing to follow it`);
      throw new Error(`cannot read ${path}: ${code(error) ?? String(error)}`);
    }
  }

  private async countMessages(
    path: string,
    st: BigIntStats,
    signal: AbortSignal,
  ): Promise<{ size: number; count: number }> {
    const cached = this.counts.get(path);
    if (
      cached &&
      cached.ino === st.ino &&
      cached.size === st.size &&
      cached.mtimeNs === st.mtimeNs &&
      cached.ctimeNs === st.ctimeNs
    ) {
      this.stats.countCacheHits++;
      return { size: Number(cached.size), count: cached.count };
    }
    const handle = await this.openSpool(path);
    try {
      const fst = await handle.stat({ bigint: true });
      if (!fst.isFile()) throw new Error(`${path} is not a regular file`);
      if (fst.size > BigInt(this.maxCountBytes)) {
        throw new Error(
          `${path} is ${fst.size} bytes, more than the ${this.maxCountBytes} counted for a message limit`,
        );
      }
      this.stats.countReads++;
      const size = Number(fst.size);
      const counter = new FromLineCounter();
      const buffer = Buffer.alloc(Math.min(this.chunkBytes, Math.max(size, 1)));
      let position = 0;
      // Read only up to the size seen at fstat: a delivery appending meanwhile is the next count's.
      while (position < size) {
        signal.throwIfAborted();
        const { bytesRead } = await handle.read(
          buffer,
          0,
          Math.min(buffer.length, size - position),
          position,
        );
        if (bytesRead === 0) break;
        counter.add(buffer.subarray(0, bytesRead));
        position += bytesRead;
      }
      this.counts.set(path, {
        ino: fst.ino,
        size: fst.size,
        mtimeNs: fst.mtimeNs,
        ctimeNs: fst.ctimeNs,
        count: counter.count,
      });
      return { size, count: counter.count };
    } finally {
      await handle.close();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.counts.clear();
  }
}

export function createMboxSource(
  config: MboxSourceConfig,
  ctx: SourceContext,
  options: MboxSourceOptions = {},
): QuotaSource {
  return new MboxQuotaSource(config, ctx, options);
}
