/**
 * The README's table of values and functions ("### Values") is the registry's (src/dsl/words/),
 * row for row: a value or function added, renamed, moved to another stage or redocumented in one
 * place and not the other fails here. Each row is `name | known from | meaning`: the name in
 * backquotes (a function as its usage, `quota(ADDRESS[, SOURCE])`), the first stage (with
 * ", **only in `on STAGE` rules**" for a value of one stage only), and the word's `doc`.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { DRY_RUN_INPUTS, REGISTRY } from "../../src/dsl/registry.js";
import { reservedNames } from "../../src/dsl/reserved.js";

const README = readFileSync(resolve(import.meta.dirname, "../../README.md"), "utf8");

/** The cells of the table under `heading`, header and separator rows left out. */
function tableUnder(heading: string): string[][] {
  const lines = README.split("\n");
  const start = lines.indexOf(heading);
  if (start === -1) throw new Error(`README has no '${heading}'`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith("#")) break;
    if (!line.startsWith("|")) {
      if (rows.length > 0) break;
      continue;
    }
    // Split on the pipes that separate cells (none of the cells holds one).
    rows.push(
      line
        .slice(1, -1)
        .split("|")
        .map((cell) => cell.trim()),
    );
  }
  return rows.slice(2);
}

/** The rows the registry says the table has. */
function registryRows(): string[][] {
  return [
    ...REGISTRY.values().map((w) => [
      `\`${w.name}\``,
      w.only === undefined ? w.from : `${w.from}, **only in \`on ${w.only}\` rules**`,
      w.doc,
    ]),
    ...REGISTRY.functions().map((f) => [`\`${f.usage}\``, f.from, f.doc]),
  ];
}

describe("the README's table of values and functions", () => {
  const readme = tableUnder("### Values");

  it("names the registry's words, in its order", () => {
    expect(readme.map((row) => row[0])).toEqual(registryRows().map((row) => row[0]));
  });

  it("says, for each, the stage and the documentation of its registry entry", () => {
    expect(readme).toEqual(registryRows());
  });

  it("is found and read (the parser of the table is not fooled by an empty table)", () => {
    expect(readme.length).toBeGreaterThanOrEqual(15);
    expect(readme.every((row) => row.length === 3)).toBe(true);
  });
});

describe("what else comes from the registry", () => {
  it("the names a source may not have: the keywords, the values' first parts and the functions", () => {
    expect([...reservedNames(REGISTRY)].sort()).toEqual(
      [
        ...[
          "shadow",
          "on",
          "if",
          "then",
          "else",
          "and",
          "or",
          "not",
          "in",
          "matches",
          "over",
          "true",
          "false",
        ],
        ...[
          "client",
          "helo",
          "auth",
          "from",
          "size",
          "rcpt",
          "rcpts",
          "header",
          "macro",
          "quota",
          "lower",
          "length",
          "count",
        ],
        ...["rate", "greylist"],
      ].sort(),
    );
  });

  it("dry-run's options that fill values in, each with the words it feeds", () => {
    expect(DRY_RUN_INPUTS.map((o) => [o.flags, o.feeds.join(" ")])).toEqual([
      ["--client-ip <ip>", "client.ip client.net"],
      ["--client-name <name>", "client.name"],
      ["--helo <name>", "helo"],
      ["--auth <user>", "auth.user"],
      ["--from <address>", "from from.local from.domain"],
      ["--size <bytes>", "size"],
      ["--rcpt <address>", "rcpt rcpt.local rcpt.domain rcpts"],
      ["--header <'Name: value'>", "header.name header.value header()"],
    ]);
    expect(DRY_RUN_INPUTS.filter((o) => o.required).map((o) => o.flag)).toEqual([
      "--client-ip",
      "--from",
      "--rcpt",
    ]);
  });
});
