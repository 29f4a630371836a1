/**
 * Every broken rules file of test/rules/broken/ through `filterctl lsp`: the server publishes
 * exactly the diagnostics `validate` prints for it (the files' `# expect:` lines, which
 * test/rules/broken.test.ts holds validate to), at the same line and column.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LspClient } from "../support/lsp-client.js";

const DIR = new URL("../rules/broken/", import.meta.url).pathname;
const files = readdirSync(DIR)
  .filter((f) => f.endsWith(".yaml"))
  .sort();

let client: LspClient;
beforeAll(async () => {
  client = new LspClient();
  await client.initialize();
});
afterAll(() => client.kill());

describe("broken rules files through the language server", () => {
  it("has the files", () => expect(files.length).toBeGreaterThanOrEqual(35));

  it.each(files)("%s", async (name) => {
    const path = join(DIR, name);
    const text = readFileSync(path, "utf8");
    const expected = text
      .split(/\r?\n/)
      .filter((l) => l.startsWith("# expect: "))
      .map((l) => l.slice("# expect: ".length));
    const uri = pathToFileURL(path).href;
    client.open(uri, text);
    const diagnostics = await client.diagnostics(uri, 1);
    const shown = diagnostics.map(
      (d) =>
        `${d.range.start.line + 1}:${d.range.start.character + 1} ${d.severity === 1 ? "error" : "warning"}: ${d.message}`,
    );
    expect(shown).toEqual(expected);
    for (const d of diagnostics) {
      expect(d.range.end.line).toBe(d.range.start.line);
      expect(d.range.end.character).toBeGreaterThan(d.range.start.character);
    }
  });
});
