/**
 * The loaded, schema-checked configuration, with the file positions later passes need to
 * report mistakes at the right line and column of rules.yaml.
 */
import type { LocalPartMode } from "../common/address.js";
import type { SourceFile } from "../common/diagnostics.js";
import type { FileLimit } from "./read.js";
import type { PathSegment } from "./yaml-positions.js";

/**
 * A YAML scalar's value with a map back to the file: `offsetAt(i)` is the file offset of the
 * character `text[i]` came from, whatever the scalar style (plain, quoted, `|`, `>`);
 * `offsetAt(text.length)` is the offset just after the last character.
 */
export interface LocatedText {
  text: string;
  offsetAt(index: number): number;
}

export type OnError = "tempfail" | "continue";

/** What rules do with a source: `quota(ADDRESS, NAME)`; `NAME` (or `NAME.table`) as a table; `NAME` / `NAME.zone` as a DNSBL. */
export type SourceKind = "quota" | "table" | "dnsbl";

export interface QuotaLimit {
  /** 0 or absent: no byte limit. */
  bytes?: number;
  /** 0 or absent: no message-count limit. */
  messages?: number;
}

/** What every source's configuration has, whatever its type. */
export interface SourceConfigBase {
  /** The `type:` of rules.yaml; its SourceTypeSpec (Config.sourceTypes) built the rest. */
  type: string;
  kind: SourceKind;
  name: string;
  /** File offset of the source's key in `sources:`. */
  offset: number;
  timeoutMs: number;
  onError: OnError;
  /** Positive cache TTL; undefined = the source type's default. */
  cacheMs?: number;
  /** TTL for "not found"; undefined = the source type's default. */
  negativeCacheMs?: number;
  /** e.g. "+": `{user}` is the local part without `+detail`. */
  recipientDelimiter?: string;
  /** `defaults.local_part`: absent = insensitive (address keys' local parts are folded before a lookup). */
  localPart?: LocalPartMode;
  /** A table source used through named tables (`NAME.table`); absent: `NAME` is the table. */
  tables?: ReadonlyMap<string, unknown>;
}

/**
 * The configurations of the source types, by `type`. Empty here: each source type adds its own
 * by declaration merging, next to its descriptor (src/sources/types/NAME.ts):
 *
 *   declare module "../../config/types.js" {
 *     interface SourceConfigs { maildir: MaildirSourceConfig }
 *   }
 *
 * so that code holding a SourceConfig may narrow it by `type`.
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled by declaration merging, one entry per source type
export interface SourceConfigs {}

export type SourceConfig = SourceConfigs[keyof SourceConfigs];

/** One entry of `rules:`, not yet parsed as rule language. */
export type RuleSource =
  | {
      form: "text";
      /** Index in `rules:` (0-based), for default names (`rule-1`, …). */
      index: number;
      offset: number;
      body: LocatedText;
    }
  | {
      form: "structured";
      index: number;
      offset: number;
      name?: LocatedText;
      /** `on: rcpt`, `on: "mail, rcpt"` or `on: [mail, rcpt]`: one LocatedText per stage word. */
      on: LocatedText[];
      if?: LocatedText;
      then: LocatedText;
      else?: LocatedText;
      mode: "enforce" | "shadow";
      /** Its own `fuse:`; absent: `defaults.fuse` (text rules always take that one). */
      fuse?: FuseConfig;
    };

/**
 * `fuse:` of a rule or of `defaults`: past `minEvents` evaluations in the sliding `windowMs`, a
 * rule refusing (reject, tempfail) more than `maxRate` of them runs in shadow mode for `cooldownMs`.
 */
export interface FuseConfig {
  /** A share, more than 0 and less than 1 (`50%` is 0.5). */
  maxRate: number;
  windowMs: number;
  minEvents: number;
  cooldownMs: number;
}

/**
 * What a running `serve` applies once, at start: the socket and the process-wide limits. A reload
 * that changes one of them keeps the running value and says so; everything else in Config is
 * applied by a reload.
 */
export interface RestartSettings {
  listen?: string;
  listenMode: number;
  maxConnections: number;
  /** Unprocessed MTA input held across all milter connections, in bytes. */
  maxBufferedInput: number;
  /** Processes serving the one socket (`serve --workers`): a count, or one per core. */
  workers: number | "auto";
  /** The decision journal: opened when serve starts. */
  journal?: JournalConfig;
}

/** Each restart setting's name in rules.yaml (a new one is added here and in RestartSettings). */
export const RESTART_SETTINGS: { readonly [K in keyof RestartSettings]-?: string } = {
  listen: "listen",
  listenMode: "listen_mode",
  maxConnections: "max_connections",
  maxBufferedInput: "max_buffered_input",
  workers: "workers",
  journal: "journal",
};

type RestartValue = RestartSettings[keyof RestartSettings];

/** Whether a reloaded file's restart setting is the running one: the journal by its fields, the rest as values. */
export function sameRestartSetting(a: RestartValue, b: RestartValue): boolean {
  if (typeof a !== "object" || typeof b !== "object") return a === b;
  return a.path === b.path && a.maxSizeBytes === b.maxSizeBytes && a.keep === b.keep;
}

/** A restart setting as a warning names it: a mode in octal, the journal by its file and limits. */
export function showRestartSetting(key: keyof RestartSettings, value: RestartValue): string {
  if (value === undefined) return "(not set)";
  if (typeof value === "object")
    return `${value.path} (max_size ${value.maxSizeBytes} bytes, keep ${value.keep})`;
  return key === "listenMode" ? `0${(value as number).toString(8)}` : String(value);
}

/** `state: memory` (the default): counts in the process, lost on restart, per process. */
export interface MemoryStateConfig {
  type: "memory";
  /** What a rule does when the store cannot answer (never, in memory; kept for one shape). */
  onError: OnError;
  timeoutMs: number;
}

/**
 * `state: redis`: a Redis 6+ / Valkey server (or Sentinel set, or Cluster) every filterctl naming
 * it shares. The fields src/engine/state/redis.ts reads have its own RedisStateConfig's names.
 */
export interface RedisStateConfig {
  type: "redis";
  /** `url`, or `urls` (Sentinels with `sentinel`, Cluster nodes with `cluster`). */
  urls: string[];
  /** The Sentinel master name; `urls` are then the Sentinels. */
  sentinel?: string;
  /** `urls` are nodes of a Redis Cluster. */
  cluster?: boolean;
  /** Prefix of every key (default "filterctl:"). */
  keyPrefix: string;
  /** Deadline of one call (default 200ms); past it the rule takes `onError`. */
  timeoutMs: number;
  onError: OnError;
}

/** The top-level `state:`: where rate() and greylist() keep their counts. */
export type StateConfig = MemoryStateConfig | RedisStateConfig;

/** The top-level `greylist:` (runtime/state.ts GreylistSettings has the same shape). */
export interface GreylistConfig {
  delayMs: number;
  retryWindowMs: number;
  passTtlMs: number;
}

/** The top-level `journal:` (serve --journal): read once, when serve starts. */
export interface JournalConfig {
  /** Absolute (resolved against the config file's folder). */
  path: string;
  maxSizeBytes: number;
  keep: number;
}

export interface Config extends RestartSettings {
  file: SourceFile;
  shutdownTimeoutMs: number;
  /** Deadline for one milter event before `on_error` applies. */
  eventTimeoutMs: number;
  defaults: {
    onError: OnError;
    errorReply: string;
    timeoutMs: number;
    /** Whether addresses' local parts compare case-insensitively (default) or exactly; domains always fold. */
    localPart: LocalPartMode;
    /** The fuse of rules that set none; absent: off. */
    fuse?: FuseConfig;
  };
  dns: { servers?: string[] };
  /** The source types this configuration was read with, by `type`: what built, caches and opens each source. */
  sourceTypes: ReadonlyMap<string, SourceTypeSpec>;
  sources: Map<string, SourceConfig>;
  rules: RuleSource[];
  quotaServer?: { listen: string; source: string; offset: number };
  /** Where rate() and greylist() count; `type: memory` when the file has no `state:`. */
  state: StateConfig;
  greylist: GreylistConfig;
  /** File offset of the YAML node at `path` (e.g. ["sources", "spool", "quota"]), or of the nearest existing parent. */
  offsetOf(path: readonly (string | number)[]): number;
}

// ---- Source types ------------------------------------------------------------------------
//
// What the configuration needs to know about a source type: its piece of the JSON Schema, how
// its YAML mapping becomes a typed config (with diagnostics at the right place), its default
// cache TTLs, the files it reads, and what rules do with it (its kind). The loader is handed the
// list of types (src/sources/catalog.ts holds the built-in ones, each in src/sources/types/);
// nothing in src/config/ names a source type.

/** A JSON Schema object (draft-07), as plain data. */
export type JsonSchema = Record<string, unknown>;

/** A source type's part of the JSON Schema of rules.yaml. */
export interface SourceSchemaFragment {
  /** The type in the list of kinds: "maildir (Maildir++ quota)". */
  summary: string;
  /** The `type: NAME` key's description in this type's branch: "maildir: Maildir++ quota from maildirsize." */
  typeDescription: string;
  /**
   * The definition `#/definitions/NAMESource`, without `type: object`, `additionalProperties`,
   * the `type` key and the options every source has (timeout, on_error, cache, negative_cache,
   * recipient_delimiter): the assembler adds those. A property given here replaces the common one.
   */
  definition: JsonSchema & { description: string; properties: Record<string, JsonSchema> };
  /** More definitions this type's properties refer to (`#/definitions/dnsblCode`). */
  definitions?: Record<string, JsonSchema>;
  /**
   * Messages for a value that does not fit, by the JSON pointer of the schema object it failed
   * ("#/definitions/ldapSource/properties/url"); `what` names the value ("'url'").
   */
  messages?: Record<string, (what: string) => string>;
}

/** A file a source reads, named by one of its options. */
export interface SourceFileRef {
  /** The option naming the file, under the source ("password_file"), for the diagnostic's position. */
  key: PathSegment;
  /** The file; a relative name is resolved against the configuration's folder. */
  path: string;
  /** How errors call it: "list file". */
  label: string;
  limit: FileLimit;
}

/** What a source type's `build` is given: positions, diagnostics, and the checks types share. */
export interface SourceBuildContext {
  /** The source's name (its key in `sources:`). */
  readonly name: string;
  /** The rules file's path: relative file names resolve against its folder. */
  readonly configPath: string;
  /** Paths are under the source: ["tables", "addresses"] is `sources.NAME.tables.addresses`. */
  error(at: readonly PathSegment[] | number, message: string, hint?: string): void;
  warning(at: readonly PathSegment[] | number, message: string, hint?: string): void;
  /** File offset of the value at `path` (or of its nearest existing parent). */
  offsetOf(path: readonly PathSegment[]): number;
  /** The scalar at `path` with its position in the file. */
  located(path: readonly PathSegment[]): LocatedText;
  /** The scalar at `path`, each unknown `{placeholder}` reported at its brace; `what` names it ("'path'"). */
  placeholders(path: readonly PathSegment[], what: string): LocatedText;
  /** A duration option (`value`, found at `path`) in ms, at least `minMs` (else an error there); `fallback` when absent. */
  duration(value: unknown, path: readonly PathSegment[], minMs: number, fallback: number): number;
  /** A quota option: a size, or {bytes, messages}. */
  quota(raw: unknown): QuotaLimit | undefined;
  /** A file name resolved against the configuration's folder. */
  resolveFile(name: string): string;
}

/** One source type, as the configuration sees it. Methods, so a spec of a narrower config fits a list of specs. */
export interface SourceTypeSpec<C extends SourceConfigBase = SourceConfigBase> {
  /** The `type:` value in rules.yaml: letters, digits and '_'. */
  readonly type: string;
  /** What rules do with it: quota(ADDRESS, NAME); NAME (or NAME.table) as a table; NAME / NAME.zone as a DNSBL. */
  readonly kind: SourceKind;
  /** How messages name the type: "LDAP source 'directory' ...". */
  readonly label: string;
  readonly schema: SourceSchemaFragment;
  /** Cache TTLs when the source sets no `cache` / `negative_cache`. */
  readonly ttlMs: { positive: number; negative: number };
  /** `on_error` when the source sets none, instead of `defaults.on_error`. */
  readonly onError?: OnError;
  /** Whether `filterctl quota-server` can answer from it (quota kinds that read mailboxes themselves). */
  readonly servesQuota?: boolean;
  /** The typed config from the schema-checked mapping; `base` holds the options every source has. */
  build(raw: Record<string, unknown>, base: SourceConfigBase, ctx: SourceBuildContext): C;
  /** The files it reads: checked by validate, watched for reload. */
  files?(config: C): SourceFileRef[];
}
