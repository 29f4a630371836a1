/**
 * Sources built from the configuration, answering the rules' lookups. List sources are served
 * from memory; the other types plug in here (the data-sources work adds them with caching,
 * timeouts and health); until then a lookup on them fails, and the rule's on_error applies.
 */
import type { Config, SourceConfig } from "../config/types.js";
import { type DnsblAnswer, LookupError, type Lookups, type QuotaStatus } from "../runtime/lookups.js";
import { createListTable, type ListTable } from "./list.js";

export class SourceRegistry implements Lookups {
  private constructor(
    private readonly configs: ReadonlyMap<string, SourceConfig>,
    private readonly lists: ReadonlyMap<string, ListTable>,
  ) {}

  static async create(config: Config): Promise<SourceRegistry> {
    const lists = new Map<string, ListTable>();
    for (const source of config.sources.values()) {
      if (source.type === "list") lists.set(source.name, await createListTable(source, config.file.path));
    }
    return new SourceRegistry(config.sources, lists);
  }

  private unavailable(source: string): never {
    const type = this.configs.get(source)?.type ?? "unknown";
    throw new LookupError(source, `lookups on ${type} sources are not implemented yet`);
  }

  has(source: string, _table: string | undefined, key: string): boolean {
    const list = this.lists.get(source);
    if (list === undefined) this.unavailable(source);
    return list.find(key) !== undefined;
  }

  get(source: string, _table: string | undefined, key: string): string | undefined {
    const list = this.lists.get(source);
    if (list === undefined) this.unavailable(source);
    return list.find(key);
  }

  quota(source: string, _address: string): QuotaStatus | undefined {
    this.unavailable(source);
  }

  dnsbl(source: string, _key: string): DnsblAnswer {
    this.unavailable(source);
  }

  zoneOf(source: string): string {
    const config = this.configs.get(source);
    return config?.type === "dnsbl" ? config.zone : "";
  }

  async close(): Promise<void> {}
}
