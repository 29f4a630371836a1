/**
 * The yaml package's syntax errors and warnings, reworded for postmasters and placed where the
 * mistake is (an unclosed quote is reported at its opening quote, a duplicate key says where the
 * first one is).
 */
import { type Document, isPair, isScalar, type Scalar, visit, type YAMLError } from "yaml";
import type { Diagnostic, SourceFile } from "../common/diagnostics.js";

interface Worded {
  offset: number;
  message: string;
  hint?: string;
}

function keyText(node: unknown): string {
  return isScalar(node) ? String(node.value) : String(node);
}

function duplicateKey(doc: Document, file: SourceFile, offset: number): Worded {
  let found: Worded | undefined;
  visit(doc, {
    Map(_key, map) {
      const pairs = map.items.filter(isPair);
      const index = pairs.findIndex((pair) => isScalar(pair.key) && pair.key.range?.[0] === offset);
      if (index === -1) return undefined;
      const name = keyText(pairs[index]?.key);
      const first = pairs.find((pair) => keyText(pair.key) === name);
      const firstOffset = isScalar(first?.key) ? (first.key.range?.[0] ?? 0) : 0;
      const { line } = file.position(firstOffset);
      found = { offset, message: `duplicate key '${name}'`, hint: `it is already set at line ${line}` };
      return visit.BREAK;
    },
  });
  return found ?? { offset, message: "duplicate key" };
}

/** The quoted scalar an unclosed-quote error is about: the last one of that kind opening before it. */
function openingQuote(doc: Document, quote: string, offset: number): number | undefined {
  const type = quote === '"' ? "QUOTE_DOUBLE" : "QUOTE_SINGLE";
  let best: number | undefined;
  visit(doc, {
    Scalar(_key, node: Scalar) {
      const start = node.range?.[0];
      if (
        node.type === type &&
        start !== undefined &&
        start < offset &&
        (best === undefined || start > best)
      ) {
        best = start;
      }
    },
  });
  return best;
}

function lineAt(text: string, offset: number): string {
  const start = text.lastIndexOf("\n", Math.max(0, offset - 1)) + 1;
  const end = text.indexOf("\n", offset);
  return text.slice(start, end === -1 ? text.length : end);
}

/** `zone:zen.spamhaus.org` is a key without value: YAML wants a space after the colon. */
function keyValueHint(text: string, offset: number): string {
  const line = lineAt(text, offset);
  if (/^[^#'"]*[^\s:]:[^\s/:]/.test(line) && !/:(\s|$)/.test(line)) return "put a space after ':'";
  return "is a ':' missing, or the line indented wrongly?";
}

/** The `: ` that makes a plain value a nested mapping, on the line of `offset`. */
function colonAfter(text: string, offset: number): number {
  const end = text.indexOf("\n", offset);
  const line = text.slice(offset, end === -1 ? text.length : end);
  const colon = line.search(/:(\s|$)/);
  return colon === -1 ? offset : offset + colon;
}

/** Errors placed on indentation point at what follows it. */
function skipSpaces(text: string, offset: number): number {
  let at = offset;
  while (text[at] === " ") at++;
  return text[at] === "\n" || at >= text.length ? offset : at;
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

function word(error: YAMLError, doc: Document, file: SourceFile): Worded {
  const offset = skipSpaces(file.text, error.pos[0]);
  const text = error.message;
  switch (error.code) {
    case "DUPLICATE_KEY":
      return duplicateKey(doc, file, offset);
    case "TAB_AS_INDENT":
      return { offset, message: "tab used for indentation", hint: "YAML indents with spaces only" };
    case "BAD_INDENT":
      if (/same column/.test(text)) {
        return {
          offset,
          message: "bad indentation: the keys of a mapping must all start in the same column",
        };
      }
      if (/Flow (sequence|map)/.test(text)) {
        const close = /Flow sequence/.test(text) ? "]" : "}";
        return {
          offset,
          message: `missing '${close}'`,
          hint: `a '${close === "]" ? "[" : "{"}' list is not closed`,
        };
      }
      return { offset, message: `bad indentation: ${lowerFirst(text)}` };
    case "MISSING_CHAR": {
      const quote = /Missing closing (["'])quote/.exec(text);
      if (quote !== null) {
        const q = quote[1] as string;
        const start = openingQuote(doc, q, offset);
        return {
          offset: start ?? offset,
          message: `unclosed quote: this text has no closing ${q}`,
          hint: q === '"' ? 'inside "...", write \\" for a quote' : "inside '...', write '' for a quote",
        };
      }
      if (/followed by map values/.test(text)) {
        return { offset, message: "expected 'key: value' here", hint: keyValueHint(file.text, offset) };
      }
      return { offset, message: lowerFirst(text) };
    }
    case "MULTILINE_IMPLICIT_KEY":
      return { offset, message: "expected 'key: value' on one line", hint: keyValueHint(file.text, offset) };
    case "BLOCK_AS_IMPLICIT_KEY":
      return {
        offset: colonAfter(file.text, offset),
        message: "a value containing ': ' must be quoted",
        hint: "or written as a block with '|' on the line of its key",
      };
    case "BAD_DQ_ESCAPE":
      return {
        offset,
        message: `${lowerFirst(text).replace("sequence", "sequence in double-quoted text:")}`,
        hint: "write \\\\ for a backslash, or use single quotes",
      };
    case "MULTIPLE_DOCS":
      return {
        offset,
        message: "the file holds more than one YAML document ('---')",
        hint: "the configuration must be a single document",
      };
    case "UNEXPECTED_TOKEN": {
      const ch = file.text.charAt(offset);
      return { offset, message: ch.trim() ? `unexpected '${ch}'` : lowerFirst(text) };
    }
    case "KEY_OVER_1024_CHARS":
      return { offset, message: "a key longer than 1024 characters" };
    case "TAG_RESOLVE_FAILED":
      return { offset, message: `unknown YAML tag: ${lowerFirst(text).replace(/^unresolved tag: /, "")}` };
    default:
      if ((error.code as string) === "RESOURCE_EXHAUSTION" || /call stack/i.test(text)) {
        return { offset, message: "the YAML is nested too deeply" };
      }
      return { offset, message: lowerFirst(text) };
  }
}

/** Errors (and warnings) of a parsed document, one per line at most, in a postmaster's words. */
export function yamlDiagnostics(doc: Document, file: SourceFile): Diagnostic[] {
  const out: Diagnostic[] = [];
  const lines = new Set<number>();
  const add = (error: YAMLError, severity: "error" | "warning"): void => {
    const worded = word(error, doc, file);
    const { line } = file.position(worded.offset);
    if (lines.has(line)) return;
    lines.add(line);
    out.push(file.diagnostic(worded.offset, severity, worded.message, worded.hint));
  };
  for (const error of doc.errors) add(error, "error");
  for (const warning of doc.warnings) add(warning, "warning");
  return out;
}
