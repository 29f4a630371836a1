/**
 * What of a `filterctl test` file needs the rules it tests: each stub names a source (or an LDAP
 * source's table) of the rules and has the shape that kind of source answers with; `decided_by`
 * names a rule; with `--offline`, every source the rules look up that is not a list is stubbed.
 * Mistakes are diagnostics at their file:line:col in the test file.
 */
import { isIP } from "node:net";
import { isScalar, isSeq, type Node } from "yaml";
import type { Diagnostic } from "../common/diagnostics.js";
import { either, suggest } from "../common/suggest.js";
import { parseSize } from "../common/units.js";
import type { Config, SourceConfig } from "../config/types.js";
import type { QuotaStatus } from "../runtime/lookups.js";
import type { Ruleset } from "../runtime/ruleset.js";
import { type StubEntry, type TestFile, TestFileReader } from "./rules-test-file.js";
import type { SourceStub, Stubs } from "./rules-test-stubs.js";

const QUOTA_KEYS = ["usage", "limit", "count", "count_limit"] as const;

function stubNames(config: Config): string[] {
  const names: string[] = [];
  for (const source of config.sources.values()) {
    if (source.tables === undefined) names.push(source.name);
    else for (const table of source.tables.keys()) names.push(`${source.name}.${table}`);
  }
  return names;
}

/** The source a stub name is about, or undefined after an error. */
function sourceOf(reader: TestFileReader, config: Config, stub: StubEntry): SourceConfig | undefined {
  const dot = stub.name.indexOf(".");
  const sourceName = dot === -1 ? stub.name : stub.name.slice(0, dot);
  const source = config.sources.get(sourceName);
  const names = stubNames(config);
  const unknown = (what: string) =>
    reader.error(
      stub.offset,
      `${what}`,
      suggest(stub.name, names) ?? `the rules' sources: ${names.join(", ")}`,
    );
  if (source === undefined) return unknown(`sources: the rules have no source '${sourceName}'`);
  if (dot === -1 && source.tables !== undefined)
    return unknown(`sources: '${stub.name}' has tables; stub each one as ${stub.name}.TABLE`);
  if (dot !== -1 && source.tables === undefined)
    return reader.error(stub.offset, `sources: '${sourceName}' has no tables; stub it as ${sourceName}`);
  if (dot !== -1 && !source.tables?.has(stub.name.slice(dot + 1)))
    return unknown(`sources: '${sourceName}' has no table '${stub.name.slice(dot + 1)}'`);
  return source;
}

function tableStub(reader: TestFileReader, stub: StubEntry): SourceStub | undefined {
  if (isSeq(stub.node)) {
    const entries = reader.texts(stub.node, `sources.${stub.name}`);
    return entries === undefined ? undefined : { kind: "table", entries: entries.map((e) => e.value) };
  }
  const entries = reader.entries(
    stub.node,
    `sources.${stub.name} (a list of entries, or entry: value)`,
    undefined,
  );
  if (entries === undefined) return undefined;
  const values = new Map<string, string>();
  for (const [key, { value }] of entries) {
    const text = reader.text(value, `sources.${stub.name}.${key}`, true);
    if (text !== undefined) values.set(key, text);
  }
  return { kind: "table", entries: [...values.keys()], values };
}

function quotaNumber(
  reader: TestFileReader,
  node: Node | null,
  what: string,
  sizes: boolean,
): number | undefined {
  if (isScalar(node) && typeof node.value === "number" && Number.isInteger(node.value) && node.value >= 0)
    return node.value;
  const parsed =
    sizes && isScalar(node) && typeof node.value === "string" ? parseSize(node.value) : undefined;
  if (parsed !== undefined) return parsed;
  return reader.error(
    node,
    `${what} must be ${sizes ? "a number of bytes or a size (200MB)" : "a whole number"}`,
  );
}

function quotaStub(reader: TestFileReader, stub: StubEntry, source: SourceConfig): SourceStub | undefined {
  const what = `sources.${stub.name} (address: { usage, limit, count, count_limit })`;
  const entries = reader.entries(stub.node, what, undefined);
  if (entries === undefined) return undefined;
  const mailboxes = new Map<string, QuotaStatus>();
  for (const [address, { key, value }] of entries) {
    if (!address.includes("@")) reader.error(key, `sources.${stub.name}: '${address}' is not an address`);
    const fields = reader.entries(value, `sources.${stub.name}.${address}`, QUOTA_KEYS);
    if (fields === undefined) continue;
    const read = (name: string, sizes: boolean) => {
      const field = fields.get(name);
      return field === undefined ? 0 : quotaNumber(reader, field.value, `${address} ${name}`, sizes);
    };
    const status = { usage: read("usage", true), limit: read("limit", true), count: read("count", false) };
    const countLimit = read("count_limit", false);
    if (status.usage === undefined || status.limit === undefined || status.count === undefined) continue;
    if (countLimit === undefined) continue;
    mailboxes.set(address, { usage: status.usage, limit: status.limit, count: status.count, countLimit });
  }
  const quota: SourceStub = { kind: "quota", mailboxes };
  if (source.recipientDelimiter !== undefined) quota.recipientDelimiter = source.recipientDelimiter;
  return quota;
}

function dnsblCodes(reader: TestFileReader, node: Node | null, what: string): string[] | undefined {
  const codes = reader.texts(node, `${what} (the list's answers, e.g. ["127.0.0.2"])`);
  if (codes === undefined) return undefined;
  if (codes.length === 0)
    return reader.error(node, `${what}: a listed key needs at least one answer (127.0.0.2)`);
  const wrong = codes.find((c) => isIP(c.value) !== 4 || !c.value.startsWith("127."));
  if (wrong !== undefined)
    return reader.error(wrong.offset, `${what}: '${wrong.value}' is not an answer in 127.0.0.0/8`);
  return codes.map((c) => c.value);
}

function dnsblStub(reader: TestFileReader, stub: StubEntry, source: SourceConfig): SourceStub | undefined {
  const zone = (source as { zone?: string }).zone ?? "";
  const listed = new Map<string, string[]>();
  // A plain list of keys: each listed with 127.0.0.2, the answer every list gives.
  if (isSeq(stub.node)) {
    for (const key of reader.texts(stub.node, `sources.${stub.name}`) ?? [])
      listed.set(key.value, ["127.0.0.2"]);
    return { kind: "dnsbl", zone, listed };
  }
  const entries = reader.entries(stub.node, `sources.${stub.name} (listed key: [answers])`, undefined);
  if (entries === undefined) return undefined;
  for (const [key, { value }] of entries) {
    const codes = dnsblCodes(reader, value, `sources.${stub.name}.${key}`);
    if (codes !== undefined) listed.set(key, codes);
  }
  return { kind: "dnsbl", zone, listed };
}

function readStubs(reader: TestFileReader, test: TestFile, config: Config): Map<string, SourceStub> {
  const stubs = new Map<string, SourceStub>();
  for (const entry of test.stubs) {
    const source = sourceOf(reader, config, entry);
    if (source === undefined) continue;
    const stub =
      source.kind === "quota"
        ? quotaStub(reader, entry, source)
        : source.kind === "dnsbl"
          ? dnsblStub(reader, entry, source)
          : tableStub(reader, entry);
    if (stub !== undefined) stubs.set(entry.name, stub);
  }
  return stubs;
}

/** Whether `--offline` can answer a source without a stub: a list's entries are in files next to the rules. */
export function answersOffline(source: SourceConfig): boolean {
  return source.type === "list";
}

function checkOffline(
  reader: TestFileReader,
  test: TestFile,
  config: Config,
  ruleset: Ruleset,
  stubs: Stubs,
): void {
  for (const name of ruleset.sourcesUsed) {
    const source = config.sources.get(name);
    if (source === undefined || answersOffline(source)) continue;
    const stubbed = [...stubs.keys()].some((stub) => stub === name || stub.startsWith(`${name}.`));
    if (stubbed) continue;
    const what =
      source.tables === undefined
        ? `'${name}'`
        : `'${name}' (tables ${either([...source.tables.keys()].map((t) => `${name}.${t}`))})`;
    reader.error(
      test.rules.offset,
      `--offline: the rules look up ${what}, a ${source.type} source the test file does not stub`,
      "stub it under sources:, or run without --offline to ask it live",
    );
  }
}

/** The stubs of a test file, checked against the rules it tests. */
export function checkTestAgainstRules(
  test: TestFile,
  config: Config,
  ruleset: Ruleset,
  offline: boolean,
): { stubs: Stubs; diagnostics: Diagnostic[] } {
  const reader = new TestFileReader(test.file, test.doc);
  const stubs = readStubs(reader, test, config);
  const rules = ruleset.rules.map((r) => r.name);
  for (const testCase of test.cases) {
    const decidedBy = testCase.expect.decidedBy;
    if (decidedBy === undefined || rules.includes(decidedBy.value)) continue;
    reader.error(
      decidedBy.offset,
      `expect.decided_by: the rules have no rule '${decidedBy.value}'`,
      suggest(decidedBy.value, rules) ?? `its rules: ${rules.join(", ")}`,
    );
  }
  const shadows = ruleset.rules.filter((r) => r.shadow).map((r) => r.name);
  for (const testCase of test.cases) {
    for (const [rule, { offset }] of testCase.expect.shadow) {
      if (shadows.includes(rule)) continue;
      const what = rules.includes(rule)
        ? `'${rule}' is not a shadow rule`
        : `the rules have no rule '${rule}'`;
      reader.error(
        offset,
        `expect.shadow: ${what}`,
        suggest(rule, shadows) ?? `shadow rules: ${shadows.join(", ") || "none"}`,
      );
    }
  }
  if (offline) checkOffline(reader, test, config, ruleset, stubs);
  return { stubs, diagnostics: reader.diagnostics };
}
