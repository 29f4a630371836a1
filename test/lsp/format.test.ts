/**
 * Formatting (src/lsp/format.ts): rules written as one text are printed back by the rule printer
 * in their YAML style; what cannot be printed without loss is left alone.
 */
import { describe, expect, it } from "vitest";
import { formatRules } from "../../src/lsp/format.js";

function formatted(text: string): string {
  let out = text;
  for (const edit of formatRules("rules.yaml", text).sort((a, b) => b.start - a.start))
    out = out.slice(0, edit.start) + edit.newText + out.slice(edit.end);
  return out;
}

describe("formatting rules", () => {
  it("keeps the quoting style of a one-statement rule", () => {
    expect(formatted(`rules:\n  - 'on   rcpt :  if rcpt.domain=="a.org" then   reject'\n`)).toBe(
      `rules:\n  - 'on rcpt: if rcpt.domain == "a.org" then reject'\n`,
    );
    expect(formatted(`rules:\n  - "on mail,rcpt: log \\"x {from}\\""\n`)).toBe(
      `rules:\n  - "on mail, rcpt: log \\"x {from}\\""\n`,
    );
  });

  it("writes a rule of several statements as a | block, one statement per line", () => {
    expect(formatted(`rules:\n  - "on rcpt: log \\"a\\" if size > 10MB then reject"\n`)).toBe(
      `rules:\n  - |\n    on rcpt:\n      log "a"\n      if size > 10MB then reject\n`,
    );
  });

  it("leaves alone a rule with a comment, a rule with a mistake, and structured rules", () => {
    const text = `rules:\n  - |\n    on rcpt:  # why\n      reject\n  - "on rcpt: rejct"\n  - on: rcpt\n    then:   reject\n`;
    expect(formatRules("rules.yaml", text)).toEqual([]);
  });

  it("makes no edit to a rule already in the printer's form", () => {
    expect(
      formatRules("rules.yaml", `rules:\n  - "on rcpt: if rcpt in [\\"a@b.org\\"] then accept"\n`),
    ).toEqual([]);
  });
});
