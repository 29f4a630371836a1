/**
 * ajv's errors in a postmaster's words, each at the YAML node it is about: the key for unknown
 * keys, the value for wrong values, the mapping's key for missing keys.
 */
import type { AnySchemaObject, ErrorObject } from "ajv";
import { type Document, isScalar } from "yaml";
import type { Diagnostic, SourceFile } from "../common/diagnostics.js";
import { STAGES } from "../common/stages.js";
import { suggest, suggested } from "../common/suggest.js";
import { locateScalar, splitWords } from "./located-text.js";
import type { CompiledSchema } from "./schema.js";
import { containerOffset, keyOffset, locate, type PathSegment, valueOffset } from "./yaml-positions.js";

/** Beyond this many, the rest are summed up in one diagnostic. */
export const MAX_SCHEMA_DIAGNOSTICS = 200;

const DURATION = "a duration like 500ms, 2s or 5m";
const SIZE = "a size like 200MB or 1GiB, or a number of bytes";
const NAME_RULE =
  "start with a letter; then letters, digits, '_', and single '-' between words; at most 64 characters";

interface Context {
  file: SourceFile;
  doc: Document;
  data: unknown;
  schema: CompiledSchema;
}

interface Issue {
  offset: number;
  message: string;
  hint?: string;
}

function valueAt(data: unknown, path: readonly PathSegment[]): unknown {
  let current = data;
  for (const segment of path) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<string, unknown>)[segment as string];
  }
  return current;
}

/** "/sources/a~1b/0" → ["sources", "a/b", 0], numbers where the data is a list. */
function segmentsOf(instancePath: string, data: unknown): PathSegment[] {
  if (instancePath === "") return [];
  const segments: PathSegment[] = [];
  let current = data;
  for (const raw of instancePath.slice(1).split("/")) {
    const text = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    const segment: PathSegment = Array.isArray(current) ? Number(text) : text;
    segments.push(segment);
    current =
      current !== null && typeof current === "object"
        ? (current as Record<string, unknown>)[segment as string]
        : undefined;
  }
  return segments;
}

/** How a postmaster would name the thing at `path`. */
export function label(path: readonly PathSegment[]): string {
  const length = path.length;
  if (length === 0) return "the configuration";
  const [first, second] = path;
  if (first === "sources" && length === 2) return `source '${second}'`;
  if (first === "rules" && length === 2) return `rule ${Number(second) + 1}`;
  const last = path[length - 1] as PathSegment;
  if (first === "sources" && path[2] === "tables" && length === 4)
    return `table '${last}' of source '${second}'`;
  if (typeof last === "number") return `entry ${last + 1} of '${path[length - 2]}'`;
  return `'${last}'`;
}

/** How to name a mapping in "unknown key ... in X". */
function containerLabel(path: readonly PathSegment[]): string {
  if (path.length === 0) return "the configuration";
  if (path[0] === "sources" && path.length === 3) return `'${path[2]}' of source '${path[1]}'`;
  return label(path);
}

function typeWords(type: unknown): string {
  const words: Record<string, string> = {
    object: "a mapping (indented 'key: value' lines)",
    array: "a list ('- ' items or [a, b])",
    string: "text",
    integer: "a whole number",
    number: "a number",
    boolean: "true or false",
    null: "empty",
  };
  const types = Array.isArray(type) ? type : String(type).split(",");
  return types.map((t) => words[t] ?? t).join(" or ");
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return "empty";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  if (typeof value === "string") return "text";
  if (typeof value === "boolean") return "true or false";
  return "a number";
}

function show(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Messages for a value that does not fit, by the schema object it failed (its pointer). */
const VALUE_MESSAGES: Record<string, (what: string, path: readonly PathSegment[]) => string> = {
  "#/definitions/duration": (what) => `${what} must be ${DURATION}`,
  "#/definitions/size": (what, path) =>
    path[path.length - 1] === "quota"
      ? `${what} must be a size like 200MB or 1GiB, or {bytes: 200MB, messages: 10000}`
      : `${what} must be ${SIZE}`,
  "#/definitions/sourceName": (what) => `${what} must be a source name: ${NAME_RULE}`,
  "#/definitions/dnsServer": (what) =>
    `${what} must be a name server address like 127.0.0.1, 127.0.0.1:53 or [::1]:53`,
  "#/definitions/recipientDelimiter": (what) =>
    `${what} must be one to eight characters other than spaces, '@' and '"', like "+"`,
  "#/definitions/pathTemplate": (what) => `${what} must be a path like /var/mail/{user}`,
  "#/definitions/ruleText": (what) => `${what} is empty`,
  "#/definitions/ruleShorthand/additionalProperties": (_what, path) =>
    `${label(path.slice(0, 2))}: nothing follows '${path[2]}:'`,
  "#/properties/listen": (what) =>
    `${what} must be a socket like inet:127.0.0.1:8890, inet:8890@127.0.0.1 or unix:/path/to/socket`,
  "#/properties/workers": (what) => `${what} must be a number of processes like 2, or auto (one per core)`,
  "#/properties/listen_mode": (what) => `${what} must be an octal file mode like "0660"`,
  "#/properties/defaults/properties/error_reply": (what) =>
    `${what} must be a 4xx reply like "451 4.3.0 Temporary lookup failure, try again later"`,
  "#/definitions/fuse/properties/max_rate": (what) => `${what} must be a percentage like 50%`,
  "#/definitions/redisUrl": (what) => `${what} must be a Redis URL like redis://127.0.0.1:6379/0`,
  "#/properties/quota_server/properties/listen": (what) => `${what} must be HOST:PORT like 127.0.0.1:8025`,
  "#/definitions/ruleMapping/properties/name": (what) =>
    `${what} must be one line of text of at most 100 characters`,
  "#/definitions/ruleMapping/properties/if": (what) => `${what} is empty; it must be a condition`,
  "#/definitions/ruleMapping/properties/then": (what) => `${what} is empty; it must be an action`,
  "#/definitions/ruleMapping/properties/else": (what) => `${what} is empty; it must be an action`,
};

/** Type errors that deserve more than "must be a mapping". */
const TYPE_MESSAGES: Record<string, (what: string, path: readonly PathSegment[], value: unknown) => string> =
  {
    "#": (_what, _path, value) =>
      `the configuration must be a mapping of keys (listen:, sources:, rules:, ...), not ${describe(value)}`,
    "#/definitions/source": (what) => `${what} must be a mapping with 'type:' and the source's options`,
    "#/definitions/ruleMapping": (what) =>
      `${what} must be text ('on STAGES: ...') or a mapping with 'on' and 'then'`,
    "#/definitions/ruleShorthand/additionalProperties": (_what, path) =>
      `${label(path.slice(0, 2))}: write the statement on the same line as '${path[2]}:', or make the whole rule one text with '- |'`,
    "#/properties/rules": (what, _path, value) =>
      value === null
        ? `${what} is empty; it must be a list of rules, each starting with '- ' (or [] for none)`
        : `${what} must be a list of rules, each starting with '- ', not ${describe(value)}`,
    "#/properties/sources": (what, _path, value) =>
      value === null
        ? `${what} is empty; it must be a mapping of source names to their settings (or {} for none)`
        : `${what} must be a mapping of source names to their settings, not ${describe(value)}`,
    "#/definitions/ruleMapping/properties/on/else": (what) =>
      `${what} must be a stage (rcpt), several ("mail, rcpt") or a list ([mail, rcpt])`,
  };

function enumIssue(error: ErrorObject, pointer: string, what: string, value: unknown): Omit<Issue, "offset"> {
  const allowed = ((error.params as { allowedValues?: unknown[] }).allowedValues ?? []).map(String);
  const text = show(value);
  const guess = typeof value === "string" ? suggest(value, allowed) : undefined;
  if (pointer === "#/definitions/sourceType") {
    return { message: `unknown source type '${text}'`, hint: guess ?? `use one of ${allowed.join(", ")}` };
  }
  if (pointer === "#/definitions/stage") {
    return { message: `unknown stage '${text}'`, hint: guess ?? `stages are ${allowed.join(", ")}` };
  }
  const list =
    allowed.length === 2
      ? `${allowed[0]} or ${allowed[1]}`
      : `one of ${allowed.slice(0, -1).join(", ")} or ${allowed.at(-1)}`;
  return guess === undefined
    ? { message: `${what} must be ${list}` }
    : { message: `${what} must be ${list}`, hint: guess };
}

/** The message for a value that does not fit the schema object at `pointer`, if it has its own. */
function valueMessage(
  context: Context,
  pointer: string,
): ((what: string, path: readonly PathSegment[]) => string) | undefined {
  return VALUE_MESSAGES[pointer] ?? context.schema.messages.get(pointer);
}

/** Which source types accept a key, for "'quota' is an option of maildir and mbox sources". */
function typesAccepting(schema: CompiledSchema, key: string): string[] {
  return schema.sourceTypes.filter((type) => {
    const branch = schema.resolve(`#/definitions/${type}Source`);
    return branch?.properties !== undefined && key in (branch.properties as object);
  });
}

function unknownKey(context: Context, error: ErrorObject, path: PathSegment[], pointer: string): Issue {
  const key = String((error.params as { additionalProperty: string }).additionalProperty);
  const parent = error.parentSchema as AnySchemaObject | undefined;
  const allowed = Object.keys((parent?.properties as object | undefined) ?? {}).filter((k) => k !== "type");
  const offset = keyOffset(context.doc, [...path, key]);
  let hint = suggest(key, allowed);
  const branch = context.schema.branchType(pointer);
  if (hint === undefined && branch !== undefined) {
    const types = typesAccepting(context.schema, key);
    if (types.length > 0) hint = `'${key}' is an option of ${types.join(" and ")} sources, not ${branch}`;
  }
  if (hint === undefined && path[0] === "rules" && /^\s*(shadow\s+)?on\s/.test(key)) {
    hint = "a text rule 'on STAGES: ...' must be alone in its list item";
  }
  const message =
    path.length === 0 ? `unknown top-level key '${key}'` : `unknown key '${key}' in ${containerLabel(path)}`;
  return hint === undefined ? { offset, message } : { offset, message, hint };
}

function missingKey(context: Context, error: ErrorObject, path: PathSegment[], pointer: string): Issue {
  const missing = String((error.params as { missingProperty: string }).missingProperty);
  const offset = containerOffset(context.doc, path);
  const branch = context.schema.branchType(pointer);
  if (branch !== undefined) {
    return { offset, message: `${label(path)} of type ${branch} needs '${missing}'` };
  }
  if (pointer === "#/definitions/source") {
    return {
      offset,
      message: `${label(path)} needs 'type'`,
      hint: `one of ${context.schema.sourceTypes.join(", ")}`,
    };
  }
  if (pointer === "#/definitions/ruleMapping" && missing === "on") {
    return { offset, message: `${label(path)} needs 'on'`, hint: "the stages it runs at, e.g. on: rcpt" };
  }
  return { offset, message: `${label(path)} needs '${missing}'` };
}

/** `on: "rcpt, mial"`: point at the word that is not a stage. */
function stageIssue(context: Context, path: PathSegment[], what: string): Issue {
  const found = locate(context.doc, path);
  if (isScalar(found.node)) {
    const located = locateScalar(context.file.text, found.node);
    const words = splitWords(located);
    const stages: readonly string[] = STAGES;
    for (const word of words) {
      if (!stages.includes(word.text)) {
        const guess = suggest(word.text, STAGES);
        return {
          offset: word.offsetAt(0),
          message: `unknown stage '${word.text}'`,
          hint: guess ?? `stages are ${STAGES.join(", ")}`,
        };
      }
    }
  }
  return {
    offset: valueOffset(context.doc, path),
    message: `${what} must name at least one stage, e.g. on: rcpt or on: [mail, rcpt]`,
  };
}

function laterKey(context: Context, path: PathSegment[], keys: readonly string[]): number {
  return Math.max(...keys.map((key) => keyOffset(context.doc, [...path, key])));
}

/** What an issue is built from: one ajv error and where it points. */
interface Site {
  context: Context;
  error: ErrorObject;
  path: PathSegment[];
  /** The JSON pointer of the schema part that failed ("#/definitions/source"). */
  pointer: string;
  value: unknown;
  /** The path in words ("source 'users'"). */
  what: string;
  params: Record<string, unknown>;
  /** The offset of the value the error is about. */
  at: () => number;
}

type IssueBuilder = (site: Site) => Issue | undefined;

const notValidHere: IssueBuilder = ({ at, what }) => ({ offset: at(), message: `${what} is not valid here` });

/** `limit`-style errors: one message each, the limit from ajv's params. */
function bound(message: (what: string, limit: string) => string): IssueBuilder {
  return ({ at, what, params }) => ({ offset: at(), message: message(what, String(params.limit)) });
}

function propertyNameIssue({ context, path, params }: Site): Issue {
  const name = String(params.propertyName);
  const kind = path[path.length - 1] === "tables" ? "table" : "source";
  return {
    offset: keyOffset(context.doc, [...path, name]),
    message: `${kind} name '${name}' is not valid`,
    hint: NAME_RULE,
  };
}

function dependencyIssue({ context, path, params, what }: Site): Issue {
  const property = String(params.property);
  return {
    offset: keyOffset(context.doc, [...path, property]),
    message: `${what} sets '${property}' but not '${String(params.missingProperty)}'`,
    hint: "the password is for binding as bind_dn",
  };
}

/** A source type's `not: {required: [a, b]}`: options that exclude each other. */
function notIssue(site: Site): Issue {
  const keys = (site.error.parentSchema as AnySchemaObject | undefined)?.not?.required as
    | string[]
    | undefined;
  if (site.context.schema.branchType(site.pointer) === undefined || keys === undefined)
    return { offset: site.at(), message: `${site.what} is not valid here` };
  return {
    offset: laterKey(site.context, site.path, keys),
    message: `${site.what} sets both ${keys.map((k) => `'${k}'`).join(" and ")}`,
    hint: "keep only one",
  };
}

/** A source type's `anyOf: [{required: [a]}, {required: [b]}]`: one of these options is needed. */
function anyOfIssue(site: Site): Issue {
  const branch = site.context.schema.branchType(site.pointer);
  const options = (
    (site.error.parentSchema as AnySchemaObject | undefined)?.anyOf as AnySchemaObject[] | undefined
  )
    ?.map((s) => (s.required as string[] | undefined)?.[0])
    .filter((k): k is string => k !== undefined);
  if (branch === undefined || options === undefined || options.length === 0)
    return { offset: site.at(), message: `${site.what} is not valid here` };
  return {
    offset: containerOffset(site.context.doc, site.path),
    message: `${site.what} of type ${branch} needs ${options.map((k) => `'${k}'`).join(" or ")}`,
  };
}

function typeIssue({ context, at, what, path, pointer, value, params }: Site): Issue {
  const special = TYPE_MESSAGES[pointer] ?? valueMessage(context, pointer);
  if (special !== undefined) return { offset: at(), message: special(what, path, value) };
  const expected = typeWords(params.type);
  if (value === null) return { offset: at(), message: `${what} is empty; it must be ${expected}` };
  return { offset: at(), message: `${what} must be ${expected}, not ${describe(value)}` };
}

function patternIssue(site: Site): Issue {
  const { at, what, path, pointer, value } = site;
  if (pointer === "#/definitions/ruleMapping/properties/on/else") return stageIssue(site.context, path, what);
  const special = valueMessage(site.context, pointer);
  return { offset: at(), message: special ? special(what, path) : `${what}: '${show(value)}' is not valid` };
}

function minItemsIssue({ at, what, pointer }: Site): Issue {
  if (pointer === "#/definitions/ruleMapping/properties/on/then") {
    return { offset: at(), message: `${what} must name at least one stage` };
  }
  return { offset: at(), message: `${what} must not be an empty list` };
}

function minPropertiesIssue({ at, what, path, pointer }: Site): Issue {
  if (pointer === "#/definitions/quotaLimits")
    return { offset: at(), message: `${what} needs 'bytes' or 'messages'` };
  if (path[path.length - 1] === "tables") {
    return { offset: at(), message: `${what} of source '${path[1]}' needs at least one table` };
  }
  return { offset: at(), message: `${what} must not be empty` };
}

/** One builder per ajv keyword; a keyword not here is "not valid here". */
const ISSUES = new Map<string, IssueBuilder>([
  ["additionalProperties", (s) => unknownKey(s.context, s.error, s.path, s.pointer)],
  ["required", (s) => missingKey(s.context, s.error, s.path, s.pointer)],
  ["propertyNames", propertyNameIssue],
  ["dependencies", dependencyIssue],
  ["not", notIssue],
  ["anyOf", anyOfIssue],
  ["type", typeIssue],
  ["enum", (s) => ({ offset: s.at(), ...enumIssue(s.error, s.pointer, s.what, s.value) })],
  ["pattern", patternIssue],
  ["minItems", minItemsIssue],
  ["minProperties", minPropertiesIssue],
  ["minLength", ({ at, what }) => ({ offset: at(), message: `${what} must not be empty` })],
  ["maxLength", bound((what, limit) => `${what} must be at most ${limit} characters long`)],
  ["minimum", bound((what, limit) => `${what} must be at least ${limit}`)],
  ["exclusiveMinimum", bound((what, limit) => `${what} must be more than ${limit}`)],
  ["maximum", bound((what, limit) => `${what} must be at most ${limit}`)],
  ["exclusiveMaximum", bound((what, limit) => `${what} must be less than ${limit}`)],
  [
    "const",
    ({ at, what, params }) => ({ offset: at(), message: `${what} must be '${show(params.allowedValue)}'` }),
  ],
  // The failing branch of an if/then/else reports its own error.
  ["if", () => undefined],
]);

function issueFor(context: Context, error: ErrorObject): Issue | undefined {
  const path = segmentsOf(error.instancePath, context.data);
  const site: Site = {
    context,
    error,
    path,
    pointer: context.schema.pointers.get(error.parentSchema as object) ?? "",
    value: valueAt(context.data, path),
    what: label(path),
    params: error.params as Record<string, unknown>,
    at: () => valueOffset(context.doc, path),
  };
  return (ISSUES.get(error.keyword) ?? notValidHere)(site);
}

/** Every schema error, once, at its node, in the file's order. */
export function schemaDiagnostics(
  errors: readonly ErrorObject[],
  file: SourceFile,
  doc: Document,
  data: unknown,
  schema: CompiledSchema,
): Diagnostic[] {
  const context: Context = { file, doc, data, schema };
  const anyOfs = new Map<string, ErrorObject[]>();
  for (const error of errors) {
    if (error.keyword !== "anyOf") continue;
    anyOfs.set(error.instancePath, [...(anyOfs.get(error.instancePath) ?? []), error]);
  }
  // `zon: x` instead of `zone: x` is one mistake: "unknown key 'zon' (did you mean 'zone'?)" says
  // it all, without "needs 'zone'" besides.
  const misspelt = new Set<string>();
  for (const error of errors) {
    if (error.keyword !== "additionalProperties") continue;
    const key = String((error.params as { additionalProperty: string }).additionalProperty);
    const allowed = Object.keys(
      ((error.parentSchema as AnySchemaObject | undefined)?.properties as object) ?? {},
    );
    const guess = suggested(key, allowed);
    if (guess !== undefined) misspelt.add(`${error.instancePath}\0${guess}`);
  }
  const seen = new Set<string>();
  const issues: Issue[] = [];
  for (const error of errors) {
    if (
      error.keyword === "required" &&
      misspelt.has(
        `${error.instancePath}\0${String((error.params as { missingProperty: string }).missingProperty)}`,
      )
    ) {
      continue;
    }
    // Errors about a property name are reported once, by the propertyNames error.
    if (error.propertyName !== undefined) continue;
    // The branches of an anyOf are reported by the anyOf error.
    if ((anyOfs.get(error.instancePath) ?? []).some((a) => error.schemaPath.startsWith(`${a.schemaPath}/`))) {
      continue;
    }
    const issue = issueFor(context, error);
    if (issue === undefined) continue;
    const key = `${issue.offset}\0${issue.message}\0${issue.hint ?? ""}`;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(issue);
  }
  issues.sort((a, b) => a.offset - b.offset);
  const shown = issues.slice(0, MAX_SCHEMA_DIAGNOSTICS);
  const diagnostics = shown.map((issue) => file.diagnostic(issue.offset, "error", issue.message, issue.hint));
  const hidden = issues.length - shown.length;
  if (hidden > 0) {
    const last = issues[MAX_SCHEMA_DIAGNOSTICS] as Issue;
    diagnostics.push(file.diagnostic(last.offset, "error", `${hidden} more errors not shown, from here on`));
  }
  return diagnostics;
}
