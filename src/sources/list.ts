/**
 * A static table: inline `items`, or a file with one key per line (`#` comments, blank lines
 * ignored). Keys are IP addresses, CIDR ranges, addresses (domain part case-insensitive) or
 * plain words such as domains (case-insensitive).
 */
import { BlockList, isIP } from "node:net";
import { dirname, resolve } from "node:path";
import { LIST_FILE_LIMIT, readBoundedFile } from "../config/read.js";
import type { ListSourceConfig } from "../config/types.js";
import { canonicalIp } from "../dsl/compiler.js";
import { normalizeAddress } from "../runtime/transaction.js";

/** Keys added between two turns of the event loop (a few milliseconds' work). */
const LINES_PER_TURN = 5_000;

function normalizeKey(key: string): string {
  if (key.includes("@")) return normalizeAddress(key);
  if (isIP(key) !== 0) return canonicalIp(key.toLowerCase());
  return key.toLowerCase();
}

export class ListTable {
  private readonly exact = new Map<string, string>();
  private readonly ranges = new BlockList();
  private readonly rangeItems: { text: string; family: "ipv4" | "ipv6"; list: BlockList }[] = [];

  constructor(items: readonly string[]) {
    this.addAll(items);
  }

  /**
   * A table of a list file's text, one key per line (`#` comments and blank lines ignored), built
   * a slice at a time: a large file never holds the event loop (and the sessions it serves) for
   * long, and a reload given up at its deadline (`signal`) stops building it.
   */
  static async fromText(text: string, signal?: AbortSignal): Promise<ListTable> {
    const table = new ListTable([]);
    let start = 0;
    while (start < text.length) {
      const slice: string[] = [];
      while (slice.length < LINES_PER_TURN && start < text.length) {
        const newline = text.indexOf("\n", start);
        const end = newline === -1 ? text.length : newline;
        slice.push(text.slice(start, end).replace(/#.*/, ""));
        start = end + 1;
      }
      table.addAll(slice);
      if (start < text.length) {
        await new Promise((resolve) => setImmediate(resolve));
        signal?.throwIfAborted();
      }
    }
    return table;
  }

  private addAll(items: readonly string[]): void {
    for (const raw of items) {
      const item = raw.trim();
      if (item === "") continue;
      const slash = item.indexOf("/");
      const family = slash === -1 ? 0 : isIP(item.slice(0, slash));
      const prefix = Number(item.slice(slash + 1));
      if (family !== 0 && Number.isInteger(prefix) && prefix >= 0 && prefix <= (family === 4 ? 32 : 128)) {
        const type = family === 6 ? "ipv6" : "ipv4";
        this.ranges.addSubnet(item.slice(0, slash), prefix, type);
        const single = new BlockList();
        single.addSubnet(item.slice(0, slash), prefix, type);
        this.rangeItems.push({ text: item, family: type, list: single });
      } else {
        this.exact.set(normalizeKey(item), item);
      }
    }
  }

  get size(): number {
    return this.exact.size + this.rangeItems.length;
  }

  /** The item that matches `key`, or undefined. */
  find(key: string): string | undefined {
    const found = this.exact.get(normalizeKey(key));
    if (found !== undefined) return found;
    if (this.rangeItems.length === 0) return undefined;
    const ip = canonicalIp(key);
    const family = isIP(ip);
    if (family === 0) return undefined;
    const type = family === 6 ? "ipv6" : "ipv4";
    if (!this.ranges.check(ip, type)) return undefined;
    return this.rangeItems.find((r) => r.family === type && r.list.check(ip, type))?.text;
  }
}

/**
 * A list source's table. Its file is read whole (a FIFO, device, folder or file over
 * LIST_FILE_LIMIT is refused, ConfigReadError, before anything is read).
 */
export async function createListTable(
  config: ListSourceConfig,
  configPath: string,
  signal?: AbortSignal,
): Promise<ListTable> {
  if (config.file === undefined) return new ListTable(config.items ?? []);
  const bytes = await readBoundedFile(resolve(dirname(configPath), config.file), LIST_FILE_LIMIT);
  return ListTable.fromText(bytes.toString("utf8"), signal);
}
