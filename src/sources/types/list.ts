/**
 * list: a static table of IPs, CIDRs, addresses and domains, inline or from a file, held in
 * memory. In rules: `client.ip in NAME`, `NAME[from]`.
 */
import { text } from "../../config/build.js";
import { LIST_FILE_LIMIT } from "../../config/read.js";
import type { SourceDescriptor } from "../descriptor.js";
import { createListTable, type ListSourceConfig } from "../list.js";

declare module "../../config/types.js" {
  interface SourceConfigs {
    list: ListSourceConfig;
  }
}

export const list: SourceDescriptor<ListSourceConfig> = {
  type: "list",
  kind: "table",
  label: "list",
  // Answered from memory: nothing to cache.
  ttlMs: { positive: 0, negative: 0 },
  schema: {
    summary: "list (static table)",
    typeDescription: "list: a static table.",
    definition: {
      description: "A static table: IPs, CIDRs, addresses, domains.",
      anyOf: [
        {
          required: ["items"],
        },
        {
          required: ["file"],
        },
      ],
      not: {
        required: ["items", "file"],
      },
      properties: {
        items: {
          description: "The entries: IPs, CIDRs (192.0.2.0/24), addresses, domains.",
          type: "array",
          items: {
            description: "One entry.",
            type: "string",
            minLength: 1,
          },
        },
        file: {
          description:
            "File with one entry per line (# comments and blank lines ignored), relative to this file's folder.",
          type: "string",
          minLength: 1,
        },
      },
    },
  },
  build(raw, base, ctx) {
    const file = text(raw.file);
    return {
      ...base,
      type: "list",
      items: Array.isArray(raw.items) ? raw.items.map(String) : undefined,
      file: file === undefined ? undefined : ctx.resolveFile(file),
    };
  },
  files: (config) =>
    config.file === undefined
      ? []
      : [{ key: "file", path: config.file, label: "list file", limit: LIST_FILE_LIMIT }],
  async create(config, ctx) {
    const table = await createListTable(config, ctx.configPath, ctx.signal);
    return { kind: "memory", find: (key) => table.find(key), close: async () => {} };
  },
};
