/**
 * `filterctl lookup SOURCE[.TABLE] KEY`: asks one source, live, what a rule would ask it, and
 * prints the answer (like `postmap -q`). The source is opened alone, in a registry of its own, so
 * its cache is empty and the answer comes from the source itself; the key goes through the
 * registry as a rule's does (address normalisation, then the source's placeholders and escaping).
 * Exit 0 when the source answered (found or not), 1 for an invalid configuration or an unknown
 * source or table, 3 when the lookup failed, 2 for usage errors and unreadable files.
 */
import { suggest } from "../common/suggest.js";
import type { SourceConfig } from "../config/types.js";
import { checkRules, EXIT_INVALID, EXIT_OK, openSources } from "../engine/open-rules.js";
import { type DnsblAnswer, quotaPercent } from "../runtime/lookups.js";
import type { RegistryOptions, SourceRegistry } from "../sources/registry.js";
import type { DnsblHealth } from "../sources/types.js";
import { reportOpenFailure } from "./diagnostics-output.js";

export const EXIT_LOOKUP_FAILED = 3;

export interface LookupOptions {
  config: string;
  json: boolean;
}

/** What the source answered, as printed with --json. */
export type LookupAnswer =
  | { source: string; table?: string; key: string; kind: "table"; found: boolean; value?: string }
  | {
      source: string;
      key: string;
      kind: "quota";
      found: boolean;
      usage?: number;
      limit?: number;
      count?: number;
      /** snake_case, as the quota service's JSON and rules.yaml spell it. */
      count_limit?: number;
      percent?: number;
    }
  | {
      source: string;
      key: string;
      kind: "dnsbl";
      zone: string;
      listed: boolean;
      codes: readonly string[];
      reason?: string;
      health: { state: string; detail: string };
    };

/** Names the source and table `target` means, or says why it means none (exit 1). */
export function resolveTarget(
  sources: ReadonlyMap<string, SourceConfig>,
  target: string,
): { source: SourceConfig; table?: string } | { error: string } {
  const dot = target.indexOf(".");
  const name = dot < 0 ? target : target.slice(0, dot);
  const table = dot < 0 ? undefined : target.slice(dot + 1);
  const source = sources.get(name);
  if (source === undefined) {
    const names = [...sources.keys()];
    const hint = suggest(name, names);
    const known = names.length === 0 ? "the file defines no sources" : `sources: ${names.join(", ")}`;
    return { error: `no source named '${name}'${hint === undefined ? ` (${known})` : `; ${hint}`}` };
  }
  const tables = source.tables === undefined ? undefined : [...source.tables.keys()];
  if (tables === undefined) {
    if (table !== undefined)
      return { error: `source '${name}' (${source.type}) has no tables: use '${name}'` };
    return { source };
  }
  const listed = tables.map((t) => `${name}.${t}`).join(", ");
  if (table === undefined) return { error: `source '${name}' has tables: name one: ${listed}` };
  if (!tables.includes(table)) {
    const hint = suggest(table, tables);
    return {
      error: `source '${name}' has no table '${table}'${hint === undefined ? ` (tables: ${listed})` : `; ${hint}`}`,
    };
  }
  return { source, table };
}

async function ask(registry: SourceRegistry, source: SourceConfig, table: string | undefined, key: string) {
  const name = source.name;
  switch (source.kind) {
    case "table": {
      const value = await registry.get(name, table, key);
      const answer: LookupAnswer = { source: name, key, kind: "table", found: value !== undefined };
      if (table !== undefined) answer.table = table;
      if (value !== undefined) answer.value = value;
      return answer;
    }
    case "quota": {
      const status = await registry.quota(name, key);
      if (status === undefined) return { source: name, key, kind: "quota", found: false } as LookupAnswer;
      return {
        source: name,
        key,
        kind: "quota",
        found: true,
        usage: status.usage,
        limit: status.limit,
        count: status.count,
        count_limit: status.countLimit,
        percent: quotaPercent(status),
      } as LookupAnswer;
    }
    case "dnsbl":
      return askDnsbl(registry, name, key);
  }
}

/** One probe round first (as dnsbl-status and dry-run do): a list is only asked once healthy. */
async function askDnsbl(registry: SourceRegistry, name: string, key: string): Promise<LookupAnswer> {
  await registry.probeDnsbls();
  const answer: DnsblAnswer = await registry.dnsbl(name, key);
  const list = registry.source(name);
  const health: DnsblHealth | undefined = list?.kind === "dnsbl" ? list.health() : undefined;
  const out: LookupAnswer = {
    source: name,
    key,
    kind: "dnsbl",
    zone: registry.zoneOf(name),
    listed: answer.listed,
    codes: answer.codes ?? [],
    health: { state: health?.state ?? "unknown", detail: health?.detail ?? "" },
  };
  if (answer.reason !== undefined) out.reason = answer.reason;
  return out;
}

export function renderAnswer(answer: LookupAnswer): string {
  const target =
    answer.kind === "table" && answer.table !== undefined
      ? `${answer.source}.${answer.table}`
      : answer.source;
  const head = `${target} ${JSON.stringify(answer.key)}:`;
  switch (answer.kind) {
    case "table":
      return answer.found ? `${head} found: ${answer.value}\n` : `${head} not found\n`;
    case "quota": {
      if (!answer.found) return `${head} no such mailbox\n`;
      const limit = (n: number | undefined, unit: string) => (n ? `${n}${unit}` : "none");
      return (
        `${head} usage ${answer.usage} bytes (limit ${limit(answer.limit, " bytes")}), ` +
        `${answer.count} messages (limit ${limit(answer.count_limit, "")}), ${answer.percent}%\n`
      );
    }
    case "dnsbl": {
      const state = `list ${answer.zone}: ${answer.health.state}`;
      const health = answer.health.state === "healthy" ? state : `${state}: ${answer.health.detail}`;
      if (!answer.listed) return `${head} not listed\n${health}\n`;
      const reason = answer.reason === undefined ? "" : `\nreason: ${answer.reason}`;
      return `${head} listed (${answer.codes.join(", ")})${reason}\n${health}\n`;
    }
  }
}

/** `registry`: how sources are built (tests); default the real ones. */
export async function lookupCommand(
  target: string,
  key: string,
  options: LookupOptions,
  registry: RegistryOptions = {},
): Promise<number> {
  const checked = await checkRules(options.config);
  if (checked.kind !== "checked") return reportOpenFailure(checked);
  const resolved = resolveTarget(checked.config.sources, target);
  if ("error" in resolved) {
    process.stderr.write(`filterctl: ${resolved.error}\n`);
    return EXIT_INVALID;
  }
  const { source, table } = resolved;
  const opened = await openSources(checked, { only: (s) => s.name === source.name, registry });
  if (opened.kind !== "opened") return reportOpenFailure(opened);
  let answer: LookupAnswer;
  try {
    answer = await ask(opened.registry, source, table, key);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    process.stderr.write(`filterctl: lookup in ${target} failed: ${why}\n`);
    return EXIT_LOOKUP_FAILED;
  } finally {
    await opened.registry.close();
  }
  process.stdout.write(options.json ? `${JSON.stringify(answer, null, 2)}\n` : renderAnswer(answer));
  return EXIT_OK;
}
