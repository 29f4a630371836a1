import { open, stat as statAsync } from "node:fs/promises";
import { SourceFile } from "../dsl/diagnostics.js";

/** Larger files are refused (reported as a diagnostic by parseConfig). */
export const MAX_CONFIG_BYTES = 10 * 1024 * 1024;

export class ConfigReadError extends Error {
  override readonly name = "ConfigReadError";
  constructor(
    readonly path: string,
    message: string,
    readonly code?: string,
  ) {
    super(message);
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
      return new ConfigReadError(path, `${path}: is a folder, not a file`, code);
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
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    // stat before open: opening a FIFO would block.
    const stat = await statAsync(path);
    if (stat.isDirectory()) throw Object.assign(new Error("is a directory"), { code: "EISDIR" });
    if (!stat.isFile()) throw new ConfigReadError(path, `${path}: not a regular file`, "ENOTFILE");
    handle = await open(path, "r");
    const buffer = Buffer.alloc(Math.min(stat.size, MAX_CONFIG_BYTES) + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return decode(path, buffer.subarray(0, length));
  } catch (error) {
    if (error instanceof ConfigReadError) throw error;
    throw describeFailure(path, error);
  } finally {
    await handle?.close();
  }
}
