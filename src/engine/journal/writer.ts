/**
 * The journal file: JSON lines appended through a WriteStream (asynchronous, buffered: a
 * transaction never waits for the disk), rotated at `maxSizeBytes` keeping `keep` old files
 * (FILE.1 newest … FILE.keep oldest). A journal that cannot be written never stops mail: each
 * record lost is counted and the failure logged (at most once a minute), and the file is opened
 * again a little later.
 */
import { createWriteStream, statSync, type WriteStream } from "node:fs";
import { rename, unlink } from "node:fs/promises";
import type { JournalRecord, JournalSink } from "./record.js";

export interface JournalSettings {
  path: string;
  /** Rotate before a line would take the file past this size. */
  maxSizeBytes: number;
  /** Old files kept (0: the full file is removed). */
  keep: number;
}

export const JOURNAL_DEFAULTS = { maxSizeBytes: 100 * 1000 * 1000, keep: 5 } as const;

/** What the writer tells serve: records lost (count each), and when to log why. */
export interface JournalObserver {
  /** `records` could not be written; `log` is true at most once a minute (log `error` then). */
  lost(records: number, error: string, log: boolean): void;
}

/** Bytes waiting for the disk past which records are dropped (a disk that stalls must not fill memory). */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;
/** After a failure, the file is opened again this much later. */
const RETRY_MS = 5_000;
const LOG_EVERY_MS = 60_000;
/** How long a line may wait to be written with others. */
const BATCH_MS = 100;

export class JournalWriter implements JournalSink {
  private stream: WriteStream | undefined;
  private size = 0;
  /** Lines written while the file rotates. */
  private queued: string[] = [];
  private rotating: Promise<void> | undefined;
  private retryAt = 0;
  private loggedAt = Number.NEGATIVE_INFINITY;
  private closed = false;
  /** The stream holding a batch of lines (see `batch`). */
  private corked: WriteStream | undefined;

  constructor(
    readonly settings: JournalSettings,
    private readonly observer: JournalObserver,
    private readonly now: () => number = Date.now,
  ) {}

  write(record: JournalRecord): void {
    if (this.closed) return;
    this.line(`${JSON.stringify(record)}\n`);
  }

  private line(line: string): void {
    if (this.rotating !== undefined) {
      this.queued.push(line);
      return;
    }
    this.append(line);
  }

  private append(line: string): void {
    const stream = this.stream ?? this.open();
    if (stream === undefined) {
      this.lose(1, "the journal is not open after a failure");
      return;
    }
    if (stream.writableLength > MAX_BUFFERED_BYTES) {
      this.lose(1, "the journal's disk is too slow");
      return;
    }
    const bytes = Buffer.byteLength(line);
    if (this.size > 0 && this.size + bytes > this.settings.maxSizeBytes) {
      this.queued.push(line);
      this.rotating = this.rotate(stream).finally(() => {
        this.rotating = undefined;
        const lines = this.queued;
        this.queued = [];
        for (const queued of lines) this.line(queued);
      });
      return;
    }
    this.size += bytes;
    this.batch(stream);
    stream.write(line, (error) => {
      if (error) this.lose(1, error.message);
    });
  }

  /**
   * Lines wait up to BATCH_MS in the corked stream and go to the disk in one writev: a write per
   * transaction was a thread-pool trip each. Ending the stream (rotation, close) writes them too.
   */
  private batch(stream: WriteStream): void {
    if (this.corked === stream) return;
    this.corked = stream;
    stream.cork();
    setTimeout(() => {
      if (this.corked === stream) this.corked = undefined;
      stream.uncork();
    }, BATCH_MS).unref();
  }

  private open(): WriteStream | undefined {
    if (this.now() < this.retryAt) return undefined;
    const path = this.settings.path;
    try {
      this.size = statSync(path).size;
    } catch {
      this.size = 0;
    }
    const stream = createWriteStream(path, { flags: "a" });
    stream.on("error", (error) => {
      if (this.stream === stream) this.stream = undefined;
      this.retryAt = this.now() + RETRY_MS;
      this.lose(0, error.message);
    });
    this.stream = stream;
    return stream;
  }

  private lose(records: number, error: string): void {
    const log = this.now() - this.loggedAt >= LOG_EVERY_MS;
    if (log) this.loggedAt = this.now();
    this.observer.lost(records, `${this.settings.path}: ${error}`, log);
  }

  /** FILE.(keep-1) → FILE.keep, …, FILE → FILE.1; then a new FILE. */
  private async rotate(stream: WriteStream): Promise<void> {
    this.stream = undefined;
    await new Promise<void>((done) => stream.end(done));
    const { path, keep } = this.settings;
    try {
      if (keep === 0) await unlink(path);
      for (let i = keep - 1; i >= 1; i--) await renameIfThere(`${path}.${i}`, `${path}.${i + 1}`);
      if (keep > 0) await rename(path, `${path}.1`);
    } catch (error) {
      this.lose(0, `cannot rotate: ${(error as Error).message}`);
    }
    this.size = 0;
  }

  /** Writes what is buffered and closes the file. */
  async close(): Promise<void> {
    while (this.rotating !== undefined) await this.rotating;
    this.closed = true;
    const stream = this.stream;
    this.stream = undefined;
    if (stream !== undefined && !stream.destroyed) await new Promise<void>((done) => stream.end(done));
  }
}

async function renameIfThere(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
}
