import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { beforeAll, describe, expect, it } from "vitest";
import oniguruma from "vscode-oniguruma";
import textmate from "vscode-textmate";
import { STAGES } from "../../src/common/stages.js";
import { ACTION_VERBS } from "../../src/dsl/ast.js";
import { type FunctionWord, REGISTRY } from "../../src/dsl/registry.js";
import { GRAMMAR_SCOPE, grammarWords, ruleGrammar } from "../../src/dsl/textmate.js";
import { KEYWORD_WORDS } from "../../src/dsl/tokens.js";

const FILE = new URL("../../editors/vscode/syntaxes/filterctl-rules.injection.json", import.meta.url);
const text = readFileSync(FILE, "utf8");
const manifest = JSON.parse(
  readFileSync(new URL("../../editors/vscode/package.json", import.meta.url), "utf8"),
);

let grammar: textmate.IGrammar;

beforeAll(async () => {
  const wasm = readFileSync(createRequire(import.meta.url).resolve("vscode-oniguruma/release/onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new textmate.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (sources) => new oniguruma.OnigScanner(sources),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    // The injection's top-level patterns are what VS Code injects into YAML: loaded alone here.
    loadGrammar: async () => textmate.parseRawGrammar(text, FILE.pathname),
  });
  const loaded = await registry.loadGrammar(GRAMMAR_SCOPE);
  if (loaded === null) throw new Error("grammar did not load");
  grammar = loaded;
});

/** The scope (last one) of each token of a line, as [text, scope], whitespace left out. */
function scopes(line: string): [string, string][] {
  const { tokens } = grammar.tokenizeLine(line, textmate.INITIAL);
  return tokens
    .map((t): [string, string] => [line.slice(t.startIndex, t.endIndex), t.scopes[t.scopes.length - 1] ?? ""])
    .filter(([part]) => part.trim() !== "");
}

function scopeOf(line: string, part: string): string | undefined {
  return scopes(line).find(([text]) => text === part)?.[1];
}

describe("editors/vscode grammar", () => {
  it("is the grammar the registry makes (else run `npm run grammar`)", () => {
    expect(JSON.parse(text), "the grammar is out of date: run `npm run grammar`").toEqual(ruleGrammar());
  });

  it("lists exactly the registry's words", () => {
    const words = grammarWords();
    expect([...words.values].sort()).toEqual(REGISTRY.valueNames().sort());
    expect([...words.functions].sort()).toEqual(REGISTRY.functionNames().sort());
    expect([...words.actions].sort()).toEqual([...ACTION_VERBS].sort());
    expect(words.keywords).toEqual(KEYWORD_WORDS);
    expect(words.stages).toEqual(STAGES);
    // A new word in the registry shows in the grammar the next time it is written.
    const more = REGISTRY.withFunction({ ...(REGISTRY.fn("lower") as FunctionWord), name: "upper" });
    expect(JSON.stringify(ruleGrammar(grammarWords(more)))).toContain("upper");
  });

  it("is injected into YAML and shipped by the extension", () => {
    const contributed = manifest.contributes.grammars[0];
    expect(contributed.scopeName).toBe(GRAMMAR_SCOPE);
    expect(contributed.injectTo).toEqual(["source.yaml"]);
    expect(`./${contributed.path.replace(/^\.\//, "")}`).toBe("./syntaxes/filterctl-rules.injection.json");
  });

  it("colours a text rule", () => {
    const line =
      '  - on mail, rcpt: if client.ip in 10.0.0.0/8 and quota(rcpt, backend) over then reject 552 5.2.2 "Over {quota.usage}"';
    expect(scopeOf(line, "on")).toBe("keyword.control.on.filterctl");
    expect(scopeOf(line, "mail, rcpt")).toBe("entity.name.tag.stage.filterctl");
    expect(scopeOf(line, "if")).toBe("keyword.control.filterctl");
    expect(scopeOf(line, "client.ip")).toBe("variable.language.value.filterctl");
    expect(scopeOf(line, "in")).toBe("keyword.operator.word.filterctl");
    expect(scopeOf(line, "10.0.0.0/8")).toBe("constant.numeric.cidr.filterctl");
    expect(scopeOf(line, "quota")).toBe("support.function.filterctl");
    expect(scopeOf(line, "rcpt")).toBe("variable.language.value.filterctl");
    expect(scopeOf(line, "backend")).toBeUndefined();
    expect(scopeOf(line, "over")).toBe("keyword.operator.word.filterctl");
    expect(scopeOf(line, "reject")).toBe("keyword.other.action.filterctl");
    expect(scopeOf(line, "552")).toBe("constant.numeric.filterctl");
    expect(scopeOf(line, "5.2.2")).toBe("constant.numeric.code.filterctl");
    expect(scopeOf(line, "{quota.usage}")).toBe("variable.other.placeholder.filterctl");
    expect(scopeOf(line, "Over ")).toBe("string.quoted.double.filterctl");
  });

  it("colours numbers with units, regexes and shadow rules", () => {
    const line =
      "- shadow on eom: if size > 20MB or helo matches /^\\[/i then tempfail 451 else add header X-Big yes";
    expect(scopeOf(line, "shadow")).toBe("keyword.control.filterctl");
    expect(scopeOf(line, "20MB")).toBe("constant.numeric.size.filterctl");
    expect(scopeOf(line, "size")).toBe("variable.language.value.filterctl");
    expect(scopeOf(line, "helo")).toBe("variable.language.value.filterctl");
    expect(scopeOf(line, "/^\\[/i")).toBe("string.regexp.filterctl");
    expect(scopeOf(line, "add header")).toBe("keyword.other.action.filterctl");
    expect(scopeOf(line, "else")).toBe("keyword.control.filterctl");
    const rate = "    if: rate(client.ip, 1h) > 100";
    expect(scopeOf(rate, "if")).toBe("entity.name.tag.yaml");
    expect(scopeOf(rate, "1h")).toBe("constant.numeric.duration.filterctl");
    expect(scopeOf(rate, "rate")).toBe("support.function.filterctl");
  });

  it("leaves other YAML alone", () => {
    for (const line of [
      "  backend:",
      "    type: maildir",
      "listen: inet:127.0.0.1:8890",
      "    name: reject-big",
    ])
      expect(scopes(line).every(([, scope]) => scope === GRAMMAR_SCOPE)).toBe(true);
  });
});
