/**
 * The loaded, schema-checked configuration, with the file positions later passes need to
 * report mistakes at the right line and column of rules.yaml.
 */
import type { LocalPartMode } from "../common/address.js";
import type { SourceFile } from "../common/diagnostics.js";

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
export type SourceType = "maildir" | "mbox" | "http" | "ldap" | "dnsbl" | "list";
export const SOURCE_TYPES: readonly SourceType[] = ["maildir", "mbox", "http", "ldap", "dnsbl", "list"];

export interface QuotaLimit {
  /** 0 or absent: no byte limit. */
  bytes?: number;
  /** 0 or absent: no message-count limit. */
  messages?: number;
}

interface SourceBase {
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
}

export interface MaildirSourceConfig extends SourceBase {
  type: "maildir";
  path: string;
  quota?: QuotaLimit;
}
export interface MboxSourceConfig extends SourceBase {
  type: "mbox";
  path: string;
  quota?: QuotaLimit;
}
export interface HttpSourceConfig extends SourceBase {
  type: "http";
  url: string;
}
export interface LdapSourceConfig extends SourceBase {
  type: "ldap";
  url: string;
  bindDn?: string;
  passwordFile?: string;
  passwordEnv?: string;
  base: string;
  startTls: boolean;
  /** Attribute whose value `TABLE[key]` returns; default: the entry's DN. */
  resultAttribute?: string;
  /** Table name → filter template, with where the filter is in the file. */
  tables: Map<string, LocatedText>;
}
export interface DnsblHealthConfig {
  intervalMs: number;
  window: number;
  maxListedRatio: number;
  requirePositiveProbe: boolean;
}
export interface DnsblSourceConfig extends SourceBase {
  type: "dnsbl";
  zone: string;
  /** Answers that count as listed, e.g. ["127.0.0.2-127.0.0.11", "127.0.0.4"]; undefined = any in 127/8 but error codes. */
  codes?: string[];
  health: DnsblHealthConfig;
}
export interface ListSourceConfig extends SourceBase {
  type: "list";
  items?: string[];
  /** One key per line; `#` comments and blank lines ignored. Resolved against the config file's folder. */
  file?: string;
}

export type SourceConfig =
  | MaildirSourceConfig
  | MboxSourceConfig
  | HttpSourceConfig
  | LdapSourceConfig
  | DnsblSourceConfig
  | ListSourceConfig;

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
    };

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
}

/** Each restart setting's name in rules.yaml (a new one is added here and in RestartSettings). */
export const RESTART_SETTINGS: { readonly [K in keyof RestartSettings]-?: string } = {
  listen: "listen",
  listenMode: "listen_mode",
  maxConnections: "max_connections",
  maxBufferedInput: "max_buffered_input",
};

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
  };
  dns: { servers?: string[] };
  sources: Map<string, SourceConfig>;
  rules: RuleSource[];
  quotaServer?: { listen: string; source: string; offset: number };
  /** File offset of the YAML node at `path` (e.g. ["sources", "spool", "quota"]), or of the nearest existing parent. */
  offsetOf(path: readonly (string | number)[]): number;
}
