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
 * Reads a list file's keys. A FIFO, device, folder or file over LIST_FILE_LIMIT is refused
 * (ConfigReadError) before anything is read.
 */
export async function readListFile(path: string): Promise<string[]> {
  const text = (await readBoundedFile(path, LIST_FILE_LIMIT)).toString("utf8");
  return text
    .split("\n")
    .map((line) => line.replace(/#.*/, "").trim())
    .filter((line) => line !== "");
}

export async function createListTable(config: ListSourceConfig, configPath: string): Promise<ListTable> {
  const items = [...(config.items ?? [])];
  if (config.file !== undefined)
    items.push(...(await readListFile(resolve(dirname(configPath), config.file))));
  return new ListTable(items);
}
