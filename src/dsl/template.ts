/**
 * Texts with placeholders: `"Quota exceeded for {rcpt}"`. `{{` and `}}` stand for literal braces.
 */

export type TemplatePart =
  | { kind: "text"; text: string }
  /** `offset`: where the `{` is in the template text. */
  | { kind: "placeholder"; name: string; offset: number };

const PLACEHOLDER_NAME = /^[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** What is wrong with a template, and where (index in its text). */
export interface TemplateError {
  message: string;
  hint?: string;
  offset: number;
}

/**
 * Splits a template into parts, or answers what is wrong with it. Literal text is taken in runs
 * (slices), not a character at a time: a string grown by `+=` per character is a chain of
 * concatenations that the parts, kept as long as the rules, would hold.
 */
export function parseTemplate(text: string): TemplatePart[] | TemplateError {
  const parts: TemplatePart[] = [];
  let literal = "";
  // Start of the run of plain characters not yet added to `literal`.
  let run = 0;
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if ((c === "{" || c === "}") && text[i + 1] === c) {
      literal += text.slice(run, i + 1);
      i += 2;
      run = i;
    } else if (c === "{") {
      const close = text.indexOf("}", i + 1);
      if (close === -1)
        return { message: "'{' is never closed", hint: "write {{ for a literal brace", offset: i };
      const name = text.slice(i + 1, close).trim();
      if (!PLACEHOLDER_NAME.test(name))
        return { message: `'{${name}}' is not a placeholder name`, offset: i };
      literal += text.slice(run, i);
      if (literal) parts.push({ kind: "text", text: literal });
      literal = "";
      parts.push({ kind: "placeholder", name, offset: i });
      i = close + 1;
      run = i;
    } else if (c === "}") {
      return { message: "'}' without a '{' before it", hint: "write }} for a literal brace", offset: i };
    } else {
      i++;
    }
  }
  literal += text.slice(run);
  if (literal) parts.push({ kind: "text", text: literal });
  return parts;
}
