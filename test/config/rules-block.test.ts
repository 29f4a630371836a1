import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { type Document, isAlias, isDocument, isMap, isPair, isScalar, isSeq } from "yaml";
import { generateRules } from "../../bench/dsl-rules.js";
import { parseYaml } from "../../src/config/load.js";

/**
 * Everything a node holds (its class, ranges, values), as plain data to compare. Comments and
 * blank lines before a node (comment, commentBefore, spaceBefore) are what the reader leaves out:
 * they are for writing YAML back, which nothing here does.
 */
const LEFT_OUT = new Set(["schema", "comment", "commentBefore", "spaceBefore"]);

function shape(node: unknown): unknown {
  if (node === null || typeof node !== "object") return node;
  if (isAlias(node)) return { class: "alias", source: node.source, range: node.range };
  const out: Record<string, unknown> = {
    class: isMap(node)
      ? "map"
      : isSeq(node)
        ? "seq"
        : isPair(node)
          ? "pair"
          : isScalar(node)
            ? "scalar"
            : "?",
  };
  for (const [key, value] of Object.entries(node)) {
    if (LEFT_OUT.has(key) || value === undefined) continue;
    out[key] = Array.isArray(value) && key === "items" ? value.map(shape) : shape(value);
  }
  return out;
}

function plainValue(doc: Document): unknown {
  try {
    return JSON.stringify(doc.toJS({ maxAliasCount: 100 }));
  } catch (error) {
    return (error as Error).message;
  }
}

/** As JSON (symbols, such as the merge key's, by their description). */
function docShape(text: string, fast: boolean): string {
  const { doc, tooDeep } = parseYaml(text, fast);
  expect(isDocument(doc)).toBe(true);
  const shaped = {
    contents: shape(doc.contents),
    range: doc.range,
    errors: doc.errors.map((e) => [e.code, e.pos]),
    warnings: doc.warnings.map((e) => [e.code, e.pos]),
    tooDeep,
    value: doc.errors.length === 0 ? plainValue(doc) : undefined,
  };
  return JSON.stringify(shaped, (_key, value) => (typeof value === "symbol" ? String(value) : value), 1);
}

const HEAD = 'sources:\n  trusted:\n    type: list\n    items: ["192.0.2.0/24"]\n';

/** Rules blocks the reader reads (R) and ones it leaves to the library (L): both must give the library's nodes. */
const CASES: Record<string, string> = {
  "R text, one-line and structured": `${HEAD}rules:\n  - |\n    on connect:\n      if client.ip in trusted\n      then accept\n  - on mail: if from == "a@b.c" then reject\n  - name: one\n    on: mail\n    if: from == "x@y"\n    then: reject 550 5.7.1 "no"\n`,
  "R rules first, then more keys": `rules:\n  - name: x\n    on: mail\n    if: from == y\n    then: reject\n\n  - on mail: if x then reject   \n${HEAD}`,
  "R quoted values and strip": `${HEAD}rules:\n  - 'on rcpt: if rcpt == ''q@r'' then reject'\n  - "on mail: if from == x then reject"\n  - name: "two"\n    on: 'mail'\n    if: |-\n      from == "a"\n        and size > 1MB\n\n      or helo == "x"\n    then: reject\n`,
  "R comments and blank lines": `${HEAD}rules:\n  # first\n  - name: one   \n    # inside\n    on: mail\n\n    if: from == "a"\n    then: reject\n  - |\n    on mail:\n    # in the text\n      if from == "b" then reject\n\n\n  -   name: two\n      on: mail\n      if: from == "c"\n      then: reject\n`,
  "R no final newline": `${HEAD}rules:\n  - on mail: if from == "a" then reject`,
  "R block at the end without newline": `${HEAD}rules:\n  - |\n    on mail: if from == "a" then reject`,
  "R comment less indented inside a rule": `${HEAD}rules:\n  - name: x\n # here\n    on: mail\n    if: y\n    then: reject\n`,
  "R comment at column 0 after the block": `${HEAD}rules:\n  - on mail: if x then reject\n# the end\n`,
  "R comment at column 0 between keys": `rules:\n  - on mail: if x then reject\n\n# sources\n${HEAD}# the end\n`,
  "R document end marker": `${HEAD}rules:\n  - on mail: if x then reject\n...\n`,
  "L comment deeper than the keys": `${HEAD}rules:\n  - name: x\n    if: y\n     # c\n    on: mail\n    then: reject\n`,
  "L comment deeper than the items before them": `${HEAD}rules:\n      # c\n  - on mail: if x then reject\n`,
  "L anchors and merge keys": `${HEAD}rules:\n  - &r1\n    name: one\n    on: mail\n    if: from == "a"\n    then: reject\n  - <<: *r1\n    name: two\n  - *r1\n`,
  "L comment at column 0": `${HEAD}rules:\n  - on mail: if x then reject\n# here\n  - on mail: if y then reject\n`,
  "L tags": `${HEAD}rules:\n  - !!str "on mail: if x then reject"\n`,
  "L flow collections": `${HEAD}rules:\n  - {name: one, on: mail, if: x, then: reject}\n  - name: two\n    on: [mail, rcpt]\n    if: x\n    then: reject\n`,
  "L multi-line plain": `${HEAD}rules:\n  - name: one\n    on: mail\n    if: from == "a"\n      and size > 1MB\n    then: reject\n`,
  "L folded and keep": `${HEAD}rules:\n  - name: one\n    on: mail\n    if: x\n    then: >-\n      reject\n      now\n  - |+\n    on mail: if x then reject\n\n`,
  "L escapes": `${HEAD}rules:\n  - name: "o\\x6ee"\n    on: mail\n    if: x\n    then: reject\n`,
  "L duplicate key": `${HEAD}rules:\n  - name: one\n    name: two\n    on: mail\n`,
  "L duplicate rules": `${HEAD}rules:\n  - on mail: if x then reject\nrules:\n  - on mail: if y then reject\n`,
  "L empty value": `${HEAD}rules:\n  - name: one\n    on: mail\n    if:\n    then: reject\n`,
  "L numbers and lists": `${HEAD}rules:\n  - 12\n  - [a, b]\n  - name: x\n    on: mail\n    if: true\n    then: reject\n`,
  "L explicit key": `${HEAD}rules:\n  - ? name\n    : six\n    on: mail\n`,
  "L tab": `${HEAD}rules:\n  - name: x\n    on: mail\n    if:\tfrom == y\n    then: reject\n`,
  "L CRLF": `${HEAD}rules:\r\n  - on mail: if x then reject\r\n`,
  "L bad indentation": `${HEAD}rules:\n  - name: x\n     on: mail\n  - on mail: if y then reject\n - on mail: if z then reject\n`,
  "L sequence at column 0": `${HEAD}rules:\n- on mail: if x then reject\n`,
  "L comment after a value": `${HEAD}rules:\n  - name: x # the name\n    on: mail\n    if: y\n    then: reject\n`,
  "L less indented block text": `${HEAD}rules:\n  - |\n      on mail:\n    if x then reject\n`,
  "L rules a mapping": `${HEAD}rules:\n  a: 1\n`,
  "L rules empty": `${HEAD}rules:\n`,
  "L rules inline": `${HEAD}rules: []\n`,
  "L nested mapping in compact": `${HEAD}rules:\n  - on mail: if: x\n`,
  "L unclosed quote": `${HEAD}rules:\n  - "on mail: if x then reject\n`,
  "L two documents": `${HEAD}rules:\n  - on mail: if x then reject\n---\nrules: []\n`,
};

describe("the rules block read without the yaml library", () => {
  for (const [name, text] of Object.entries(CASES)) {
    it(`${name}: the library's nodes`, () => {
      expect(docShape(text, true)).toBe(docShape(text, false));
    });
  }

  it("reads the blocks marked R and leaves the others to the library", () => {
    for (const [name, text] of Object.entries(CASES)) {
      expect([name, parseYaml(text).rulesRead === true]).toEqual([name, name.startsWith("R ")]);
    }
  });

  it("gives the library's nodes for the generated benchmark rules and every file of the repository", () => {
    const texts = [generateRules(600)];
    expect(parseYaml(texts[0] as string).rulesRead).toBe(true);
    for (const folder of ["test/rules/broken", "test/config/broken", "test/config/fixtures", "examples"]) {
      for (const f of readdirSync(folder))
        if (f.endsWith(".yaml")) texts.push(readFileSync(`${folder}/${f}`, "utf8"));
    }
    for (const text of texts) expect(docShape(text, true)).toBe(docShape(text, false));
  });

  it("gives the library's nodes after random edits of generated rules (indentation, indicators, quotes, tabs)", () => {
    const lines = generateRules(24).split("\n");
    const start = lines.indexOf("rules:") + 1;
    const bits = [
      " ",
      "  ",
      "#",
      " # c",
      "- ",
      ": ",
      "|",
      "|-",
      ">",
      "'",
      '"',
      "\\",
      "\t",
      "",
      "-",
      "*a",
      "&a ",
    ];
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    let read = 0;
    for (let i = 0; i < 400; i++) {
      const edited = [...lines];
      for (let m = 0; m < 1 + random(3); m++) {
        const at = start + random(edited.length - start);
        const line = edited[at] as string;
        const pos = random(line.length + 1);
        const op = random(4);
        if (op === 0) edited[at] = line.slice(0, pos) + bits[random(bits.length)] + line.slice(pos);
        else if (op === 1) edited[at] = line.slice(0, pos) + line.slice(pos + 1 + random(3));
        else if (op === 2) edited.splice(at, 0, `${" ".repeat(random(8))}${bits[random(bits.length)]}x: y`);
        else edited.splice(at, 1);
      }
      const text = edited.join("\n");
      if (parseYaml(text).rulesRead) read++;
      expect(docShape(text, true)).toBe(docShape(text, false));
    }
    expect(read).toBeGreaterThan(100);
  });
});
