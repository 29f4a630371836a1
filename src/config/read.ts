/**
 * Reading the files a configuration consists of or names: the rules file, list files, password
 * files. One reader for all of them, so none can hang filterctl or exhaust its memory:
 *
 * - opened O_NONBLOCK, so a FIFO without a writer (or a device that waits) cannot block the
 *   open, and with it a thread of libuv's pool (four threads serve every file read and host
 *   lookup; a blocked one also keeps process.exit waiting forever);
 * - fstat on the descriptor (never stat then open: the path could be swapped in between), and
 *   anything but a regular file refused;
 * - read with a bound on its size, checked before reading and again while reading (the file may
 *   grow, and files in /proc or /sys say size 0).
 */
import { constants as fsConstants, type Stats } from "node:fs";
import { type FileHandle, open, stat as statPath } from "node:fs/promises";
import { SourceFile } from "../common/diagnostics.js";

/** Larger files are refused (reported as a diagnostic by parseConfig). */
export const MAX_CONFIG_BYTES = 10 * 1024 * 1024;

/** How large a file a configuration names may be, and what to call such files in errors. */
export interface FileLimit {
  maxBytes: number;
  /** Plural, for "over the 64 MiB limit for list files". */
  what: string;
}

/**
 * One key per line: 16 MiB is about a million IP addresses or half a million mail addresses,
 * some 300 MB of memory once loaded (twice that while a reload builds the next one).
 */
export const LIST_FILE_LIMIT: FileLimit = { maxBytes: 16 * 1024 * 1024, what: "list files" };
/** A password, perhaps with a newline. */
export const PASSWORD_FILE_LIMIT: FileLimit = { maxBytes: 4 * 1024, what: "password files" };

/** Read-only; a FIFO or terminal neither blocks the open nor becomes the controlling terminal. */
const OPEN_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY;

export class ConfigReadError extends Error {
  override readonly name = "ConfigReadError";
  constructor(
    readonly path: string,
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }

  /** The message without the leading `path: `. */
  get reason(): string {
    const prefix = `${this.path}: `;
    return this.message.startsWith(prefix) ? this.message.slice(prefix.length) : this.message;
  }
}

/** A failed read in words (exported for tests: root reads everything, so EACCES cannot be staged). */
export function describeFailure(path: string, error: unknown): ConfigReadError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case "ENOENT":
      return new ConfigReadError(path, `${path}: no such file`, code);
    case "ENOTDIR":
      return new ConfigReadError(path, `${path}: a parent of this path is not a folder`, code);
    case "EISDIR":
      return new ConfigReadError(path, `${path}: is a folder, not a regular file`, code);
    case "EACCES":
    case "EPERM":
      return new ConfigReadError(path, `${path}: permission denied`, code);
    case "ELOOP":
      return new ConfigReadError(path, `${path}: too many levels of symbolic links`, code);
    case "ENAMETOOLONG":
      return new ConfigReadError(path, `${path}: file name too long`, code);
    default:
      return new ConfigReadError(
        path,
        `${path}: cannot read: ${(error as Error | undefined)?.message ?? String(error)}`,
        code,
      );
  }
}

/** What a non-regular file is, in words. */
function kindOf(stat: Stats): string {
  if (stat.isDirectory()) return "a folder";
  if (stat.isFIFO()) return "a FIFO";
  if (stat.isCharacterDevice()) return "a character device";
  if (stat.isBlockDevice()) return "a block device";
  if (stat.isSocket()) return "a socket";
  return "not a file";
}

/** 4 KiB, 64 MiB: limits are whole binary units. */
export function limitText(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / 1024 / 1024} MiB`;
  if (bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}

function sizeText(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  if (bytes >= 10 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} bytes`;
}

function tooLarge(path: string, bytes: number, limit: FileLimit, atLeast = false): ConfigReadError {
  return new ConfigReadError(
    path,
    `${path}: is ${atLeast ? "more than " : ""}${sizeText(bytes)}, over the ${limitText(limit.maxBytes)} limit for ${limit.what}`,
    "EFBIG",
  );
}

/** Opens `path` if it is a regular file, without ever blocking; its fstat size with it. */
async function openRegular(path: string): Promise<{ handle: FileHandle; size: number }> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, OPEN_FLAGS);
    const stat = await handle.stat();
    if (!stat.isFile()) {
      throw new ConfigReadError(path, `${path}: is ${kindOf(stat)}, not a regular file`, "ENOTFILE");
    }
    return { handle, size: stat.size };
  } catch (error) {
    await handle?.close().catch(() => undefined);
    if (error instanceof ConfigReadError) throw error;
    if ((error as NodeJS.ErrnoException).code === "ENXIO") {
      // A socket cannot be opened at all: say what it is rather than "no such device".
      const stat = await statPath(path).catch(() => undefined);
      if (stat !== undefined && !stat.isFile()) {
        throw new ConfigReadError(path, `${path}: is ${kindOf(stat)}, not a regular file`, "ENOTFILE");
      }
    }
    throw describeFailure(path, error);
  }
}

/** At most `max` bytes from the start of the file; `expected` (fstat's size) only sizes the first buffer. */
async function readAtMost(handle: FileHandle, expected: number, max: number): Promise<Buffer> {
  let buffer = Buffer.alloc(Math.min(Math.max(expected + 1, 4096), max));
  let length = 0;
  while (length < max) {
    if (length === buffer.length) {
      const bigger = Buffer.alloc(Math.min(buffer.length * 2, max));
      buffer.copy(bigger, 0, 0, length);
      buffer = bigger;
    }
    const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
    if (bytesRead === 0) break;
    length += bytesRead;
  }
  return buffer.subarray(0, length);
}

/**
 * The bytes of a file a configuration names; throws ConfigReadError when it is not a regular
 * file, is larger than `limit` (before or while reading), or cannot be read.
 */
export async function readBoundedFile(path: string, limit: FileLimit): Promise<Buffer> {
  const { handle, size } = await openRegular(path);
  try {
    if (size > limit.maxBytes) throw tooLarge(path, size, limit);
    const bytes = await readAtMost(handle, size, limit.maxBytes + 1);
    if (bytes.length > limit.maxBytes) throw tooLarge(path, limit.maxBytes, limit, true);
    return bytes;
  } catch (error) {
    if (error instanceof ConfigReadError) throw error;
    throw describeFailure(path, error);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** What readBoundedFile would refuse before reading (kind, size), without reading the file. */
export async function checkBoundedFile(path: string, limit: FileLimit): Promise<void> {
  const { handle, size } = await openRegular(path);
  await handle.close().catch(() => undefined);
  if (size > limit.maxBytes) throw tooLarge(path, size, limit);
}

/**
 * Bytes as text. Invalid UTF-8 is refused, naming the line of the first bad byte. Only the first
 * MAX_CONFIG_BYTES + 1 bytes of a larger file are kept: enough for parseConfig to refuse it.
 */
function decode(path: string, bytes: Buffer): SourceFile {
  try {
    return new SourceFile(path, new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    if (bytes.length > MAX_CONFIG_BYTES) {
      // Cut inside a character: whatever it is, parseConfig refuses it for its size.
      return new SourceFile(path, new TextDecoder("utf-8").decode(bytes));
    }
    const loose = new SourceFile(path, new TextDecoder("utf-8").decode(bytes));
    const bad = loose.text.indexOf("\uFFFD");
    const { line, column } = loose.position(Math.max(0, bad));
    throw new ConfigReadError(
      path,
      `${path}:${line}:${column}: not UTF-8 text (save the file as UTF-8)`,
      "EILSEQ",
    );
  }
}

/** Reads a configuration file; throws ConfigReadError when it cannot be read. */
export async function readConfigFile(path: string): Promise<SourceFile> {
  const { handle, size } = await openRegular(path);
  try {
    // One byte over the limit is kept, for parseConfig to say how large the file is.
    return decode(path, await readAtMost(handle, Math.min(size, MAX_CONFIG_BYTES), MAX_CONFIG_BYTES + 1));
  } catch (error) {
    if (error instanceof ConfigReadError) throw error;
    throw describeFailure(path, error);
  } finally {
    await handle.close().catch(() => undefined);
  }
}
