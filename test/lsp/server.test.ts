/**
 * `filterctl lsp` spoken to as an editor does: the real process over stdio (test/support/lsp-client.ts),
 * one session through every feature, positions asserted.
 */
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LspClient, type Position } from "../support/lsp-client.js";

const EXAMPLE = new URL("../../examples/rules.yaml", import.meta.url).pathname;
const EXAMPLE_URI = pathToFileURL(EXAMPLE).href;
const URI = pathToFileURL(new URL("../../examples/lsp-test-rules.yaml", import.meta.url).pathname).href;

/** Where `needle` starts in `text` (its `nth` occurrence), plus `delta` characters. */
function at(text: string, needle: string, delta = 0, nth = 0): Position {
  let offset = -1;
  for (let i = 0; i <= nth; i++) offset = text.indexOf(needle, offset + 1);
  if (offset === -1) throw new Error(`'${needle}' is not in the text`);
  const before = text.slice(0, offset + delta).split("\n");
  return { line: before.length - 1, character: (before[before.length - 1] as string).length };
}

const RULES = `sources:
  mailboxes:
    type: maildir
    path: "/var/mail/{user}/Maildir"
    quota: 200MB
  spamhaus:
    type: dnsbl
    zone: zen.spamhaus.org
  directory:
    type: ldap
    url: ldap://ldap.example.org
    base: dc=example,dc=org
    tables:
      addresses:
        filter: "(mail={address})"
rules:
  - "on connect: if client.ip in spamhaus then reject \\"listed by {spamhaus.zone}\\""
  - name: full
    on: rcpt
    if: rcpt in directory.addresses and quota(rcpt, mailboxes) over
    then: tempfail 452 4.2.2 "Mailbox of {rcpt} is full"
  - |
    on rcpt:   if quota(rcpt).percent > 90   then   log "almost full: {rcpt}"
`;

interface Item {
  label: string;
  documentation?: { value: string };
  textEdit?: { range: { start: Position; end: Position }; newText: string };
}

let client: LspClient;

beforeAll(async () => {
  client = new LspClient();
  const { capabilities } = await client.initialize({
    textDocument: { publishDiagnostics: { relatedInformation: true } },
  });
  expect(capabilities).toMatchObject({
    hoverProvider: true,
    definitionProvider: true,
    referencesProvider: true,
    documentFormattingProvider: true,
  });
  client.open(URI, RULES);
});

afterAll(() => client.kill());

async function complete(position: Position): Promise<string[]> {
  const items = await client.request<Item[]>("textDocument/completion", {
    textDocument: { uri: URI },
    position,
  });
  return items.map((i) => i.label);
}

describe("filterctl lsp", () => {
  it("underlines a misspelt action in the unsaved example with validate's message, then clears it", async () => {
    const text = readFileSync(EXAMPLE, "utf8").replace(
      'then: reject 550 5.7.1 "HELO',
      'then: rejct 550 5.7.1 "HELO',
    );
    client.open(EXAMPLE_URI, text);
    const diagnostics = await client.diagnostics(EXAMPLE_URI, 1);
    const start = at(text, "rejct 550");
    expect(diagnostics).toEqual([
      {
        range: { start, end: { line: start.line, character: start.character + 5 } },
        severity: 1,
        source: "filterctl",
        message: "unknown action 'rejct' (did you mean 'reject'?)",
        relatedInformation: [
          {
            location: {
              uri: EXAMPLE_URI,
              range: { start, end: { line: start.line, character: start.character + 5 } },
            },
            message: "did you mean 'reject'?",
          },
        ],
      },
    ]);
    client.notify("textDocument/didChange", {
      textDocument: { uri: EXAMPLE_URI, version: 2 },
      contentChanges: [
        { range: { start, end: { line: start.line, character: start.character + 5 } }, text: "reject" },
      ],
    });
    expect(await client.diagnostics(EXAMPLE_URI, 2)).toEqual([]);
  });

  it("debounces: a burst of edits is validated once, for the last text", async () => {
    const uri = `${EXAMPLE_URI}-burst`;
    client.open(uri, "rules:\n  - on rcpt: rejct\n");
    await client.diagnostics(uri, 1);
    for (let version = 2; version <= 6; version++)
      client.notify("textDocument/didChange", {
        textDocument: { uri, version },
        contentChanges: [{ text: `rules:\n  - on rcpt: rejct${version}\n` }],
      });
    const last = await client.diagnostics(uri, 6);
    expect(last.map((d) => d.message)).toEqual(["unknown action 'rejct6' (did you mean 'reject'?)"]);
    expect(client.received((m) => (m.params as { uri?: string }).uri === uri)).toEqual([]);
  });

  it("completes stages after `on `, actions after `then `, values and sources where a value fits", async () => {
    const stages = await complete(at(RULES, "connect:"));
    expect(stages).toEqual(expect.arrayContaining(["connect", "helo", "mail", "rcpt", "eom"]));
    const actions = await complete(at(RULES, "reject \\", 0));
    expect(actions).toEqual(
      expect.arrayContaining(["reject", "tempfail", "accept", "add header", "quarantine"]),
    );
    // `on connect: if ` : only what is known at connect; the file's sources.
    const values = await complete(at(RULES, "client.ip in"));
    expect(values).toEqual(
      expect.arrayContaining(["client.ip", "client.net", "rate", "spamhaus", "mailboxes"]),
    );
    expect(values).not.toContain("rcpt");
    expect(values).not.toContain("quota");
    // At rcpt, rcpt and quota() are known.
    const atRcpt = await complete(at(RULES, "rcpt in directory"));
    expect(atRcpt).toEqual(expect.arrayContaining(["rcpt", "rcpt.domain", "quota", "from", "directory"]));
    expect(atRcpt).not.toContain("header.name");
  });

  it("completes tables after `in`, a quota source in quota(), quota members and placeholders", async () => {
    const tables = await complete(at(RULES, "directory.addresses"));
    expect(tables).toEqual(expect.arrayContaining(["directory.addresses", "spamhaus", "rcpts"]));
    expect(tables).not.toContain("mailboxes");
    expect(await complete(at(RULES, "mailboxes) over"))).toEqual(["mailboxes"]);
    const members = await complete(at(RULES, "percent >"));
    expect(members).toEqual(expect.arrayContaining(["percent", "usage", "limit", "over"]));
    const placeholders = await complete(at(RULES, "rcpt} is full"));
    expect(placeholders).toEqual(expect.arrayContaining(["rcpt", "client.ip", "quota.usage"]));
    const zone = await complete(at(RULES, "spamhaus.zone}", 9));
    expect(zone).toContain("spamhaus.zone");
  });

  it("replaces the word being typed, dots included", async () => {
    const items = await client.request<Item[]>("textDocument/completion", {
      textDocument: { uri: URI },
      position: at(RULES, "client.ip in", 8),
    });
    const ip = items.find((i) => i.label === "client.ip");
    expect(ip?.textEdit).toEqual({
      range: { start: at(RULES, "client.ip in"), end: at(RULES, "client.ip in", 8) },
      newText: "client.ip",
    });
    expect(ip?.documentation?.value).toContain("known from `connect` on");
  });

  it("hovers with the registry's docs and a source's settings", async () => {
    const hover = async (position: Position) =>
      await client.request<{ contents: { value: string }; range: { start: Position; end: Position } } | null>(
        "textDocument/hover",
        { textDocument: { uri: URI }, position },
      );
    const value = await hover(at(RULES, "client.ip in", 8));
    expect(value?.contents.value).toMatch(/^\*\*client\.ip\*\* \(ip\), known from `connect` on/);
    expect((await hover(at(RULES, "quota(rcpt, mailboxes)", 2)))?.contents.value).toMatch(
      /^\*\*quota\(ADDRESS\[, SOURCE\]\)\*\*/,
    );
    expect((await hover(at(RULES, "tempfail 452", 3)))?.contents.value).toMatch(/^\*\*tempfail \[CODE/);
    const source = await hover(at(RULES, "mailboxes) over", 2));
    expect(source?.contents.value).toContain("**maildir** source (quota)");
    expect(source?.contents.value).toContain('path: "/var/mail/{user}/Maildir"');
    expect(source?.range).toEqual({
      start: at(RULES, "mailboxes) over"),
      end: at(RULES, "mailboxes) over", 9),
    });
    expect((await hover(at(RULES, "type: ldap", 7)))?.contents.value).toMatch(
      /^\*\*ldap\*\* source \(table\)/,
    );
  });

  it("goes from a source in a rule to its key, and finds its references", async () => {
    const definition = await client.request<{ uri: string; range: { start: Position } }>(
      "textDocument/definition",
      {
        textDocument: { uri: URI },
        position: at(RULES, "directory.addresses", 3),
      },
    );
    expect(definition).toEqual({
      uri: URI,
      range: { start: at(RULES, "directory:"), end: at(RULES, "directory:", 9) },
    });
    const references = await client.request<{ range: { start: Position } }[]>("textDocument/references", {
      textDocument: { uri: URI },
      position: at(RULES, "spamhaus:", 1),
      context: { includeDeclaration: true },
    });
    expect(references.map((r) => r.range.start)).toEqual([
      at(RULES, "spamhaus:"),
      at(RULES, "spamhaus then"),
      at(RULES, "spamhaus.zone"),
    ]);
  });

  it("formats rule texts with the printer, on request", async () => {
    const edits = await client.request<{ range: { start: Position; end: Position }; newText: string }[]>(
      "textDocument/formatting",
      { textDocument: { uri: URI }, options: { tabSize: 2, insertSpaces: true } },
    );
    expect(edits).toEqual([
      {
        range: { start: at(RULES, "|"), end: { line: at(RULES, "on rcpt:   if").line + 1, character: 0 } },
        newText: '|\n    on rcpt:\n      if quota(rcpt).percent > 90 then log "almost full: {rcpt}"\n',
      },
    ]);
  });

  it("exits 0 after shutdown and exit", async () => {
    expect(await client.shutdown()).toBe(0);
  });
});
