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
import { formatDuration, parseDuration, parseSize } from "../common/units.js";
import { AddressError, parseListenAddress } from "../milter/address.js";
import { keptOffsets } from "./kept-offsets.js";
import { locateScalar, MappedText, splitWords } from "./located-text.js";
import type {
  Config,
  FuseConfig,
  GreylistConfig,
  JournalConfig,
  LocatedText,
  OnError,
  QuotaLimit,
  RestartSettings,
  RuleSource,
  SourceBuildContext,
  SourceConfig,
  SourceConfigBase,
  SourceTypeSpec,
  StateConfig,
} from "./types.js";
import {
  findPair,
  keyOffset,
  locate,
  nodeStart,
  type PathSegment,
  resolve,
  valueOffset,
} from "./yaml-positions.js";

export const DEFAULT_ERROR_REPLY = "451 4.3.0 Temporary lookup failure, try again later";
export const DEFAULT_QUOTA_SERVER_LISTEN = "127.0.0.1:8025";
export const STATE_DEFAULTS = {
  keyPrefix: "filterctl:",
  timeoutMs: 200,
  onError: "continue" as OnError,
} as const;
export const GREYLIST_DEFAULTS: GreylistConfig = {
  delayMs: 5 * 60_000,
  retryWindowMs: 48 * 3_600_000,
  passTtlMs: 35 * 86_400_000,
};

/** `fuse:` values a rule or `defaults` leaves out (`max_rate` is required). */
export const FUSE_DEFAULTS = { windowMs: 10 * 60_000, minEvents: 200, cooldownMs: 60 * 60_000 };

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
  workers: 1,
} as const;

const MIN_BUFFERED_INPUT = 1024 * 1024;

export const PLACEHOLDERS = ["user", "domain", "address", "key"] as const;

type Raw = Record<string, unknown>;

export function record(value: unknown): Raw {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Raw) : {};
}

export function text(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function duration(value: unknown): number | undefined {
  return typeof value === "string" ? parseDuration(value) : undefined;
}

function size(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  return typeof value === "string" ? parseSize(value) : undefined;
}

/** Why a Redis URL (the schema checked its scheme) cannot be used, or undefined. */
function redisUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "not a valid URL (redis://HOST[:PORT][/DB])";
  }
  if (parsed.hostname === "") return "the URL names no host";
  const db = parsed.pathname.replace(/^\//, "");
  if (db !== "" && !/^\d{1,2}$/.test(db)) return `'/${db}' is not a database number (redis://HOST:PORT/0)`;
  if (parsed.search !== "" || parsed.hash !== "") return "a Redis URL takes no '?' or '#' part";
  return undefined;
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
    readonly sourceTypes: ReadonlyMap<string, SourceTypeSpec>,
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

  /** `fuse:` (the schema checked its shape): a rate strictly between 0% and 100%, periods of 1s or more. */
  fuse(raw: unknown, path: readonly PathSegment[]): FuseConfig | undefined {
    const fuse = record(raw);
    const rate = text(fuse.max_rate);
    if (rate === undefined || !/^[0-9]+(\.[0-9]+)?%$/.test(rate)) return undefined;
    const percent = Number(rate.slice(0, -1));
    if (percent <= 0 || percent >= 100) {
      this.error(
        valueOffset(this.doc, [...path, "max_rate"]),
        "'max_rate' must be more than 0% and less than 100%",
      );
    }
    return {
      maxRate: percent / 100,
      windowMs: this.atLeast(fuse.window, [...path, "window"], 1000, FUSE_DEFAULTS.windowMs),
      minEvents: typeof fuse.min_events === "number" ? fuse.min_events : FUSE_DEFAULTS.minEvents,
      cooldownMs: this.atLeast(fuse.cooldown, [...path, "cooldown"], 1000, FUSE_DEFAULTS.cooldownMs),
    };
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

  source(name: string, raw: Raw, defaults: Config["defaults"]): SourceConfig {
    const spec = this.sourceTypes.get(String(raw.type)) as SourceTypeSpec;
    const path = ["sources", name];
    const base: SourceConfigBase = {
      type: spec.type,
      kind: spec.kind,
      name,
      offset: keyOffset(this.doc, path),
      timeoutMs: this.atLeast(raw.timeout, [...path, "timeout"], 1, defaults.timeoutMs),
      onError: (text(raw.on_error) as OnError | undefined) ?? spec.onError ?? defaults.onError,
      cacheMs: duration(raw.cache),
      negativeCacheMs: duration(raw.negative_cache),
      recipientDelimiter: text(raw.recipient_delimiter),
      localPart: defaults.localPart,
    };
    // The union of SourceConfigs holds the built-in types; a type added at run time is one too.
    return spec.build(raw, base, new BuildContext(this, name)) as SourceConfig;
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

  rule(index: number, raw?: unknown): RuleSource {
    const path = ["rules", index];
    const node = this.node(path) ?? null;
    const offset = nodeStart(node) ?? valueOffset(this.doc, path);
    if (isScalar(node)) return { form: "text", index, offset, body: locateScalar(this.file.text, node) };
    const short = node === null ? undefined : this.shorthand(index, node);
    if (short !== undefined) return short;
    const field = (key: string) => this.ruleField(node, index, key) ?? this.located([...path, key]);
    const onNode = this.ruleEntry(node, "on");
    const on: LocatedText[] = isSeq(onNode)
      ? onNode.items.map((item, i) => {
          const found = resolve(this.doc, item);
          return isScalar(found) ? locateScalar(this.file.text, found) : this.located([...path, "on", i]);
        })
      : splitWords(field("on"));
    const rule: RuleSource = {
      form: "structured",
      index,
      offset,
      on,
      then: field("then"),
      mode: this.ruleField(node, index, "mode")?.text === "shadow" ? "shadow" : "enforce",
    };
    const name = this.ruleField(node, index, "name");
    if (name !== undefined) rule.name = name;
    const condition = this.ruleField(node, index, "if");
    if (condition !== undefined) rule.if = condition;
    const otherwise = this.ruleField(node, index, "else");
    if (otherwise !== undefined) rule.else = otherwise;
    const fuseRaw = record(raw).fuse;
    const fuse = fuseRaw === undefined ? undefined : this.fuse(fuseRaw, [...path, "fuse"]);
    if (fuse !== undefined) rule.fuse = fuse;
    return rule;
  }

  /**
   * A field's node, looked up in the rule's own mapping: walking from the top of the document
   * twice per field (node, then located) was a fifth of building 10,000 rules.
   */
  private ruleEntry(node: Node | null, key: string): Node | null | undefined {
    const pair = findPair(this.doc, node, key);
    return pair === undefined ? undefined : resolve(this.doc, pair.value);
  }

  /** A field of rule `index` where it is written; undefined when the rule has no such key. */
  private ruleField(node: Node | null, index: number, key: string): MappedText | undefined {
    const found = this.ruleEntry(node, key);
    if (found === undefined) return undefined;
    return isScalar(found) ? locateScalar(this.file.text, found) : this.located(["rules", index, key]);
  }

  rules(raw: unknown): RuleSource[] {
    if (!Array.isArray(raw)) return [];
    const rules = raw.map((item, index) => this.rule(index, item));
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
    const serving = [...this.sourceTypes.values()].filter((t) => t.servesQuota).map((t) => t.type);
    if (found === undefined) {
      const quotaSources = [...sources.values()].filter((s) => serving.includes(s.type));
      this.error(
        offset,
        `unknown source '${source}'`,
        suggest(
          source,
          quotaSources.map((s) => s.name),
        ) ??
          (quotaSources.length > 0
            ? `${serving.join(" and ")} sources: ${quotaSources.map((s) => s.name).join(", ")}`
            : undefined),
      );
    } else if (!serving.includes(found.type)) {
      this.error(
        offset,
        `the quota server needs a ${serving.join(" or ")} source; '${source}' is of type ${found.type}`,
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

  /** `state:`; the schema checked each key's form, this what they mean together. */
  state(raw: unknown): StateConfig {
    const state = record(raw);
    const at = (key: string) => valueOffset(this.doc, ["state", key]);
    const common = {
      onError: (text(state.on_error) as OnError | undefined) ?? STATE_DEFAULTS.onError,
      timeoutMs: this.atLeast(state.timeout, ["state", "timeout"], 1, STATE_DEFAULTS.timeoutMs),
    };
    const redisOnly = ["url", "urls", "sentinel", "cluster", "key_prefix"].filter((k) => k in state);
    if (state.type !== "redis") {
      for (const key of redisOnly) {
        this.error(
          keyOffset(this.doc, ["state", key]),
          `'${key}' is an option of 'type: redis' state`,
          "add 'type: redis' to keep the state on a Redis server",
        );
      }
      return { type: "memory", ...common };
    }
    const urls = this.redisUrls(state);
    if (state.sentinel !== undefined && state.cluster === true) {
      this.error(
        at("cluster"),
        "state sets both 'sentinel' and 'cluster: true'",
        "a Redis is reached through Sentinel or is a Cluster, not both",
      );
    } else if (urls.length > 1 && state.sentinel === undefined && state.cluster !== true) {
      this.error(
        keyOffset(this.doc, ["state", "urls"]),
        `state lists ${urls.length} urls for one Redis server`,
        "several urls are the Sentinels (with 'sentinel: NAME') or a Cluster's nodes (with 'cluster: true'); one server is 'url'",
      );
    }
    const config: StateConfig = {
      type: "redis",
      urls: urls.map((u) => u.url),
      keyPrefix: text(state.key_prefix) ?? STATE_DEFAULTS.keyPrefix,
      ...common,
    };
    if (typeof state.sentinel === "string") config.sentinel = state.sentinel;
    if (state.cluster === true) config.cluster = true;
    return config;
  }

  /** `url` or `urls`, each with its offset; errors at the one that cannot be used. */
  private redisUrls(state: Raw): { url: string; offset: number }[] {
    const urls =
      typeof state.url === "string"
        ? [{ url: state.url, offset: valueOffset(this.doc, ["state", "url"]) }]
        : (Array.isArray(state.urls) ? state.urls : []).map((url, i) => ({
            url: String(url),
            offset: valueOffset(this.doc, ["state", "urls", i]),
          }));
    if ("url" in state && "urls" in state) {
      this.error(keyOffset(this.doc, ["state", "urls"]), "state sets both 'url' and 'urls'", "keep only one");
    } else if (urls.length === 0) {
      this.error(keyOffset(this.doc, ["state", "type"]), "'type: redis' state needs 'url' (or 'urls')");
    }
    for (const { url, offset } of urls) {
      const problem = redisUrlProblem(url);
      if (problem !== undefined) this.error(offset, `'${url}': ${problem}`);
    }
    return urls;
  }

  /** `greylist:`: a retry window no longer than the delay would never let a triplet pass. */
  greylist(raw: unknown): GreylistConfig {
    const greylist = record(raw);
    const setting = (key: string, fallback: number) =>
      this.atLeast(greylist[key], ["greylist", key], 1, fallback);
    const settings: GreylistConfig = {
      delayMs: setting("delay", GREYLIST_DEFAULTS.delayMs),
      retryWindowMs: setting("retry_window", GREYLIST_DEFAULTS.retryWindowMs),
      passTtlMs: setting("pass_ttl", GREYLIST_DEFAULTS.passTtlMs),
    };
    if (settings.retryWindowMs <= settings.delayMs) {
      const key = "retry_window" in greylist ? "retry_window" : "delay";
      this.error(
        valueOffset(this.doc, ["greylist", key]),
        `'retry_window' (${formatDuration(settings.retryWindowMs)}) must be longer than 'delay' (${formatDuration(settings.delayMs)})`,
        "a retry must be able to come after the delay and within the window",
      );
    }
    return settings;
  }

  /** What only a restart applies (RestartSettings); the rest of build() is what a reload applies. */
  restartSettings(raw: Raw, listenModeText: string | undefined): RestartSettings {
    return {
      listen: this.listen(raw),
      listenMode: this.listenMode(listenModeText),
      maxConnections: typeof raw.max_connections === "number" ? raw.max_connections : DEFAULTS.maxConnections,
      maxBufferedInput: this.bufferedInput(raw.max_buffered_input),
      workers: typeof raw.workers === "number" || raw.workers === "auto" ? raw.workers : DEFAULTS.workers,
    };
  }

  /** Workers with `state: memory` each keep their own counts: a rate limit is then per worker. */
  workersWithMemoryState(workers: number | "auto", state: StateConfig): void {
    if (workers === 1 || state.type !== "memory") return;
    this.warning(
      valueOffset(this.doc, ["workers"]),
      `with 'workers: ${workers}' and 'state: memory' each worker counts rate() and greylist() alone`,
      "use 'state: redis' so that the workers share their counts",
    );
  }

  build(raw: Raw, listenModeText: string | undefined): Config {
    const rawDefaults = record(raw.defaults);
    const defaults: Config["defaults"] = {
      onError: (text(rawDefaults.on_error) as OnError | undefined) ?? DEFAULTS.onError,
      errorReply: text(rawDefaults.error_reply) ?? DEFAULTS.errorReply,
      timeoutMs: this.atLeast(rawDefaults.timeout, ["defaults", "timeout"], 1, DEFAULTS.timeoutMs),
      localPart: (text(rawDefaults.local_part) as LocalPartMode | undefined) ?? DEFAULTS.localPart,
    };
    const fuse = this.fuse(rawDefaults.fuse, ["defaults", "fuse"]);
    if (fuse !== undefined) defaults.fuse = fuse;
    const sources = new Map<string, SourceConfig>();
    for (const [name, value] of Object.entries(record(raw.sources))) {
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
      sourceTypes: this.sourceTypes,
      sources,
      rules: this.rules(raw.rules),
      quotaServer: this.quotaServer(raw.quota_server, sources),
      state: this.state(raw.state),
      greylist: this.greylist(raw.greylist),
      // Last: it takes the rules' nodes out of the document, which nothing below reads.
      offsetOf: keptOffsets(doc),
    };
    const journal = this.journal(raw.journal);
    if (journal !== undefined) config.journal = journal;
    if ("workers" in raw) this.workersWithMemoryState(config.workers, config.state);
    return config;
  }

  journal(raw: unknown): JournalConfig | undefined {
    if (raw === undefined) return undefined;
    const journal = record(raw);
    const maxSize = size(journal.max_size) ?? 100 * 1000 * 1000;
    if (maxSize < 1000) {
      this.error(valueOffset(this.doc, ["journal", "max_size"]), "'max_size' must be at least 1KB");
    }
    return {
      path: resolvePath(dirname(this.file.path), String(journal.path)),
      maxSizeBytes: maxSize,
      keep: typeof journal.keep === "number" ? journal.keep : 5,
    };
  }
}

/** What a source type's `build` sees: the builder, with paths under `sources.NAME`. */
class BuildContext implements SourceBuildContext {
  readonly configPath: string;

  constructor(
    private readonly builder: Builder,
    readonly name: string,
  ) {
    this.configPath = builder.file.path;
  }

  private path(path: readonly PathSegment[]): PathSegment[] {
    return ["sources", this.name, ...path];
  }

  private at(at: readonly PathSegment[] | number): number {
    return typeof at === "number" ? at : this.offsetOf(at);
  }

  error(at: readonly PathSegment[] | number, message: string, hint?: string): void {
    this.builder.error(this.at(at), message, hint);
  }

  warning(at: readonly PathSegment[] | number, message: string, hint?: string): void {
    this.builder.warning(this.at(at), message, hint);
  }

  offsetOf(path: readonly PathSegment[]): number {
    return valueOffset(this.builder.doc, this.path(path));
  }

  located(path: readonly PathSegment[]): LocatedText {
    return this.builder.located(this.path(path));
  }

  placeholders(path: readonly PathSegment[], what: string): LocatedText {
    return this.builder.checkPlaceholders(this.path(path), what);
  }

  duration(value: unknown, path: readonly PathSegment[], minMs: number, fallback: number): number {
    return this.builder.atLeast(value, this.path(path), minMs, fallback);
  }

  quota(raw: unknown): QuotaLimit | undefined {
    return this.builder.quota(raw);
  }

  resolveFile(name: string): string {
    return resolvePath(dirname(this.configPath), name);
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
  sourceTypes: ReadonlyMap<string, SourceTypeSpec>,
): { config?: Config; diagnostics: Diagnostic[] } {
  const builder = new Builder(file, doc, sourceTypes);
  const config = builder.build(value, listenModeText);
  const failed = builder.diagnostics.some((d) => d.severity === "error");
  return failed ? { diagnostics: builder.diagnostics } : { config, diagnostics: builder.diagnostics };
}
