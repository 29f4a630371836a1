/**
 * From the schema-checked plain value to the typed Config: defaults applied, durations in
 * milliseconds, sizes in bytes, rules and LDAP filters located in the file; plus the checks a
 * schema cannot express (socket syntax, cross references, placeholders, duplicate rule names).
 */
import { isIP } from "node:net";
import { dirname, resolve as resolvePath } from "node:path";
import { type Document, isMap, isPair, isScalar, isSeq, type Node } from "yaml";
import type { LocalPartMode } from "../common/address.js";
import type { Diagnostic, SourceFile } from "../common/diagnostics.js";
import { suggest } from "../common/suggest.js";
import { parseDuration, parseSize } from "../common/units.js";
import { AddressError, parseListenAddress } from "../milter/address.js";
import { locateScalar, MappedText, splitWords } from "./located-text.js";
import type {
  Config,
  DnsblHealthConfig,
  LocatedText,
  OnError,
  QuotaLimit,
  RestartSettings,
  RuleSource,
  SourceConfig,
  SourceType,
} from "./types.js";
import { urlPartAt, VALUE_PARTS } from "./url-template.js";
import { keyOffset, locate, nodeStart, type PathSegment, valueOffset } from "./yaml-positions.js";

export const DEFAULT_ERROR_REPLY = "451 4.3.0 Temporary lookup failure, try again later";
export const DEFAULT_QUOTA_SERVER_LISTEN = "127.0.0.1:8025";
export const DEFAULTS = {
  onError: "tempfail" as OnError,
  localPart: "insensitive" as LocalPartMode,
  errorReply: DEFAULT_ERROR_REPLY,
  timeoutMs: 2000,
  listenMode: 0o660,
  maxConnections: 4096,
  maxBufferedInput: 64 * 1024 * 1024,
  shutdownTimeoutMs: 30_000,
  eventTimeoutMs: 10_000,
  dnsblOnError: "continue" as OnError,
  health: { intervalMs: 5 * 60_000, window: 50, maxListedRatio: 0.9, requirePositiveProbe: true },
} as const;

const MIN_BUFFERED_INPUT = 1024 * 1024;

export const PLACEHOLDERS = ["user", "domain", "address", "key"] as const;

/**
 * Words a source cannot be named, or rules could not name it: the rule language's keywords, and
 * the heads of its values and functions (`from.domain`, `quota(...)`), which win over sources.
 */
export const RESERVED_NAMES: readonly string[] = [
  ...["shadow", "on", "if", "then", "else", "and", "or", "not", "in", "matches", "over", "true", "false"],
  ...["client", "helo", "auth", "from", "size", "rcpt", "rcpts", "header", "macro", "quota"],
];

type Raw = Record<string, unknown>;

function record(value: unknown): Raw {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Raw) : {};
}

function text(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function duration(value: unknown): number | undefined {
  return typeof value === "string" ? parseDuration(value) : undefined;
}

function size(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  return typeof value === "string" ? parseSize(value) : undefined;
}

/** "0660", "660", "0o660" or the number YAML made of 0660 (given as its source text). */
export function parseMode(value: string): number {
  return Number.parseInt(value.replace(/^0o?/, ""), 8);
}

class Builder {
  readonly diagnostics: Diagnostic[] = [];

  constructor(
    readonly file: SourceFile,
    readonly doc: Document,
  ) {}

  error(offset: number, message: string, hint?: string): void {
    this.diagnostics.push(this.file.diagnostic(offset, "error", message, hint));
  }

  warning(offset: number, message: string, hint?: string): void {
    this.diagnostics.push(this.file.diagnostic(offset, "warning", message, hint));
  }

  node(path: readonly PathSegment[]): Node | null | undefined {
    const found = locate(this.doc, path);
    return found.depth === path.length ? found.node : undefined;
  }

  /** The located value of the scalar at `path`. */
  located(path: readonly PathSegment[]): MappedText {
    const node = this.node(path);
    if (isScalar(node)) return locateScalar(this.file.text, node);
    return MappedText.at("", valueOffset(this.doc, path));
  }

  /** `{usr}` in a path, URL or filter: unknown placeholder, at its brace. */
  checkPlaceholders(path: readonly PathSegment[], what: string): MappedText {
    const located = this.located(path);
    for (const match of located.text.matchAll(/\{([^{}\s]*)\}/g)) {
      const name = match[1] as string;
      if ((PLACEHOLDERS as readonly string[]).includes(name)) continue;
      const guess = suggest(name, PLACEHOLDERS);
      this.error(
        located.offsetAt(match.index),
        `unknown placeholder '{${name}}' in ${what}`,
        guess === undefined
          ? `use ${PLACEHOLDERS.map((p) => `{${p}}`).join(", ")}`
          : guess.replace(/'(.*)'/, "'{$1}'"),
      );
    }
    return located;
  }

  /**
   * Placeholders only in the path and query of a URL: in its scheme, userinfo, host or port a
   * recipient address would choose the server asked. False when one is elsewhere.
   */
  checkUrlParts(name: string, located: MappedText): boolean {
    let ok = true;
    for (const match of located.text.matchAll(/\{(user|domain|address|key)\}/g)) {
      const part = urlPartAt(located.text, match.index);
      if (VALUE_PARTS.includes(part)) continue;
      ok = false;
      this.error(
        located.offsetAt(match.index),
        `'url' of source '${name}' has placeholder '${match[0]}' in its ${part}: only the path and query may hold placeholders`,
        "a recipient address must not choose the server asked",
      );
    }
    return ok;
  }

  /** A duration that must be at least `minMs` (a zero timeout fails every lookup; a zero interval spins). */
  atLeast(value: unknown, path: readonly PathSegment[], minMs: number, fallback: number): number {
    const ms = duration(value);
    if (ms === undefined) return fallback;
    if (ms < minMs) {
      this.error(
        valueOffset(this.doc, path),
        `'${String(path[path.length - 1])}' must be at least ${minMs === 1 ? "1ms" : `${minMs / 1000}s`}`,
      );
    }
    return ms;
  }

  /** At least one packet of the largest size the milter accepts, or no connection could finish one. */
  bufferedInput(value: unknown): number {
    const bytes = size(value);
    if (bytes === undefined) return DEFAULTS.maxBufferedInput;
    if (bytes < MIN_BUFFERED_INPUT) {
      this.error(
        valueOffset(this.doc, ["max_buffered_input"]),
        `'max_buffered_input' must be at least 1MiB (the largest packet the milter accepts)`,
      );
    }
    return bytes;
  }

  listen(raw: Raw): string | undefined {
    const listen = text(raw.listen);
    if (listen === undefined) return undefined;
    const parsed = parseListenAddress(listen);
    if (parsed instanceof AddressError) {
      this.error(valueOffset(this.doc, ["listen"]), `'listen': ${parsed.message.replace(/^'[^']*': /, "")}`);
    }
    return listen;
  }

  /** A socket others can write to is a milter any local user can talk to (and make it add headers). */
  listenMode(modeText: string | undefined): number {
    if (modeText === undefined) return DEFAULTS.listenMode;
    const mode = parseMode(modeText);
    if ((mode & 0o002) !== 0) {
      const safer = `0${(mode & 0o770 || 0o660).toString(8).padStart(3, "0")}`;
      this.warning(
        valueOffset(this.doc, ["listen_mode"]),
        `listen_mode "${modeText}" lets every local user connect to the milter socket`,
        `use "${safer}" and add the MTA's user to the socket's group`,
      );
    }
    return mode;
  }

  dnsServers(raw: unknown): string[] | undefined {
    if (!Array.isArray(raw)) return undefined;
    raw.forEach((server: unknown, index) => {
      const spec = String(server);
      const match = /^\[(.*)\](?::(\d+))?$/.exec(spec) ?? /^([^:]*)(?::(\d+))?$/.exec(spec);
      const host = match === null ? spec : (match[1] as string);
      const port = match?.[2];
      const offset = valueOffset(this.doc, ["dns", "servers", index]);
      if (isIP(host) === 0) this.error(offset, `'${spec}' is not an IP address (with an optional :PORT)`);
      else if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) {
        this.error(offset, `'${spec}': port ${port} is out of range 1-65535`);
      }
    });
    return raw.map(String);
  }

  quota(raw: unknown): QuotaLimit | undefined {
    if (raw === undefined) return undefined;
    if (raw !== null && typeof raw === "object") {
      const limits = record(raw);
      const quota: QuotaLimit = {};
      const bytes = size(limits.bytes);
      if (bytes !== undefined) quota.bytes = bytes;
      if (typeof limits.messages === "number") quota.messages = limits.messages;
      return quota;
    }
    const bytes = size(raw);
    return bytes === undefined ? undefined : { bytes };
  }

  health(name: string, raw: unknown): DnsblHealthConfig {
    const health = record(raw);
    return {
      intervalMs: this.atLeast(
        health.interval,
        ["sources", name, "health", "interval"],
        10_000,
        DEFAULTS.health.intervalMs,
      ),
      window: typeof health.window === "number" ? health.window : DEFAULTS.health.window,
      maxListedRatio:
        typeof health.max_listed_ratio === "number"
          ? health.max_listed_ratio
          : DEFAULTS.health.maxListedRatio,
      requirePositiveProbe:
        typeof health.require_positive_probe === "boolean"
          ? health.require_positive_probe
          : DEFAULTS.health.requirePositiveProbe,
    };
  }

  codes(name: string, raw: unknown): string[] | undefined {
    if (!Array.isArray(raw)) return undefined;
    const codes = raw.map(String);
    codes.forEach((code, index) => {
      const [from, to] = code.split("-");
      if (to === undefined || from === undefined) return;
      const number = (ip: string): number => ip.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
      if (number(from) > number(to)) {
        this.error(
          valueOffset(this.doc, ["sources", name, "codes", index]),
          `range '${code}' ends before it starts`,
        );
      }
    });
    return codes;
  }

  source(name: string, raw: Raw, defaults: Config["defaults"]): SourceConfig {
    const type = raw.type as SourceType;
    const path = ["sources", name];
    const base = {
      name,
      offset: keyOffset(this.doc, path),
      timeoutMs: this.atLeast(raw.timeout, [...path, "timeout"], 1, defaults.timeoutMs),
      onError:
        (text(raw.on_error) as OnError | undefined) ??
        (type === "dnsbl" ? DEFAULTS.dnsblOnError : defaults.onError),
      cacheMs: duration(raw.cache),
      negativeCacheMs: duration(raw.negative_cache),
      recipientDelimiter: text(raw.recipient_delimiter),
      localPart: defaults.localPart,
    };
    switch (type) {
      case "maildir":
      case "mbox": {
        const located = this.checkPlaceholders([...path, "path"], "'path'");
        if (!/\{(user|address|key)\}/.test(located.text)) {
          this.warning(
            located.offsetAt(0),
            `'path' of source '${name}' has no {user} or {address}: every recipient shares one mailbox`,
          );
        }
        const quota = this.quota(raw.quota);
        return { ...base, type, path: String(raw.path), ...(quota ? { quota } : {}) };
      }
      case "http": {
        const located = this.checkPlaceholders([...path, "url"], "'url'");
        // With a placeholder in the authority the URL may not parse; the placeholder is the error.
        if (!this.checkUrlParts(name, located)) return { ...base, type, url: String(raw.url) };
        try {
          new URL(String(raw.url).replace(/\{[^{}]*\}/g, "x"));
        } catch {
          this.error(valueOffset(this.doc, [...path, "url"]), `'url' of source '${name}' is not a valid URL`);
        }
        return { ...base, type, url: String(raw.url) };
      }
      case "ldap": {
        const tables = new Map<string, LocatedText>();
        for (const table of Object.keys(record(raw.tables))) {
          tables.set(table, this.checkPlaceholders([...path, "tables", table], `table '${table}'`));
        }
        return {
          ...base,
          type,
          url: String(raw.url),
          bindDn: text(raw.bind_dn),
          passwordFile: text(raw.password_file),
          passwordEnv: text(raw.password_env),
          base: String(raw.base),
          startTls: raw.start_tls === true,
          resultAttribute: text(raw.result_attribute),
          tables,
        };
      }
      case "dnsbl":
        return {
          ...base,
          type,
          zone: String(raw.zone).replace(/\.$/, ""),
          codes: this.codes(name, raw.codes),
          health: this.health(name, raw.health),
        };
      case "list": {
        const file = text(raw.file);
        return {
          ...base,
          type,
          items: Array.isArray(raw.items) ? raw.items.map(String) : undefined,
          file: file === undefined ? undefined : resolvePath(dirname(this.file.path), file),
        };
      }
    }
  }

  /** `- on connect: if ... then ...` read by YAML as a one-entry mapping: its text is `key: value`. */
  shorthand(index: number, node: Node): RuleSource | undefined {
    if (!isMap(node) || node.items.length !== 1) return undefined;
    const pair = node.items[0];
    if (!isPair(pair) || !isScalar(pair.key) || !isScalar(pair.value)) return undefined;
    if (!/^\s*(shadow\s+)?on\s/.test(String(pair.key.value))) return undefined;
    const key = locateScalar(this.file.text, pair.key);
    const value = locateScalar(this.file.text, pair.value);
    const keyEnd = pair.key.range?.[1] ?? key.offsetAt(key.text.length);
    const colon = this.file.text.indexOf(":", keyEnd);
    const at = colon === -1 ? keyEnd : colon;
    const body = MappedText.concat([key, MappedText.at(":", at), MappedText.at(" ", at + 1), value]);
    return { form: "text", index, offset: nodeStart(node) ?? 0, body };
  }

  rule(index: number): RuleSource {
    const path = ["rules", index];
    const node = this.node(path) ?? null;
    const offset = nodeStart(node) ?? valueOffset(this.doc, path);
    if (isScalar(node)) return { form: "text", index, offset, body: locateScalar(this.file.text, node) };
    const short = node === null ? undefined : this.shorthand(index, node);
    if (short !== undefined) return short;
    const optional = (key: string): MappedText | undefined =>
      this.node([...path, key]) === undefined ? undefined : this.located([...path, key]);
    const onNode = this.node([...path, "on"]);
    const on: LocatedText[] = isSeq(onNode)
      ? onNode.items.map((_, i) => this.located([...path, "on", i]))
      : splitWords(this.located([...path, "on"]));
    const rule: RuleSource = {
      form: "structured",
      index,
      offset,
      on,
      then: this.located([...path, "then"]),
      mode:
        this.node([...path, "mode"]) !== undefined && this.located([...path, "mode"]).text === "shadow"
          ? "shadow"
          : "enforce",
    };
    const name = optional("name");
    if (name !== undefined) rule.name = name;
    const condition = optional("if");
    if (condition !== undefined) rule.if = condition;
    const otherwise = optional("else");
    if (otherwise !== undefined) rule.else = otherwise;
    return rule;
  }

  rules(raw: unknown): RuleSource[] {
    if (!Array.isArray(raw)) return [];
    const rules = raw.map((_, index) => this.rule(index));
    const names = new Map<string, number>();
    for (const rule of rules) {
      if (rule.form !== "structured" || rule.name === undefined) continue;
      const first = names.get(rule.name.text);
      if (first === undefined) names.set(rule.name.text, rule.index);
      else {
        this.error(
          rule.name.offsetAt(0),
          `rule name '${rule.name.text}' is already used by rule ${first + 1}`,
          "names identify rules in logs and metrics",
        );
      }
    }
    return rules;
  }

  quotaServer(raw: unknown, sources: Map<string, SourceConfig>): Config["quotaServer"] {
    if (raw === undefined) return undefined;
    const server = record(raw);
    const source = String(server.source);
    const offset = valueOffset(this.doc, ["quota_server", "source"]);
    const found = sources.get(source);
    if (found === undefined) {
      const quotaSources = [...sources.values()].filter((s) => s.type === "maildir" || s.type === "mbox");
      this.error(
        offset,
        `unknown source '${source}'`,
        suggest(
          source,
          quotaSources.map((s) => s.name),
        ) ??
          (quotaSources.length > 0
            ? `maildir and mbox sources: ${quotaSources.map((s) => s.name).join(", ")}`
            : undefined),
      );
    } else if (found.type !== "maildir" && found.type !== "mbox") {
      this.error(
        offset,
        `the quota server needs a maildir or mbox source; '${source}' is of type ${found.type}`,
      );
    }
    const listen = text(server.listen) ?? DEFAULT_QUOTA_SERVER_LISTEN;
    const port = Number(/:(\d+)$/.exec(listen)?.[1]);
    if (port < 1 || port > 65535) {
      this.error(
        valueOffset(this.doc, ["quota_server", "listen"]),
        `'${listen}': port ${port} is out of range 1-65535`,
      );
    }
    return { listen, source, offset };
  }

  /** What only a restart applies (RestartSettings); the rest of build() is what a reload applies. */
  restartSettings(raw: Raw, listenModeText: string | undefined): RestartSettings {
    return {
      listen: this.listen(raw),
      listenMode: this.listenMode(listenModeText),
      maxConnections: typeof raw.max_connections === "number" ? raw.max_connections : DEFAULTS.maxConnections,
      maxBufferedInput: this.bufferedInput(raw.max_buffered_input),
    };
  }

  build(raw: Raw, listenModeText: string | undefined): Config {
    const rawDefaults = record(raw.defaults);
    const defaults: Config["defaults"] = {
      onError: (text(rawDefaults.on_error) as OnError | undefined) ?? DEFAULTS.onError,
      errorReply: text(rawDefaults.error_reply) ?? DEFAULTS.errorReply,
      timeoutMs: this.atLeast(rawDefaults.timeout, ["defaults", "timeout"], 1, DEFAULTS.timeoutMs),
      localPart: (text(rawDefaults.local_part) as LocalPartMode | undefined) ?? DEFAULTS.localPart,
    };
    const sources = new Map<string, SourceConfig>();
    for (const [name, value] of Object.entries(record(raw.sources))) {
      if (RESERVED_NAMES.includes(name.toLowerCase())) {
        this.error(
          keyOffset(this.doc, ["sources", name]),
          `source name '${name}' is a word of the rule language`,
          `rules could not name it; call it, e.g., '${name}_list'`,
        );
      }
      sources.set(name, this.source(name, record(value), defaults));
    }
    const servers = this.dnsServers(record(raw.dns).servers);
    const doc = this.doc;
    const config: Config = {
      file: this.file,
      ...this.restartSettings(raw, listenModeText),
      shutdownTimeoutMs: duration(raw.shutdown_timeout) ?? DEFAULTS.shutdownTimeoutMs,
      eventTimeoutMs: this.atLeast(raw.event_timeout, ["event_timeout"], 1, DEFAULTS.eventTimeoutMs),
      defaults,
      dns: servers === undefined ? {} : { servers },
      sources,
      rules: this.rules(raw.rules),
      quotaServer: this.quotaServer(raw.quota_server, sources),
      offsetOf: (path) => valueOffset(doc, path),
    };
    return config;
  }
}

/**
 * Builds the typed configuration from a value the schema accepted. Returns the config (undefined
 * when a check failed) and the diagnostics of those checks.
 */
export function buildConfig(
  file: SourceFile,
  doc: Document,
  value: Record<string, unknown>,
  listenModeText: string | undefined,
): { config?: Config; diagnostics: Diagnostic[] } {
  const builder = new Builder(file, doc);
  const config = builder.build(value, listenModeText);
  const failed = builder.diagnostics.some((d) => d.severity === "error");
  return failed ? { diagnostics: builder.diagnostics } : { config, diagnostics: builder.diagnostics };
}
