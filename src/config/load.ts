/**
 * Loading rules.yaml: YAML syntax, then the JSON Schema, then the typed Config. Every problem is a
 * diagnostic at the file:line:col it is about; nothing is thrown for a file's content.
 *
 *   const file = await readConfigFile("rules.yaml");      // ConfigReadError: exit 2
 *   const { config, diagnostics } = parseConfig(file, { sourceTypes: SOURCE_CATALOG });
 *                                                         // config undefined when any error
 *
 * The source types come from the caller (src/sources/catalog.ts has the built-in ones): the
 * configuration layer knows none by name.
 */
import { dirname, resolve } from "node:path";
import { Composer, type Document, isMap, isScalar, Lexer, Parser, visit, YAMLParseError } from "yaml";
import { type Diagnostic, type SourceFile, sortDiagnostics } from "../common/diagnostics.js";
import { buildConfig } from "./build.js";
import {
  ConfigReadError,
  checkBoundedFile,
  type FileLimit,
  limitText,
  MAX_CONFIG_BYTES,
  readConfigFile,
} from "./read.js";
import { findRulesBlock, readRulesBlock, shiftAfter, withoutBlock } from "./rules-block.js";
import { rulesSchema } from "./schema.js";
import { schemaDiagnostics } from "./schema-errors.js";
import type { Config, SourceTypeSpec } from "./types.js";
import { yamlDiagnostics } from "./yaml-errors.js";
import { locate, NestingMeter } from "./yaml-positions.js";

export { DEFAULT_ERROR_REPLY, DEFAULT_QUOTA_SERVER_LISTEN, DEFAULTS, PLACEHOLDERS } from "./build.js";
export { locateScalar, MappedText, splitWords, toMapped } from "./located-text.js";
export {
  ConfigReadError,
  checkBoundedFile,
  describeFailure,
  type FileLimit,
  LIST_FILE_LIMIT,
  MAX_CONFIG_BYTES,
  PASSWORD_FILE_LIMIT,
  readBoundedFile,
  readConfigFile,
} from "./read.js";
export { assembleSchema, SCHEMA_URL } from "./schema.js";

/** Deeper nesting is refused before parsing (real configurations nest 5 levels). */
export const MAX_NESTING = 64;
/** Most alias expansions (`*name`) allowed when building the value (billion laughs). */
export const MAX_ALIAS_COUNT = 100;

export interface ParseOptions {
  /** The source types `type:` may name, in the order the schema lists them. */
  sourceTypes: readonly SourceTypeSpec[];
}

export interface ParseResult {
  /** Present when there is no error (warnings allowed). */
  config?: Config;
  diagnostics: Diagnostic[];
}

function done(diagnostics: Diagnostic[], config?: Config): ParseResult {
  sortDiagnostics(diagnostics);
  return config === undefined ? { diagnostics } : { config, diagnostics };
}

/** The plain value, or a diagnostic about aliases (undefined anchor, too many expansions). */
function toValue(doc: Document, file: SourceFile): { value?: unknown; diagnostic?: Diagnostic } {
  try {
    return { value: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) };
  } catch (error) {
    let unresolved: { offset: number; name: string } | undefined;
    let first: { offset: number; name: string } | undefined;
    visit(doc, {
      Alias(_key, alias) {
        const at = { offset: alias.range?.[0] ?? 0, name: alias.source };
        first ??= at;
        if (unresolved === undefined && alias.resolve(doc) === undefined) unresolved = at;
      },
    });
    if (unresolved !== undefined) {
      return {
        diagnostic: file.diagnostic(
          unresolved.offset,
          "error",
          `alias '*${unresolved.name}' has no anchor '&${unresolved.name}' before it`,
        ),
      };
    }
    const message = (error as Error).message;
    if (/alias count|resource exhaustion/i.test(message)) {
      return {
        diagnostic: file.diagnostic(
          first?.offset ?? 0,
          "error",
          `aliases expand to too much data (more than ${MAX_ALIAS_COUNT} expansions)`,
          "this looks like a YAML alias bomb; write the values out",
        ),
      };
    }
    return { diagnostic: file.diagnostic(first?.offset ?? 0, "error", `cannot read the YAML: ${message}`) };
  }
}

const YAML_OPTIONS = {
  prettyErrors: false,
  uniqueKeys: true,
  version: "1.2",
  // `<<: *common` merges shared source options; aliases stay bounded by MAX_ALIAS_COUNT.
  merge: true,
} as const;

interface ParsedYaml {
  doc: Document;
  tooDeep?: { depth: number; offset: number };
  /** Whether rules-block.ts read the rules (for tests). */
  rulesRead?: true;
}

/**
 * The document, its `rules:` block read by rules-block.ts when it can (the rest of the file, the
 * block blanked, composed by the library; the block's nodes put in its place), else the whole
 * file composed by the library. `fast: false` is the library alone (tests compare the two).
 */
export function parseYaml(text: string, fast = true): ParsedYaml {
  const block = fast ? findRulesBlock(text) : undefined;
  if (block === undefined) return composeYaml(text);
  const cut = withoutBlock(text, block);
  const rest = composeYaml(cut.text);
  const { doc } = rest;
  if (rest.tooDeep !== undefined || doc.errors.length > 0 || doc.warnings.length > 0)
    return composeYaml(text);
  shiftAfter(doc, block.from, cut.removed);
  const top = doc.contents;
  const pair = isMap(top)
    ? top.items.find((p) => isScalar(p.key) && p.key.range?.[0] === block.key)
    : undefined;
  const seq =
    pair !== undefined && isScalar(pair.value) && pair.value.value === null
      ? readRulesBlock(text, block, doc.schema)
      : undefined;
  if (pair === undefined || seq === undefined) return composeYaml(text);
  pair.value = seq;
  const last = isMap(top) && top.items[top.items.length - 1] === pair;
  if (last && top.range && seq.range && doc.range) {
    // The blanked block ended the mapping where its filler did; the rules end it a line later.
    const end = seq.range[2];
    top.range = [top.range[0], end, end];
    doc.range = [doc.range[0], end, Math.max(doc.range[2], end)];
  }
  return { doc, rulesRead: true };
}

/**
 * yaml's parseDocument, lexing the text once for both the parser and the nesting limit (the
 * limit used to take a lexing pass of its own). The CST parser is a loop; only composing
 * recurses, and a document reaches the composer only once the parser has all of it: lexemes
 * stop at the first one too deep, so a deep document is never composed.
 */
function composeYaml(text: string): ParsedYaml {
  const meter = new NestingMeter(MAX_NESTING);
  let tooDeep: { depth: number; offset: number } | undefined;
  const parser = new Parser();
  function* cst() {
    for (const lexeme of new Lexer().lex(text)) {
      tooDeep = meter.feed(lexeme);
      if (tooDeep !== undefined) return;
      yield* parser.next(lexeme);
    }
    yield* parser.end();
  }
  let doc: Document | undefined;
  for (const next of new Composer(YAML_OPTIONS).compose(cst(), true, text.length)) {
    if (doc === undefined) doc = next;
    else {
      doc.errors.push(
        new YAMLParseError(
          [next.range[0], next.range[1]],
          "MULTIPLE_DOCS",
          "more than one document (its message is written by yaml-errors.ts)",
        ),
      );
      break;
    }
  }
  return tooDeep === undefined ? { doc: doc as Document } : { doc: doc as Document, tooDeep };
}

/** Parses, schema-checks and builds a configuration. Never throws for anything in the file. */
export function parseConfig(file: SourceFile, options: ParseOptions): ParseResult {
  const bytes = Buffer.byteLength(file.text, "utf8");
  if (bytes > MAX_CONFIG_BYTES) {
    return done([
      file.diagnostic(
        0,
        "error",
        `the file is too large (${(bytes / 1024 / 1024).toFixed(1)} MiB; at most 10 MiB)`,
        "a configuration this big is surely a mistake",
      ),
    ]);
  }
  const { doc, tooDeep } = parseYaml(file.text);
  if (tooDeep !== undefined) {
    return done([
      file.diagnostic(tooDeep.offset, "error", `the YAML is nested more than ${MAX_NESTING} levels deep`),
    ]);
  }

  const diagnostics = yamlDiagnostics(doc, file);
  if (doc.errors.length > 0) return done(diagnostics);

  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    diagnostics.push(
      file.diagnostic(
        0,
        "error",
        "the configuration is empty",
        "it needs at least 'sources:' and 'rules:'; see the example in the README",
      ),
    );
    return done(diagnostics);
  }

  const { value, diagnostic } = toValue(doc, file);
  if (diagnostic !== undefined) return done([...diagnostics, diagnostic]);

  // `listen_mode: 0660` unquoted is the number 660 in YAML 1.2: its digits are what was meant.
  let listenModeText: string | undefined;
  if (value !== null && typeof value === "object" && !Array.isArray(value) && "listen_mode" in value) {
    const record = value as Record<string, unknown>;
    const node = locate(doc, ["listen_mode"]).node;
    if (typeof record.listen_mode === "number" && isScalar(node) && node.source !== undefined) {
      record.listen_mode = node.source;
    }
    if (typeof record.listen_mode === "string") listenModeText = record.listen_mode;
  }

  const schema = rulesSchema(options.sourceTypes);
  if (!schema.validate(value)) {
    diagnostics.push(...schemaDiagnostics(schema.validate.errors ?? [], file, doc, value, schema));
    return done(diagnostics);
  }

  const sourceTypes = new Map(options.sourceTypes.map((spec) => [spec.type, spec]));
  const built = buildConfig(file, doc, value as Record<string, unknown>, listenModeText, sourceTypes);
  diagnostics.push(...built.diagnostics);
  return done(diagnostics, built.config);
}

/** Reads and parses a configuration file; throws ConfigReadError when it cannot be read. */
export async function loadConfig(
  path: string,
  options: ParseOptions,
): Promise<ParseResult & { file: SourceFile }> {
  const file = await readConfigFile(path);
  return { file, ...parseConfig(file, options) };
}

/** A file the configuration names, where it names it, and how large it may be. */
export interface ReferencedFile {
  /** Resolved against the configuration file's folder. */
  path: string;
  /** Where the value naming the file is, for diagnostics. */
  offset: number;
  source: string;
  /** How the error calls it: "list file", "password_file". */
  label: string;
  limit: FileLimit;
}

/** Files a configuration depends on besides itself (list files, LDAP password files): its source types say which. */
export function referencedFileEntries(config: Config): ReferencedFile[] {
  const folder = dirname(config.file.path);
  const files: ReferencedFile[] = [];
  for (const source of config.sources.values()) {
    const spec = config.sourceTypes.get(source.type);
    for (const file of spec?.files?.(source) ?? []) {
      files.push({
        path: resolve(folder, file.path),
        offset: config.offsetOf(["sources", source.name, file.key]),
        source: source.name,
        label: file.label,
        limit: file.limit,
      });
    }
  }
  return files;
}

/** The files a configuration depends on besides itself, resolved: what a reload watches. */
export function referencedFiles(config: Config): string[] {
  return referencedFileEntries(config).map((f) => f.path);
}

/** Refused whatever the machine: a missing or unreadable file may exist for the serving user. */
const REFUSED_CODES = new Set(["ENOTFILE", "EISDIR", "EFBIG", "ENXIO"]);

/**
 * Errors, at the value naming the file, for each named file that is not a regular file or is
 * over its size limit. A file that is missing or may not be read is reported only when
 * `mustRead` (serve, which is about to read it): validate may run on another machine or as
 * another user.
 */
export async function checkReferencedFiles(config: Config, mustRead = false): Promise<Diagnostic[]> {
  const checks = referencedFileEntries(config).map(async (file) => {
    try {
      await checkBoundedFile(file.path, file.limit);
      return [];
    } catch (error) {
      if (!(error instanceof ConfigReadError)) return [];
      const refused = REFUSED_CODES.has(error.code ?? "");
      if (!refused && !mustRead) return [];
      const message = `source '${file.source}': ${file.label} ${file.path}: ${error.reason}`;
      // An oversized file's message says the limit already; a missing one needs no lecture.
      const hint =
        refused && error.code !== "EFBIG"
          ? `a ${file.label} must be a regular file of at most ${limitText(file.limit.maxBytes)}`
          : undefined;
      return [config.file.diagnostic(file.offset, "error", message, hint)];
    }
  });
  return (await Promise.all(checks)).flat();
}
