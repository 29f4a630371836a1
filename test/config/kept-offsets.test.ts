import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { generateRules } from "../../bench/dsl-rules.js";
import { keptOffsets } from "../../src/config/kept-offsets.js";
import { parseYaml } from "../../src/config/load.js";
import { locate, type PathSegment, valueOffset } from "../../src/config/yaml-positions.js";

const EXAMPLE = readFileSync(new URL("../../examples/rules.yaml", import.meta.url), "utf8");

/** Rules lists of every shape: read by rules-block.ts, composed by the library, kept or not. */
const TEXTS: Record<string, string> = {
  bench: generateRules(40),
  example: EXAMPLE,
  library: `sources: {}\nrules:\n  - "on mail: accept"\n  - {on: rcpt, then: accept}\n  - name: x\n    on: mail\n    then: reject\n    name: y\n`,
  empty: `sources: {}\nrules:\n  - name: x\n    on:\n    then: accept\n  -\n`,
  anchored: `sources: {}\nrules:\n  - &r "on mail: accept"\n  - on: mail\n    then: &t accept\nother: [*r, *t]\n`,
  listAnchored: `rules: &all\n  - "on mail: accept"\nother: *all\n`,
  alias: `x: &a "on mail: accept"\nrules:\n  - *a\n  - on: rcpt\n    then: accept\n`,
  nested: `rules:\n  - on: mail\n    then: [accept]\n  - - a\n`,
  scalar: `rules: "none"\nsources: {}\n`,
  none: `sources:\n  a:\n    type: list\n`,
};

const segment = fc.oneof(
  fc.constantFrom<PathSegment>(
    "rules",
    "name",
    "on",
    "if",
    "then",
    "else",
    "nothing",
    "sources",
    "x",
    "other",
  ),
  fc.constantFrom<PathSegment>(0, 1, 2, 3, 39, 40, 41, -1, -0, 1.5, "0", "1", "01", "", " 1", "1e0", "NaN"),
);
const path = fc.oneof(
  fc.array(segment, { maxLength: 5 }),
  fc.array(segment, { maxLength: 4 }).map((rest) => ["rules", ...rest]),
);

describe("the offsets a configuration keeps", () => {
  for (const [name, text] of Object.entries(TEXTS)) {
    it(`answer as the whole document does (${name})`, () => {
      const kept = keptOffsets(parseYaml(text).doc);
      const whole = parseYaml(text).doc;
      fc.assert(
        fc.property(path, (p) => {
          expect(kept(p), JSON.stringify(p)).toBe(valueOffset(whole, p));
        }),
        { numRuns: 3000 },
      );
    });
  }

  it("let go of the rules' nodes when they are kept as offsets, and only then", () => {
    const rulesNode = (text: string) => {
      const { doc } = parseYaml(text);
      keptOffsets(doc);
      return locate(doc, ["rules"]).node;
    };
    expect(rulesNode(TEXTS.bench as string)).toBeNull();
    expect(rulesNode(TEXTS.library as string)).toBeNull();
    for (const name of ["empty", "anchored", "listAnchored", "alias", "nested", "scalar"]) {
      expect([name, rulesNode(TEXTS[name] as string)]).not.toEqual([name, null]);
    }
  });
});
