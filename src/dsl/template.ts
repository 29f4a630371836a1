/**
 * Texts with placeholders: `"Quota exceeded for {rcpt}"`. `{{` and `}}` stand for literal braces.
 */

export type TemplatePart =
  | { kind: "text"; text: string }
  /** `offset`: where the `{` is in the template text. */
  | { kind: "placeholder"; name: string; offset: number };

const PLACEHOLDER_NAME = /^[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** Splits a template into parts, or answers a message saying what is wrong with it. */
export function parseTemplate(text: string): TemplatePart[] | string {
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
      if (close === -1) return `unclosed '{' at character ${i + 1} (write {{ for a literal brace)`;
      const name = text.slice(i + 1, close).trim();
      if (!PLACEHOLDER_NAME.test(name)) return `'{${name}}' is not a placeholder name`;
      if (literal) parts.push({ kind: "text", text: literal });
      literal = "";
      parts.push({ kind: "placeholder", name, offset: i });
      i = close + 1;
    } else if (c === "}") {
      return `unmatched '}' at character ${i + 1} (write }} for a literal brace)`;
    } else {
      literal += c;
      i++;
    }
  }
  if (literal) parts.push({ kind: "text", text: literal });
  return parts;
}
