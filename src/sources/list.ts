/**
 * A static table: inline `items`, or a file with one key per line (`#` comments, blank lines
 * ignored). Keys are IP addresses, CIDR ranges, addresses (normalised as the rules compare them:
 * domain folded, needless quotes dropped, local part folded unless `local_part: sensitive`) or
 * plain words such as domains (case-insensitive).
 */
import { BlockList, isIP } from "node:net";
import { dirname, resolve } from "node:path";
import { type LocalPartMode, normalizeAddress, normalizeDomain } from "../common/address.js";
import { canonicalIp } from "../common/ip.js";
import { LIST_FILE_LIMIT, readBoundedFile } from "../config/read.js";
import type { SourceConfigBase } from "../config/types.js";

/** Keys added between two turns of the event loop (a few milliseconds' work). */
const LINES_PER_TURN = 5_000;

function normalizeKey(key: string, mode: LocalPartMode): string {
  if (key.includes("@")) return normalizeAddress(key, mode);
  if (isIP(key) !== 0) return canonicalIp(key.toLowerCase());
  // Plain words are mostly domains: `Example.ORG.` is `example.org`, as the rules' from.domain is.
  return normalizeDomain(key);
}

export interface ListSourceConfig extends SourceConfigBase {
  type: "list";
  items?: string[];
  /** One key per line; `#` comments and blank lines ignored. Resolved against the config file's folder. */
  file?: string;
}

export class ListTable {
  private readonly exact = new Map<string, string>();
  private readonly ranges = new BlockList();
  private readonly rangeItems: { text: string; family: "ipv4" | "ipv6"; list: BlockList }[] = [];

  constructor(
    items: readonly string[],
    private readonly localPart: LocalPartMode = "insensitive",
  ) {
    this.addAll(items);
  }

  /**
   * A table of a list file's text, one key per line (`#` comments and blank lines ignored), built
   * a slice at a time: a large file never holds the event loop (and the sessions it serves) for
   * long, and a reload given up at its deadline (`signal`) stops building it.
   */
  static async fromText(
    text: string,
    signal?: AbortSignal,
    localPart: LocalPartMode = "insensitive",
    items: readonly string[] = [],
  ): Promise<ListTable> {
    const table = new ListTable(items, localPart);
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
        this.exact.set(normalizeKey(item, this.localPart), item);
      }
    }
  }

  get size(): number {
    return this.exact.size + this.rangeItems.length;
  }

  /** The item that matches `key`, or undefined. */
  find(key: string): string | undefined {
    const found = this.exact.get(normalizeKey(key, this.localPart));
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
 * A list source's table: its items, and its file's keys. The file is read whole (a FIFO, device,
 * folder or file over LIST_FILE_LIMIT is refused, ConfigReadError, before anything is read).
 */
export async function createListTable(
  config: ListSourceConfig,
  configPath: string,
  signal?: AbortSignal,
): Promise<ListTable> {
  const items = config.items ?? [];
  if (config.file === undefined) return new ListTable(items, config.localPart);
  const bytes = await readBoundedFile(resolve(dirname(configPath), config.file), LIST_FILE_LIMIT);
  return ListTable.fromText(bytes.toString("utf8"), signal, config.localPart, items);
}
