/**
 * Templates split into text and placeholders. parseTemplate takes literal text in runs; the
 * reference below takes it a character at a time, as it was first written, and both must agree
 * on every text: parts, names, offsets and errors.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseTemplate, type TemplateError, type TemplatePart } from "../../src/dsl/template.js";

const NAME = /^[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;

function reference(text: string): TemplatePart[] | TemplateError {
  const parts: TemplatePart[] = [];
  let literal = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === "{" && text[i + 1] === "{") {
      literal += "{";
      i += 2;
    } else if (c === "}" && text[i + 1] === "}") {
      literal += "}";
      i += 2;
    } else if (c === "{") {
      const close = text.indexOf("}", i + 1);
      if (close === -1)
        return { message: "'{' is never closed", hint: "write {{ for a literal brace", offset: i };
      const name = text.slice(i + 1, close).trim();
      if (!NAME.test(name)) return { message: `'{${name}}' is not a placeholder name`, offset: i };
      if (literal) parts.push({ kind: "text", text: literal });
      literal = "";
      parts.push({ kind: "placeholder", name, offset: i });
      i = close + 1;
    } else if (c === "}") {
      return { message: "'}' without a '{' before it", hint: "write }} for a literal brace", offset: i };
    } else {
      literal += c;
      i++;
    }
  }
  if (literal) parts.push({ kind: "text", text: literal });
  return parts;
}

describe("parseTemplate", () => {
  it("splits text and placeholders", () => {
    expect(parseTemplate("{{a}} {rcpt} is {quota.percent}% full}}")).toEqual([
      { kind: "text", text: "{a} " },
      { kind: "placeholder", name: "rcpt", offset: 6 },
      { kind: "text", text: " is " },
      { kind: "placeholder", name: "quota.percent", offset: 16 },
      { kind: "text", text: "% full}" },
    ]);
  });

  it("agrees with the character-at-a-time reference on any text", () => {
    const fragment = fc.constantFrom(
      "{",
      "}",
      "{{",
      "}}",
      "{rcpt}",
      "{ a.b }",
      "{1x}",
      "x",
      " ",
      "é",
      ".",
      "_",
    );
    const text = fc.oneof(
      fc.array(fragment, { maxLength: 20 }).map((a) => a.join("")),
      fc.string(),
    );
    fc.assert(
      fc.property(text, (t) => {
        expect(parseTemplate(t)).toEqual(reference(t));
      }),
      { numRuns: 3000 },
    );
  });
});
