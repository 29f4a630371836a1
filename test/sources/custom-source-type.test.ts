/**
 * A source type added in one file: its descriptor (schema fragment, config builder, factory,
 * TTLs, kind) is all filterctl needs to load a rules.yaml that uses it, check its options with
 * diagnostics at their place, and answer the rules' lookups through the registry's cache.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatDiagnostic } from "../../src/common/diagnostics.js";
import { parseSize } from "../../src/common/units.js";
import type { SourceConfigBase } from "../../src/config/types.js";
import { dryRun } from "../../src/engine/dry-run.js";
import { loadRules } from "../../src/engine/load-rules.js";
import { SOURCE_CATALOG } from "../../src/sources/catalog.js";
import type { SourceDescriptor } from "../../src/sources/descriptor.js";
import { SourceRegistry } from "../../src/sources/registry.js";

// ---- The source type: mailbox usage written in rules.yaml, against one limit -----------------

interface MemQuotaConfig extends SourceConfigBase {
  type: "memquota";
  limit: number;
  usage: Map<string, number>;
}

/** Each lookup that reached the source (the registry's cache answers the others). */
const asked: string[] = [];

const memquota: SourceDescriptor<MemQuotaConfig> = {
  type: "memquota",
  kind: "quota",
  label: "memquota",
  ttlMs: { positive: 60_000, negative: 60_000 },
  schema: {
    summary: "memquota (usage written down)",
    typeDescription: "memquota: mailbox usage written in this file.",
    definition: {
      description: "Mailbox usage written in rules.yaml, against one limit.",
      required: ["limit", "usage"],
      properties: {
        limit: {
          description: "The limit, in MB or GB, e.g. 10MB.",
          type: "string",
          pattern: "^[0-9]+(MB|GB)$",
        },
        usage: {
          description: "Usage by mailbox address, e.g. bob@example.org: 12MB.",
          type: "object",
          additionalProperties: { $ref: "#/definitions/size" },
        },
      },
    },
    messages: {
      "#/definitions/memquotaSource/properties/limit": (what) =>
        `${what} must be a size in MB or GB, like 10MB`,
    },
  },
  build(raw, base, ctx) {
    const limit = parseSize(String(raw.limit)) ?? 0;
    if (limit === 0) ctx.error(["limit"], `'limit' of source '${ctx.name}' must be more than 0`);
    const usage = new Map<string, number>();
    for (const [address, size] of Object.entries(raw.usage as Record<string, unknown>)) {
      usage.set(address.toLowerCase(), typeof size === "number" ? size : (parseSize(String(size)) ?? 0));
    }
    return { ...base, type: "memquota", limit, usage };
  },
  create: (config) => ({
    kind: "quota",
    quota: async (address) => {
      asked.push(address);
      const usage = config.usage.get(address);
      return usage === undefined ? undefined : { usage, limit: config.limit, count: 0, countLimit: 0 };
    },
    close: async () => {},
  }),
};

const SOURCE_TYPES = [...SOURCE_CATALOG, memquota];

// ---- Using it ----------------------------------------------------------------------------------

const RULES = `sources:
  boxes:
    type: memquota
    limit: 10MB
    usage:
      bob@example.org: 12MB
      alice@example.org: 1MB
rules:
  - name: full
    on: rcpt
    if: quota(rcpt, boxes) over
    then: tempfail 452 4.2.2 "Mailbox full"
`;

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "filterctl-custom-source-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function load(name: string, text: string) {
  const path = join(dir, name);
  await writeFile(path, text);
  const loaded = await loadRules(path, false, SOURCE_TYPES);
  if (loaded.kind !== "loaded") throw new Error(loaded.message);
  return loaded;
}

/** What `filterctl validate` prints for the file's problems, the folder left out. */
async function problems(text: string): Promise<string[]> {
  const loaded = await load("rules.yaml", text);
  return loaded.diagnostics.map((d) => formatDiagnostic(d).replace(`${dir}/`, ""));
}

describe("a source type defined in a test", () => {
  it("is loaded, compiled and asked through the registry, its TTL caching the answers", async () => {
    const loaded = await load("ok.yaml", RULES);
    expect(loaded.diagnostics).toEqual([]);
    const config = loaded.config;
    const ruleset = loaded.ruleset;
    if (config === undefined || ruleset === undefined) throw new Error("not loaded");
    expect(config.sources.get("boxes")).toMatchObject({ type: "memquota", kind: "quota", limit: 10_000_000 });

    asked.length = 0;
    const registry = await SourceRegistry.create(config);
    const input = { clientIp: "192.0.2.1", from: "a@example.net", headers: [], body: Buffer.alloc(0) };
    const report = await dryRun(ruleset, registry, {
      ...input,
      rcpts: ["bob@example.org", "alice@example.org", "Bob@Example.ORG"],
    });
    expect(report.recipients.map((r) => [r.rcpt, r.reply ?? r.decision, r.rule])).toEqual([
      ["bob@example.org", "452 4.2.2 Mailbox full", "full"],
      ["alice@example.org", "continue", undefined],
      ["Bob@Example.ORG", "452 4.2.2 Mailbox full", "full"],
    ]);
    // Bob's second spelling is the same mailbox: the cache (60 s, the type's TTL) answered it.
    expect(asked).toEqual(["bob@example.org", "alice@example.org"]);
    await registry.close();
  });

  it("is a quota source to the checker: quota(ADDRESS, NAME), not a table", async () => {
    const text = RULES.replace("quota(rcpt, boxes) over", "rcpt in boxes");
    expect(await problems(text)).toEqual([
      "rules.yaml:11:17: error: 'boxes' is a quota source: use quota(ADDRESS, boxes)",
    ]);
  });

  it("has its options checked at their place, by its schema fragment and its builder", async () => {
    expect(await problems(RULES.replace("limit: 10MB", "limit: lots"))).toEqual([
      "rules.yaml:4:12: error: 'limit' must be a size in MB or GB, like 10MB",
    ]);
    expect(await problems(RULES.replace("limit: 10MB", "limit: 0MB"))).toEqual([
      "rules.yaml:4:12: error: 'limit' of source 'boxes' must be more than 0",
    ]);
    expect(await problems(RULES.replace("limit: 10MB", "limt: 10MB"))).toEqual([
      "rules.yaml:4:5: error: unknown key 'limt' in source 'boxes' (did you mean 'limit'?)",
    ]);
    expect(await problems(RULES.replace("12MB", "twelve"))).toEqual([
      "rules.yaml:6:24: error: 'bob@example.org' must be a size like 200MB or 1GiB, or a number of bytes",
    ]);
    expect(await problems(RULES.replace("type: memquota", "type: memqouta"))).toEqual([
      "rules.yaml:3:11: error: unknown source type 'memqouta' (did you mean 'memquota'?)",
    ]);
  });

  it("with a kind the checker does not know, is refused by name, not taken for another kind", async () => {
    // A plugin written in JavaScript could declare any kind; TypeScript would refuse this one.
    const stream = { ...memquota, type: "stream", kind: "stream" as unknown as "quota" };
    const path = join(dir, "stream.yaml");
    await writeFile(
      path,
      RULES.replace("memquota", "stream").replace("quota(rcpt, boxes) over", "rcpt in boxes"),
    );
    const loaded = await loadRules(path, false, [...SOURCE_CATALOG, stream]);
    if (loaded.kind !== "loaded") throw new Error(loaded.message);
    expect(loaded.diagnostics.map((d) => d.message)).toEqual([
      "source 'boxes' is of kind 'stream', which rules cannot use",
    ]);
  });

  it("is unknown to a configuration read with the built-in types only", async () => {
    const path = join(dir, "builtin.yaml");
    await writeFile(path, RULES);
    const loaded = await loadRules(path);
    if (loaded.kind !== "loaded") throw new Error(loaded.message);
    expect(loaded.diagnostics.map((d) => d.message)).toEqual(["unknown source type 'memquota'"]);
  });
});
