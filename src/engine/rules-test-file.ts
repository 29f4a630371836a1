/**
 * Reading a `filterctl test` file: YAML with positions (the configuration's reader and its syntax
 * diagnostics), then hand checks of its shape, each mistake a diagnostic at its file:line:col with
 * a did-you-mean where one helps. What needs the rules (which sources exist, their kinds, the rule
 * names) is checked afterwards, by rules-test-check.ts.
 */
import { dirname, isAbsolute, join } from "node:path";
import { type Document, isAlias, isMap, isScalar, isSeq, type Node, parseDocument } from "yaml";
import type { Diagnostic, SourceFile } from "../common/diagnostics.js";
import { sortDiagnostics } from "../common/diagnostics.js";
import { suggest } from "../common/suggest.js";
import { parseSize } from "../common/units.js";
import { yamlDiagnostics } from "../config/yaml-errors.js";
import { isPatternError, parseReplyPattern, RESULTS, type ReplyPattern, VERDICTS } from "./reply-match.js";

/** A value of the test file and where it is. */
export interface At<T> {
  value: T;
  offset: number;
}

export const REPLY_STAGES = ["connect", "helo", "mail"] as const;
export type ReplyStage = (typeof REPLY_STAGES)[number];

export interface CaseExpect {
  stages: Map<ReplyStage, At<ReplyPattern>>;
  /** By recipient, as the case's `rcpt:` writes it. */
  rcpt: Map<string, At<ReplyPattern>>;
  result?: At<ReplyPattern>;
  headersAdded?: At<string[]>;
  decidedBy?: At<string>;
  /** By shadow rule: what it would have done (`continue`: nothing). `offset` is the rule name's. */
  shadow: Map<string, At<ReplyPattern>>;
}

export interface TestCase {
  name: string;
  offset: number;
  client: { ip: string; name?: string; port?: number };
  helo?: string;
  auth?: string;
  /** SIZE= at MAIL FROM, bytes. */
  size?: number;
  headers: { name: string; value: string }[];
  /** A message file (headers and body), resolved against the test file's folder. */
  message?: At<string>;
  from: string;
  rcpt: string[];
  expect: CaseExpect;
}

/** One entry of `sources:`, read once the rules say what kind of source it names. */
export interface StubEntry {
  name: string;
  offset: number;
  node: Node | null;
}

export interface TestFile {
  file: SourceFile;
  doc: Document;
  /** The rules file, resolved against the test file's folder. */
  rules: At<string>;
  stubs: StubEntry[];
  cases: TestCase[];
}

const TOP_KEYS = ["rules", "sources", "cases"] as const;
const CASE_KEYS = [
  "name",
  "client",
  "helo",
  "auth",
  "size",
  "headers",
  "message",
  "from",
  "rcpt",
  "expect",
] as const;
const CLIENT_KEYS = ["ip", "name", "port"] as const;
const EXPECT_KEYS = [
  "connect",
  "helo",
  "mail",
  "rcpt",
  "result",
  "headers_added",
  "decided_by",
  "shadow",
] as const;

/** A path the test file names, from the test file's folder (kept relative: diagnostics show it as typed). */
function relativeTo(folder: string, path: string): string {
  return isAbsolute(path) ? path : join(folder, path);
}

type Entries = Map<string, { key: Node; value: Node | null }>;

/** The hand checks, collecting diagnostics. */
export class TestFileReader {
  readonly diagnostics: Diagnostic[] = [];

  constructor(
    readonly file: SourceFile,
    readonly doc: Document,
  ) {}

  resolve(node: unknown): Node | null {
    let current = node;
    for (let hops = 0; isAlias(current) && hops < 100; hops++) current = current.resolve(this.doc);
    return (current as Node | undefined) ?? null;
  }

  error(at: Node | null | number | undefined, message: string, hint?: string): undefined {
    const offset = typeof at === "number" ? at : (at?.range?.[0] ?? 0);
    this.diagnostics.push(this.file.diagnostic(offset, "error", message, hint));
    return undefined;
  }

  /** A mapping's entries, every key one of `keys` (an unknown one is an error with a did-you-mean). */
  entries(node: Node | null, what: string, keys: readonly string[] | undefined): Entries | undefined {
    if (!isMap(node)) return this.error(node, `${what} must be a mapping`);
    const out: Entries = new Map();
    for (const pair of node.items) {
      const key = this.resolve(pair.key);
      const name = isScalar(key) ? String(key.value) : undefined;
      if (name === undefined || key === null) {
        this.error(key, `${what}: a key must be a plain word`);
        continue;
      }
      if (keys !== undefined && !keys.includes(name)) {
        this.error(
          key,
          `unknown key '${name}' in ${what}`,
          suggest(name, keys) ?? `keys: ${keys.join(", ")}`,
        );
        continue;
      }
      out.set(name, { key, value: this.resolve(pair.value) });
    }
    return out;
  }

  text(node: Node | null, what: string, empty = false): string | undefined {
    if (!isScalar(node) || node.value === null || typeof node.value === "object")
      return this.error(node, `${what} must be a text`);
    const value = String(node.value);
    if (value === "" && !empty) return this.error(node, `${what} must not be empty`);
    return value;
  }

  texts(node: Node | null, what: string): At<string>[] | undefined {
    if (!isSeq(node)) return this.error(node, `${what} must be a list`);
    const out: At<string>[] = [];
    for (const item of node.items) {
      const resolved = this.resolve(item);
      const value = this.text(resolved, `an entry of ${what}`);
      if (value !== undefined) out.push({ value, offset: resolved?.range?.[0] ?? 0 });
    }
    return out;
  }

  /** A reply expectation; a mistake points at the word that is wrong. */
  pattern(
    node: Node | null,
    what: string,
    allowed: readonly string[] = VERDICTS,
  ): At<ReplyPattern> | undefined {
    const text = this.text(node, what);
    if (text === undefined) return undefined;
    const offset = node?.range?.[0] ?? 0;
    const parsed = parseReplyPattern(text, allowed);
    if (!isPatternError(parsed)) return { value: parsed, offset };
    // A quoted scalar starts one character before its text.
    const quoted = isScalar(node) && (node.type === "QUOTE_DOUBLE" || node.type === "QUOTE_SINGLE") ? 1 : 0;
    return this.error(offset + quoted + Math.max(0, parsed.at), `${what}: ${parsed.message}`, parsed.hint);
  }
}

function readHeaders(
  reader: TestFileReader,
  node: Node | null,
): { name: string; value: string }[] | undefined {
  const lines = reader.texts(node, "headers");
  if (lines === undefined) return undefined;
  const headers: { name: string; value: string }[] = [];
  for (const line of lines) {
    const colon = line.value.indexOf(":");
    if (colon <= 0) {
      reader.error(line.offset, `header '${line.value}': expected 'Name: value'`);
      continue;
    }
    headers.push({ name: line.value.slice(0, colon).trim(), value: line.value.slice(colon + 1).trim() });
  }
  return headers;
}

function readSize(reader: TestFileReader, node: Node | null): number | undefined {
  if (isScalar(node) && typeof node.value === "number" && Number.isInteger(node.value) && node.value >= 0)
    return node.value;
  const bytes = isScalar(node) && typeof node.value === "string" ? parseSize(node.value) : undefined;
  if (bytes !== undefined) return bytes;
  return reader.error(node, "size must be a number of bytes or a size (12345, 10MB)");
}

function readClient(reader: TestFileReader, node: Node | null): TestCase["client"] | undefined {
  const entries = reader.entries(node, "client", CLIENT_KEYS);
  if (entries === undefined) return undefined;
  const ipEntry = entries.get("ip");
  if (ipEntry === undefined) return reader.error(node, "client needs ip: (the SMTP client's address)");
  const ip = reader.text(ipEntry.value, "client.ip");
  if (ip === undefined) return undefined;
  if (!/^[0-9a-fA-F:.]+$/.test(ip) || !(ip.includes(".") || ip.includes(":")))
    return reader.error(ipEntry.value, `client.ip '${ip}' is not an IP address`);
  const client: TestCase["client"] = { ip };
  const name = entries.get("name");
  if (name !== undefined) {
    const text = reader.text(name.value, "client.name");
    if (text !== undefined) client.name = text;
  }
  const port = entries.get("port");
  if (port !== undefined) {
    const value = isScalar(port.value) ? port.value.value : undefined;
    if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value < 65536)
      client.port = value;
    else reader.error(port.value, "client.port must be a port number");
  }
  return client;
}

/** `rcpt:` of `expect`: every key one of the case's recipients. */
function readRcptExpect(
  reader: TestFileReader,
  node: Node | null,
  rcpts: readonly string[],
): Map<string, At<ReplyPattern>> {
  const out = new Map<string, At<ReplyPattern>>();
  const entries = reader.entries(node, "expect.rcpt", undefined);
  for (const [address, { key, value }] of entries ?? []) {
    const known = rcpts.find((r) => r.toLowerCase() === address.toLowerCase());
    if (known === undefined) {
      reader.error(
        key,
        `expect.rcpt names '${address}', which is not a recipient of this case`,
        suggest(address, rcpts) ?? `its recipients: ${rcpts.join(", ") || "none"}`,
      );
      continue;
    }
    const pattern = reader.pattern(value, `expect.rcpt ${address}`);
    if (pattern !== undefined) out.set(known, pattern);
  }
  return out;
}

function readExpect(
  reader: TestFileReader,
  node: Node | null,
  testCase: Omit<TestCase, "expect">,
): CaseExpect {
  const expect: CaseExpect = { stages: new Map(), rcpt: new Map(), shadow: new Map() };
  const entries = reader.entries(node, "expect", EXPECT_KEYS);
  if (entries === undefined) return expect;
  if (isMap(node) && node.items.length === 0)
    reader.error(node, "expect: names nothing to check", `one of ${EXPECT_KEYS.join(", ")}`);
  for (const stage of REPLY_STAGES) {
    const entry = entries.get(stage);
    if (entry === undefined) continue;
    if (stage === "helo" && testCase.helo === undefined) {
      reader.error(entry.key, "expect.helo: this case sends no HELO", "add helo: NAME to the case");
      continue;
    }
    const pattern = reader.pattern(entry.value, `expect.${stage}`);
    if (pattern !== undefined) expect.stages.set(stage, pattern);
  }
  const rcpt = entries.get("rcpt");
  if (rcpt !== undefined) expect.rcpt = readRcptExpect(reader, rcpt.value, testCase.rcpt);
  const result = entries.get("result");
  if (result !== undefined) {
    const pattern = reader.pattern(result.value, "expect.result", RESULTS);
    if (pattern !== undefined) expect.result = pattern;
  }
  const headers = entries.get("headers_added");
  if (headers !== undefined) {
    const list = reader.texts(headers.value, "expect.headers_added");
    if (list !== undefined)
      expect.headersAdded = { value: list.map((h) => h.value), offset: headers.key.range?.[0] ?? 0 };
  }
  const shadow = entries.get("shadow");
  const shadowEntries =
    shadow === undefined ? undefined : reader.entries(shadow.value, "expect.shadow", undefined);
  for (const [rule, { key, value }] of shadowEntries ?? []) {
    const pattern = reader.pattern(value, `expect.shadow ${rule}`);
    if (pattern !== undefined) expect.shadow.set(rule, { value: pattern.value, offset: key.range?.[0] ?? 0 });
  }
  const decidedBy = entries.get("decided_by");
  if (decidedBy !== undefined) {
    const name = reader.text(decidedBy.value, "expect.decided_by");
    if (name !== undefined) expect.decidedBy = { value: name, offset: decidedBy.value?.range?.[0] ?? 0 };
  }
  return expect;
}

/** The optional words of a case: helo, auth, size, headers, message. */
function readOptional(reader: TestFileReader, entries: Entries, testCase: Omit<TestCase, "expect">): void {
  const folder = dirname(reader.file.path);
  for (const [key, { value }] of entries) {
    if (key === "helo") {
      const helo = reader.text(value, "helo", true);
      if (helo !== undefined) testCase.helo = helo;
    } else if (key === "auth") {
      const auth = reader.text(value, "auth", true);
      if (auth !== undefined) testCase.auth = auth;
    } else if (key === "size") {
      const size = readSize(reader, value);
      if (size !== undefined) testCase.size = size;
    } else if (key === "headers") {
      testCase.headers = readHeaders(reader, value) ?? [];
    } else if (key === "message") {
      const path = reader.text(value, "message");
      if (path !== undefined)
        testCase.message = { value: relativeTo(folder, path), offset: value?.range?.[0] ?? 0 };
    }
  }
}

function required(reader: TestFileReader, entries: Entries, node: Node | null, key: string, what: string) {
  const entry = entries.get(key);
  if (entry === undefined) reader.error(node, `a case needs ${key}: (${what})`);
  return entry;
}

function readCase(reader: TestFileReader, node: Node | null, index: number): TestCase | undefined {
  const entries = reader.entries(node, `case ${index + 1}`, CASE_KEYS);
  if (entries === undefined) return undefined;
  const nameEntry = required(reader, entries, node, "name", "what the case shows");
  const clientEntry = required(reader, entries, node, "client", "{ ip: ADDRESS, name: HOST }");
  const fromEntry = required(reader, entries, node, "from", 'the envelope sender, "" for <>');
  const rcptEntry = required(reader, entries, node, "rcpt", "the recipients");
  const expectEntry = required(reader, entries, node, "expect", "what the rules must answer");
  const name = nameEntry && reader.text(nameEntry.value, "name");
  const client = clientEntry && readClient(reader, clientEntry.value);
  const from = fromEntry && reader.text(fromEntry.value, "from", true);
  let rcpt: string[] | undefined;
  if (rcptEntry !== undefined) {
    rcpt = isScalar(rcptEntry.value)
      ? [reader.text(rcptEntry.value, "rcpt") ?? ""]
      : reader.texts(rcptEntry.value, "rcpt")?.map((r) => r.value);
    if (rcpt?.length === 0) reader.error(rcptEntry.value, "rcpt needs at least one recipient");
  }
  if (name === undefined || client === undefined || from === undefined || rcpt === undefined)
    return undefined;
  const testCase: Omit<TestCase, "expect"> = {
    name,
    offset: node?.range?.[0] ?? 0,
    client,
    from,
    rcpt,
    headers: [],
  };
  readOptional(reader, entries, testCase);
  if (expectEntry === undefined) return undefined;
  return { ...testCase, expect: readExpect(reader, expectEntry.value, testCase) };
}

function readCases(reader: TestFileReader, node: Node | null): TestCase[] {
  if (!isSeq(node)) return reader.error(node, "cases must be a list of cases") ?? [];
  if (node.items.length === 0) reader.error(node, "cases: the list is empty");
  const cases: TestCase[] = [];
  const names = new Map<string, number>();
  node.items.forEach((item, index) => {
    const testCase = readCase(reader, reader.resolve(item), index);
    if (testCase === undefined) return;
    const first = names.get(testCase.name);
    if (first !== undefined) {
      const { line } = reader.file.position(first);
      reader.error(testCase.offset, `two cases are named '${testCase.name}'`, `the other is on line ${line}`);
    }
    names.set(testCase.name, testCase.offset);
    cases.push(testCase);
  });
  return cases;
}

function readStubEntries(reader: TestFileReader, node: Node | null): StubEntry[] {
  const entries = reader.entries(node, "sources", undefined);
  return [...(entries ?? [])].map(([name, { key, value }]) => ({
    name,
    offset: key.range?.[0] ?? 0,
    node: value,
  }));
}

/** Parses a test file and checks its shape; `test` is there when nothing is wrong. */
export function readTestFile(file: SourceFile): { test?: TestFile; diagnostics: Diagnostic[] } {
  const doc = parseDocument(file.text, { prettyErrors: false, uniqueKeys: true, version: "1.2" });
  const syntax = yamlDiagnostics(doc, file);
  if (doc.errors.length > 0) return { diagnostics: syntax };
  const reader = new TestFileReader(file, doc);
  reader.diagnostics.push(...syntax);
  const root = reader.resolve(doc.contents);
  const entries = reader.entries(root, "the test file", TOP_KEYS);
  if (entries === undefined) return { diagnostics: sortDiagnostics(reader.diagnostics) };
  const rulesEntry = entries.get("rules");
  let rules: At<string> | undefined;
  if (rulesEntry === undefined) reader.error(root, "the test file needs rules: (the rules file it tests)");
  else {
    const path = reader.text(rulesEntry.value, "rules");
    const offset = rulesEntry.value?.range?.[0] ?? 0;
    if (path !== undefined) rules = { value: relativeTo(dirname(file.path), path), offset };
  }
  const casesEntry = entries.get("cases");
  if (casesEntry === undefined) reader.error(root, "the test file needs cases: (a list of cases)");
  const cases = casesEntry === undefined ? [] : readCases(reader, casesEntry.value);
  const sources = entries.get("sources");
  const stubs = sources === undefined ? [] : readStubEntries(reader, sources.value);
  const diagnostics = sortDiagnostics(reader.diagnostics);
  if (rules === undefined || diagnostics.some((d) => d.severity === "error")) return { diagnostics };
  return { test: { file, doc, rules, stubs, cases }, diagnostics };
}
