/**
 * A static table: inline `items`, or a file with one key per line (`#` comments, blank lines
 * ignored). Keys are IP addresses, CIDR ranges, addresses (normalised as the rules compare them:
 * domain folded, needless quotes dropped, local part folded unless `local_part: sensitive`) or
 * plain words such as domains (case-insensitive).
 */
import { dirname, resolve } from "node:path";
import type { LocalPartMode } from "../common/address.js";
import { ListMatcher } from "../common/list-matcher.js";
import { LIST_FILE_LIMIT, readBoundedFile } from "../config/read.js";
import type { SourceConfigBase } from "../config/types.js";

/** Keys added between two turns of the event loop (a few milliseconds' work). */
const LINES_PER_TURN = 5_000;

export interface ListSourceConfig extends SourceConfigBase {
  type: "list";
  items?: string[];
  /** One key per line; `#` comments and blank lines ignored. Resolved against the config file's folder. */
  file?: string;
}

/** The matching itself is common/list-matcher's: rules' literal lists match the same way. */
export class ListTable extends ListMatcher {
  constructor(items: readonly string[], localPart: LocalPartMode = "insensitive") {
    super(items, { localPart });
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
      table.add(slice);
      if (start < text.length) {
        await new Promise((resolve) => setImmediate(resolve));
        signal?.throwIfAborted();
      }
    }
    return table;
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
