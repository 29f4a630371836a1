/**
 * DNS block lists (SPEC "DNSBL health"): lookups by IP (IPv4, IPv6 nibbles, IPv4-mapped as IPv4)
 * or by domain (RHSBL), strict classification of every A record, and a circuit breaker fed by
 * RFC 5782 test-point probes and by the share of listed answers.
 *
 * State machine (one per list):
 * - `unknown` until the first probe round completes; that first round decides at once (to
 *   `healthy` or to the failed state it saw), so a list that is dead from the start is reported
 *   dead, and a good list is used without waiting for three rounds.
 * - From `healthy`, one failed round only raises suspicion (logged): the list stays in use and is
 *   probed again after `retryMs` (default: the interval, at most 15 s); a second consecutive
 *   failed round switches it off, in the state that round saw.
 * - A list that is off comes back after three consecutive healthy rounds (at the normal
 *   interval). A failed round of another kind while off changes the state at once (both are off).
 * - A round fails as `lists-everything` when a must-not-be-listed probe is listed (any A record in
 *   127/8, whatever `codes` says), as `refused` when a probe got an operator's error code or an
 *   answer outside 127/8, and as `dead` when probes got no answer or the positive test point is
 *   not listed (unless `require_positive_probe: false`).
 *
 * Key families: which test points a round asks depends on what the list is used for. Until the
 * first lookup, a round probes the IPv4 and the domain test points and the list is healthy when
 * either family answers correctly (so a DBL, which answers 127.0.1.255 to IP queries, and a
 * plain IP list are both recognised). Once used, a round probes the families used (IPv4, IPv6
 * from the first IPv6 key, domains from the first domain key). A family whose test points fail
 * while another family passes is off on its own (e.g. IPv6 keys on a list without IPv6 data),
 * with a warning; a must-not-be-listed probe listed in any family fails the whole round.
 */
import { promises as dnsPromises } from "node:dns";
import { isIPv4, isIPv6 } from "node:net";
import { domainToASCII } from "node:url";
import { LRUCache } from "lru-cache";
import { withDeadline } from "../common/deadline.js";
import type { SourceConfigBase } from "../config/types.js";
import type { DnsblAnswer } from "../runtime/lookups.js";
import type { DnsblHealth, DnsblSource, DnsblState, SourceContext } from "./types.js";

export interface DnsblHealthConfig {
  intervalMs: number;
  window: number;
  maxListedRatio: number;
  requirePositiveProbe: boolean;
}
export interface DnsblSourceConfig extends SourceConfigBase {
  type: "dnsbl";
  zone: string;
  /** Answers that count as listed, e.g. ["127.0.0.2-127.0.0.11", "127.0.0.4"]; undefined = any in 127/8 but error codes. */
  codes?: string[];
  health: DnsblHealthConfig;
}

export type KeyFamily = "ip4" | "ip6" | "domain";
const FAMILIES: readonly KeyFamily[] = ["ip4", "ip6", "domain"];
const FAMILY_NAMES: Record<KeyFamily, string> = { ip4: "IPv4", ip6: "IPv6", domain: "domain" };

/** The two DNS calls a list needs (node:dns's promise Resolver has them); tests inject fakes. */
export interface DnsblResolver {
  resolve4(name: string): Promise<string[]>;
  resolveTxt(name: string): Promise<string[][]>;
  cancel(): void;
}

export interface DnsblSourceOptions {
  /** Clock for `since` and the extra-round rate limit (default Date.now). */
  now?: () => number;
  /** For the random documentation-range probe (default Math.random). */
  random?: () => number;
  /** DNS access (default: a node:dns Resolver on ctx.dnsServers with the source's timeout). */
  resolver?: DnsblResolver;
  /** Delay before the confirming round after a healthy list's first failed round (default min(interval, 15 s)). */
  retryMs?: number;
  /** At most one extra round (hit rate, error answers, failing lookups) per this many ms (default 30 s). */
  extraRoundMinIntervalMs?: number;
  /** What the list will be used for, when known in advance (else learnt from lookups). */
  keyKinds?: readonly KeyFamily[];
}

const MAX_REASON_LENGTH = 200;
const DEFAULT_RETRY_CAP_MS = 15_000;
const DEFAULT_EXTRA_ROUND_MIN_INTERVAL_MS = 30_000;
const HEALTHY_ROUNDS_TO_RECOVER = 3;
const FAILED_ROUNDS_TO_TRIP = 2;

// ---------------------------------------------------------------------------------------------
// Query names

export interface DnsblQuery {
  family: KeyFamily;
  /** The name asked, without trailing dot. */
  name: string;
  /** The key as queried (IPv4 dotted quad, expanded IPv6, lower-case A-label domain). */
  key: string;
}

function ip4Octets(ip: string): number[] | undefined {
  if (!isIPv4(ip)) return undefined;
  return ip.split(".").map(Number);
}

/** The eight 16-bit groups of an IPv6 address (with an embedded IPv4 tail), or undefined. */
export function ip6Groups(address: string): number[] | undefined {
  const percent = address.indexOf("%");
  const ip = percent >= 0 ? address.slice(0, percent) : address;
  if (!isIPv6(ip)) return undefined;
  let text = ip;
  const tail: number[] = [];
  const lastColon = ip.lastIndexOf(":");
  const v4 = ip4Octets(ip.slice(lastColon + 1));
  if (v4 !== undefined) {
    const [a, b, c, d] = v4 as [number, number, number, number];
    tail.push((a << 8) | b, (c << 8) | d);
    // "::ffff:1.2.3.4" → "::ffff"; "::1.2.3.4" → "::".
    text = ip.slice(0, lastColon + 1);
    if (!text.endsWith("::")) text = text.slice(0, -1);
  }
  const parse = (part: string): number[] =>
    part === "" ? [] : part.split(":").map((g) => Number.parseInt(g, 16));
  const wanted = 8 - tail.length;
  let groups: number[];
  const doubleColon = text.indexOf("::");
  if (doubleColon >= 0) {
    const head = parse(text.slice(0, doubleColon));
    const rest = parse(text.slice(doubleColon + 2));
    const zeros = wanted - head.length - rest.length;
    if (zeros < 0) return undefined;
    groups = [...head, ...new Array<number>(zeros).fill(0), ...rest];
  } else {
    groups = parse(text);
  }
  groups.push(...tail);
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff)
    ? groups
    : undefined;
}

/** `ip` in reversed-octet form: 192.0.2.5 → 5.2.0.192. */
export function reverseIp4(ip: string): string {
  const octets = ip4Octets(ip);
  if (octets === undefined) throw new Error(`'${ip}' is not an IPv4 address`);
  return octets.reverse().join(".");
}

/** `ip` as 32 reversed nibbles: ::ffff:7f00:2 → 2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0. */
export function ip6Nibbles(ip: string): string {
  const groups = ip6Groups(ip);
  if (groups === undefined) throw new Error(`'${ip}' is not an IPv6 address`);
  const hex = groups.map((g) => g.toString(16).padStart(4, "0")).join("");
  return [...hex].reverse().join(".");
}

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** Strips what MTAs wrap client addresses in: `IPv6:` prefixes, brackets, zone ids. */
function unwrapAddress(key: string): string {
  let k = key.trim();
  if (k.startsWith("[") && k.endsWith("]")) k = k.slice(1, -1);
  if (/^ipv6:/i.test(k)) k = k.slice(5);
  const percent = k.indexOf("%");
  if (percent > 0 && isIPv6(k.slice(0, percent))) k = k.slice(0, percent);
  return k;
}

/**
 * The name to ask for `key` in `zone`, or undefined when the key cannot be asked (empty,
 * characters invalid in DNS names, a single label, a numeric last label, too long): such keys
 * are not listed, and no query is made.
 */
export function dnsblQueryName(key: string, zone: string): DnsblQuery | undefined {
  const z = zone.toLowerCase().replace(/\.$/, "");
  const k = unwrapAddress(key);
  if (isIPv4(k)) return { family: "ip4", name: `${reverseIp4(k)}.${z}`, key: k };
  const groups = ip6Groups(k);
  if (groups !== undefined) {
    const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
    if (mapped) {
      const g6 = groups[6] as number;
      const g7 = groups[7] as number;
      const v4 = `${g6 >> 8}.${g6 & 0xff}.${g7 >> 8}.${g7 & 0xff}`;
      return { family: "ip4", name: `${reverseIp4(v4)}.${z}`, key: v4 };
    }
    const expanded = groups.map((g) => g.toString(16).padStart(4, "0")).join(":");
    return { family: "ip6", name: `${ip6Nibbles(k)}.${z}`, key: expanded };
  }
  let domain = key.trim().toLowerCase();
  if (domain.endsWith(".")) domain = domain.slice(0, -1);
  if (domain === "") return undefined;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: testing for non-ASCII on purpose
  if (/[^\x00-\x7f]/.test(domain)) {
    domain = domainToASCII(domain);
    if (domain === "") return undefined;
  }
  const labels = domain.split(".");
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l))) return undefined;
  if (/^\d+$/.test(labels[labels.length - 1] as string)) return undefined;
  const name = `${domain}.${z}`;
  if (name.length > 253) return undefined;
  return { family: "domain", name, key: domain };
}

// ---------------------------------------------------------------------------------------------
// Answers

interface CodeRange {
  from: number;
  to: number;
}

function ip4Number(ip: string): number | undefined {
  const octets = ip4Octets(ip);
  return octets?.reduce((n, o) => n * 256 + o, 0);
}

const LOOPBACK_FROM = ip4Number("127.0.0.0") as number;
const LOOPBACK_TO = ip4Number("127.255.255.255") as number;

/** Parses `codes` ("127.0.0.2", "127.0.0.2-127.0.0.11", "127.0.0.0/24"); throws on a bad entry. */
export function parseCodes(codes: readonly string[]): CodeRange[] {
  return codes.map((code) => {
    const text = code.trim();
    const slash = /^([\d.]+)\/(\d{1,2})$/.exec(text);
    if (slash !== null) {
      const base = ip4Number(slash[1] as string);
      const bits = Number(slash[2]);
      if (base === undefined || bits > 32)
        throw new Error(`codes: '${code}' is not an IPv4 address or range`);
      const size = 2 ** (32 - bits);
      const from = base - (base % size);
      return { from, to: from + size - 1 };
    }
    const [a, b, extra] = text.split("-").map((s) => s.trim());
    const from = ip4Number(a ?? "");
    const to = b === undefined ? from : ip4Number(b);
    if (from === undefined || to === undefined || extra !== undefined || to < from) {
      throw new Error(`codes: '${code}' is not an IPv4 address or range`);
    }
    return { from, to };
  });
}

const inRanges = (n: number, ranges: readonly CodeRange[]): boolean =>
  ranges.some((r) => n >= r.from && n <= r.to);

/** Why an answer is an error and not a listing, for the postmaster. */
export function errorCodeMeaning(value: string): string | undefined {
  const n = ip4Number(value);
  if (n === undefined) return "not an IPv4 address";
  if (n < LOOPBACK_FROM || n > LOOPBACK_TO) {
    return "outside 127.0.0.0/8, typical of an expired or parked domain with a wildcard";
  }
  if (value === "127.255.255.252") return "Spamhaus error code: typing error in the zone name";
  if (value === "127.255.255.254") {
    return "Spamhaus error code: query through a public or open resolver, or one with generic reverse DNS";
  }
  if (value === "127.255.255.255") return "Spamhaus error code: too many queries";
  if (value.startsWith("127.255.255.")) return "Spamhaus error code (127.255.255.0/24)";
  if (value === "127.0.1.255") return "Spamhaus DBL error code: an IP address was queried in a domain list";
  if (value === "127.0.0.1") {
    return "127.0.0.1 is not a listing code; lists such as URIBL answer it to refuse queries";
  }
  return undefined;
}

export type AnswerClass =
  /** `codes`: the A records that count as listed; `other`: 127/8 answers outside `codes`. */
  | { kind: "listed"; codes: string[]; other: string[] }
  | { kind: "not-listed"; other: string[] }
  | { kind: "error"; value: string; meaning: string };

/**
 * Classifies the A records of one answer. Any record outside 127/8 or in the error set
 * (127.255.255.0/24, 127.0.1.255, and 127.0.0.1 unless `codes` names it) makes the whole answer
 * an error, never a listing. Otherwise the records inside `codes` (all, when no codes) are the
 * listing; an empty answer is not listed.
 */
export function classifyAnswer(
  addresses: readonly string[],
  codes: readonly CodeRange[] | undefined,
): AnswerClass {
  for (const value of addresses) {
    const n = ip4Number(value);
    if (n !== undefined && codes !== undefined && value === "127.0.0.1" && inRanges(n, codes)) continue;
    const meaning = errorCodeMeaning(value);
    if (meaning !== undefined) return { kind: "error", value, meaning };
  }
  const listed =
    codes === undefined ? [...addresses] : addresses.filter((a) => inRanges(ip4Number(a) as number, codes));
  const other = addresses.filter((a) => !listed.includes(a));
  return listed.length > 0 ? { kind: "listed", codes: listed, other } : { kind: "not-listed", other };
}

/** A records in numeric order, each once: DNS servers rotate them, a rule's `{NAME.codes}` should not. */
export function sortedCodes(addresses: readonly string[]): string[] {
  const unique = [...new Set(addresses)];
  return unique.sort((a, b) => (ip4Number(a) ?? 0) - (ip4Number(b) ?? 0));
}

/** TXT records as one line fit for an SMTP reply: chunks joined, control characters and non-ASCII removed, ≤ 200 chars. */
export function cleanReason(records: readonly (readonly string[])[]): string | undefined {
  const text = records
    .map((chunks) => chunks.join(""))
    // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters on purpose
    .map((r) => r.replace(/[\x00-\x1f\x7f]+/g, " ").replace(/[^\x20-\x7e]/g, "?"))
    .map((r) => r.replace(/\s+/g, " ").trim())
    .filter((r) => r !== "")
    .join("; ");
  if (text === "") return undefined;
  return text.length > MAX_REASON_LENGTH ? `${text.slice(0, MAX_REASON_LENGTH - 3)}...` : text;
}

// ---------------------------------------------------------------------------------------------
// DNS calls with a hard deadline

class DnsFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function dnsCode(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" ? code : "EUNKNOWN";
}

const ABSENT_CODES = new Set(["ENOTFOUND", "ENODATA"]);

function describeDnsCode(code: string, timeoutMs: number): string {
  switch (code) {
    case "ETIMEOUT":
    case "EDEADLINE":
      return `no answer within ${timeoutMs} ms`;
    case "ESERVFAIL":
      return "SERVFAIL";
    case "EREFUSED":
      return "the DNS server refused the query (REFUSED)";
    case "ECONNREFUSED":
      return "connection refused: nothing answers DNS at that address";
    case "ECANCELLED":
      return "query cancelled";
    default:
      return code;
  }
}

/** `work` within `ms`; its failure, the deadline and the caller's abort as DnsFailures. */
function dnsWithin<T>(work: Promise<T>, ms: number, signal?: AbortSignal): Promise<T> {
  const failure = (code: string) => new DnsFailure(code, describeDnsCode(code, ms));
  return withDeadline(
    work.catch((error: unknown) => {
      throw failure(dnsCode(error));
    }),
    {
      ms,
      signal,
      onTimeout: () => {
        throw failure("EDEADLINE");
      },
      onAbort: () => failure("ECANCELLED"),
    },
  );
}

function defaultResolver(timeoutMs: number, servers: readonly string[] | undefined): DnsblResolver {
  // c-ares doubles the per-try timeout on the second try: t + 2t ≈ the source's timeout.
  const resolver = new dnsPromises.Resolver({ timeout: Math.max(50, Math.floor(timeoutMs / 3)), tries: 2 });
  if (servers !== undefined && servers.length > 0) resolver.setServers([...servers]);
  return resolver;
}

// ---------------------------------------------------------------------------------------------
// Probes

interface ProbeSpec {
  family: KeyFamily;
  /** What the postmaster reads: 127.0.0.1, ::FFFF:7F00:2, TEST. */
  label: string;
  name: string;
  expect: "listed" | "absent";
}

type ProbeOutcome =
  | { kind: "listed"; values: string[] }
  | { kind: "absent" }
  | { kind: "error"; value: string; meaning: string }
  | { kind: "failed"; message: string };

type Verdict = "pass" | "lists-everything" | "refused" | "dead";

interface FamilyResult {
  family: KeyFamily;
  verdict: Verdict;
  /** For failures: what was seen and what to do. */
  detail: string;
  /** Sort key among failures: higher is reported first. */
  rank: number;
  passed: string[];
}

interface RoundResult {
  state: Exclude<DnsblState, "unknown">;
  detail: string;
  probed: Set<KeyFamily>;
  usable: Set<KeyFamily>;
  families: FamilyResult[];
}

const DOC_RANGES = ["192.0.2", "198.51.100", "203.0.113"] as const;

const OFF = "It is switched off: it blocks nothing until it answers correctly again.";

// ---------------------------------------------------------------------------------------------
// The source

class DnsblList implements DnsblSource {
  readonly kind = "dnsbl" as const;
  readonly zone: string;
  onStateChange?: (health: DnsblHealth, previous: DnsblHealth) => void;

  private readonly codes: CodeRange[] | undefined;
  private readonly resolver: DnsblResolver;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly retryMs: number;
  private readonly extraMinMs: number;
  private readonly servers: string;

  private current: DnsblHealth;
  private failedRounds = 0;
  private healthyRounds = 0;
  private readonly used = new Set<KeyFamily>();
  private usable = new Set<KeyFamily>();
  private probed = new Set<KeyFamily>();
  /** Used families reported unusable while healthy (to log only changes). */
  private offFamiliesNote = "";
  private inFlight: Promise<DnsblHealth> | undefined;
  private pending = false;
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  private closed = false;
  private lastExtraAt = Number.NEGATIVE_INFINITY;
  /** Recent distinct keys → listed; whatever leaves the window is uncounted (dispose). */
  private readonly recent: LRUCache<string, boolean>;
  private recentListed = 0;

  constructor(
    private readonly config: DnsblSourceConfig,
    private readonly ctx: SourceContext,
    options: DnsblSourceOptions,
  ) {
    this.zone = config.zone.toLowerCase().replace(/\.$/, "");
    this.codes = config.codes === undefined ? undefined : parseCodes(config.codes);
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.resolver = options.resolver ?? defaultResolver(config.timeoutMs, ctx.dnsServers);
    this.retryMs = options.retryMs ?? Math.min(config.health.intervalMs, DEFAULT_RETRY_CAP_MS);
    this.recent = new LRUCache({
      max: Math.max(1, config.health.window),
      dispose: (wasListed) => {
        if (wasListed) this.recentListed--;
      },
    });
    this.extraMinMs = options.extraRoundMinIntervalMs ?? DEFAULT_EXTRA_ROUND_MIN_INTERVAL_MS;
    for (const kind of options.keyKinds ?? []) this.used.add(kind);
    this.servers =
      ctx.dnsServers !== undefined && ctx.dnsServers.length > 0
        ? ctx.dnsServers.join(", ")
        : "the system resolver";
    this.current = {
      state: "unknown",
      detail: `${this.zone} has not been probed yet: it is off until its first probe round completes.`,
      since: this.now(),
    };
  }

  health(): DnsblHealth {
    return { ...this.current };
  }

  // --- lookups -------------------------------------------------------------------------------

  async lookup(key: string, signal: AbortSignal): Promise<DnsblAnswer> {
    const query = dnsblQueryName(key, this.zone);
    if (query === undefined || this.closed) return { listed: false };
    this.noteFamily(query.family);
    if (this.current.state !== "healthy" || !this.usable.has(query.family)) return { listed: false };
    let addresses: string[];
    try {
      addresses = await this.resolveA(query.name, signal);
    } catch (error) {
      this.requestExtraRound("lookup-error", `${query.name}: ${(error as Error).message}`);
      throw new Error(`${this.zone}: ${query.name}: ${(error as Error).message}`);
    }
    const answer = classifyAnswer(addresses, this.codes);
    if (answer.kind === "error") {
      this.requestExtraRound(
        "error-answer",
        `${this.zone} answered ${answer.value} for ${query.key} (${answer.meaning})`,
      );
      return { listed: false };
    }
    // The list may have been switched off while the query was out.
    if (this.current.state !== "healthy") return { listed: false };
    this.remember(query.name, answer.kind === "listed");
    if (answer.kind !== "listed") return { listed: false };
    const codes = sortedCodes(answer.codes);
    const result: DnsblAnswer = { listed: true, code: codes[0] as string, codes };
    try {
      const reason = cleanReason(
        await dnsWithin(this.resolver.resolveTxt(query.name), this.config.timeoutMs, signal),
      );
      if (reason !== undefined) result.reason = reason;
    } catch {
      // The reason is optional: a listing without one is still a listing.
    }
    return result;
  }

  private async resolveA(name: string, signal?: AbortSignal): Promise<string[]> {
    try {
      return await dnsWithin(this.resolver.resolve4(name), this.config.timeoutMs, signal);
    } catch (error) {
      if (error instanceof DnsFailure && ABSENT_CODES.has(error.code)) return [];
      throw error;
    }
  }

  private noteFamily(family: KeyFamily): void {
    if (this.used.has(family)) return;
    this.used.add(family);
    // Test points of a family not probed yet are asked at once (after a round in flight, which
    // checks for missing families when it ends); until then its keys are not looked up.
    if (!this.probed.has(family) && this.inFlight === undefined) this.requestRound();
  }

  private remember(name: string, listed: boolean): void {
    // Deleted first: setting an equal value would not dispose (uncount) the previous one.
    this.recent.delete(name);
    this.recent.set(name, listed);
    if (listed) this.recentListed++;
    const window = this.recent.max;
    const ratio = this.recentListed / this.recent.size;
    if (this.recent.size >= window && ratio > this.config.health.maxListedRatio) {
      this.requestExtraRound(
        "hit-rate",
        `${this.recentListed} of the last ${this.recent.size} distinct lookups in ${this.zone} were listed (more than ${Math.round(this.config.health.maxListedRatio * 100)}%)`,
      );
    }
  }

  private clearWindow(): void {
    this.recent.clear();
    this.recentListed = 0;
  }

  // --- rounds and scheduling -----------------------------------------------------------------

  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    void this.runRound();
  }

  probe(): Promise<DnsblHealth> {
    return this.runRound();
  }

  private requestRound(): void {
    if (!this.started || this.closed) return;
    if (this.inFlight !== undefined) this.pending = true;
    else void this.runRound();
  }

  /** An extra round because live answers look wrong; rate-limited. */
  private requestExtraRound(reason: string, what: string): void {
    if (!this.started || this.closed) return;
    const now = this.now();
    if (now - this.lastExtraAt < this.extraMinMs) return;
    this.lastExtraAt = now;
    this.ctx.logger.warn(
      { source: this.config.name, zone: this.zone, reason },
      `${what}: probing ${this.zone} now to check it still answers correctly.`,
    );
    this.requestRound();
  }

  private runRound(): Promise<DnsblHealth> {
    if (this.inFlight !== undefined) return this.inFlight;
    let ok = false;
    const round = (async () => {
      try {
        const result = await this.probeRound();
        if (!this.closed) this.apply(result);
        ok = true;
      } catch (error) {
        this.ctx.logger.error(
          { source: this.config.name, zone: this.zone, err: String(error) },
          `probing ${this.zone} failed unexpectedly`,
        );
      }
      return this.health();
    })();
    this.inFlight = round;
    void round.finally(() => {
      this.inFlight = undefined;
      if (this.closed || !this.started) return;
      const missing = ok && [...this.used].some((f) => !this.probed.has(f));
      if (this.pending || missing) {
        this.pending = false;
        void this.runRound();
      } else {
        this.schedule();
      }
    });
    return round;
  }

  private schedule(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    const suspect = this.current.state === "healthy" && this.failedRounds > 0;
    const delay = suspect ? this.retryMs : this.config.health.intervalMs;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.runRound();
    }, delay);
    this.timer.unref();
  }

  private probesFor(family: KeyFamily): ProbeSpec[] {
    const z = this.zone;
    switch (family) {
      case "ip4": {
        const range = DOC_RANGES[Math.min(2, Math.floor(this.random() * 3))] as string;
        const doc = `${range}.${1 + Math.min(253, Math.floor(this.random() * 254))}`;
        return [
          { family, label: "127.0.0.1", name: `1.0.0.127.${z}`, expect: "absent" },
          { family, label: doc, name: `${reverseIp4(doc)}.${z}`, expect: "absent" },
          { family, label: "127.0.0.2", name: `2.0.0.127.${z}`, expect: "listed" },
        ];
      }
      case "ip6":
        return [
          { family, label: "::FFFF:7F00:1", name: `${ip6Nibbles("::ffff:7f00:1")}.${z}`, expect: "absent" },
          { family, label: "::FFFF:7F00:2", name: `${ip6Nibbles("::ffff:7f00:2")}.${z}`, expect: "listed" },
        ];
      case "domain":
        return [
          { family, label: "INVALID", name: `invalid.${z}`, expect: "absent" },
          { family, label: "TEST", name: `test.${z}`, expect: "listed" },
        ];
    }
  }

  private async ask(spec: ProbeSpec): Promise<ProbeOutcome> {
    let addresses: string[];
    try {
      addresses = await this.resolveA(spec.name);
    } catch (error) {
      return { kind: "failed", message: (error as Error).message };
    }
    if (addresses.length === 0) return { kind: "absent" };
    // Test points are judged without `codes`: any 127/8 answer is a listing (or an error code).
    const answer = classifyAnswer(addresses, undefined);
    if (answer.kind === "error") return { kind: "error", value: answer.value, meaning: answer.meaning };
    return { kind: "listed", values: addresses };
  }

  private judge(family: KeyFamily, probes: { spec: ProbeSpec; outcome: ProbeOutcome }[]): FamilyResult {
    const z = this.zone;
    const failures: FamilyResult[] = [];
    const passed: string[] = [];
    for (const { spec, outcome } of probes) {
      const fail = (verdict: Verdict, rank: number, detail: string) =>
        failures.push({ family, verdict, rank, detail, passed });
      if (outcome.kind === "failed") {
        fail(
          "dead",
          2,
          `${z} does not answer (${outcome.message} for ${spec.label}, asking ${this.servers}). ${OFF} Check dns.servers and that the resolver reaches the list's servers; remove the list from rules.yaml if it was shut down.`,
        );
      } else if (outcome.kind === "error") {
        const advice =
          outcome.value === "127.0.1.255"
            ? "Use this list for domains only (e.g. from.domain), not for IP addresses."
            : outcome.value.startsWith("127.255.255.")
              ? "Query it through your own recursive resolver (dns.servers), not a public one, or use Spamhaus DQS; check the zone name."
              : "Remove it from rules.yaml if the list is gone, or query it through a resolver the operator accepts.";
        fail(
          "refused",
          outcome.value === "127.0.1.255" ? 1 : 3,
          `${z} answers ${outcome.value} for ${spec.label} (${outcome.meaning}): that is an error, not a listing, so the list refuses us or is gone. ${OFF} ${advice}`,
        );
      } else if (spec.expect === "absent" && outcome.kind === "listed") {
        fail(
          "lists-everything",
          4,
          `${z} answers 'listed' (${outcome.values.join(", ")}) for ${spec.label}, which no list may list: the list lists everything (like ORDB in 2008). ${OFF} Remove it from rules.yaml if it was shut down.`,
        );
      } else if (spec.expect === "listed" && outcome.kind === "absent") {
        if (this.config.health.requirePositiveProbe) {
          fail(
            "dead",
            2,
            `${z} does not list its test point ${spec.label} (RFC 5782), asking ${this.servers}: the resolver answers NXDOMAIN for it, or the list is empty, shut down, or not a${family === "domain" ? " domain" : family === "ip6" ? "n IPv6" : "n IP"} list. ${OFF} First check the resolver: dns.servers, and that it reaches the list's servers (a resolver that cannot, or that a list refuses, may answer NXDOMAIN for everything). Then remove the list from rules.yaml if it was shut down, or set health.require_positive_probe: false if it does not publish the test point.`,
          );
        }
      } else {
        passed.push(`${spec.label} ${spec.expect === "listed" ? "listed" : "not listed"}`);
      }
    }
    failures.sort((a, b) => b.rank - a.rank);
    return failures[0] ?? { family, verdict: "pass", rank: 0, detail: "", passed };
  }

  private async probeRound(): Promise<RoundResult> {
    const families =
      this.used.size > 0 ? FAMILIES.filter((f) => this.used.has(f)) : (["ip4", "domain"] as const);
    const specs = families.flatMap((f) => this.probesFor(f));
    const outcomes = await Promise.all(specs.map(async (spec) => ({ spec, outcome: await this.ask(spec) })));
    const results = families.map((family) =>
      this.judge(
        family,
        outcomes.filter((o) => o.spec.family === family),
      ),
    );
    const probed = new Set<KeyFamily>(families);
    const everything = results.find((r) => r.verdict === "lists-everything");
    const passing = results.filter((r) => r.verdict === "pass");
    if (everything === undefined && passing.length > 0) {
      const usable = new Set(passing.map((r) => r.family));
      const passedText = passing.flatMap((r) => r.passed).join(", ");
      return {
        state: "healthy",
        detail: `${this.zone} answers its test points correctly (${passedText}): it is in use.`,
        probed,
        usable,
        families: results,
      };
    }
    const worst = everything ?? [...results].sort((a, b) => b.rank - a.rank)[0];
    if (worst === undefined) throw new Error("a probe round without families");
    return {
      state: worst.verdict as RoundResult["state"],
      detail: worst.detail,
      probed,
      usable: new Set(),
      families: results,
    };
  }

  // --- the state machine ---------------------------------------------------------------------

  private apply(round: RoundResult): void {
    this.probed = round.probed;
    const state = this.current.state;
    if (round.state === "healthy") {
      this.failedRounds = 0;
      if (state === "unknown" || state === "healthy") {
        this.usable = round.usable;
        if (state === "unknown") this.change("healthy", round.detail);
        else this.current = { ...this.current, detail: round.detail };
        this.noteOffFamilies(round);
        return;
      }
      this.healthyRounds++;
      if (this.healthyRounds >= HEALTHY_ROUNDS_TO_RECOVER) {
        this.usable = round.usable;
        this.healthyRounds = 0;
        this.change(
          "healthy",
          `${round.detail.replace(/: it is in use\.$/, "")} in ${HEALTHY_ROUNDS_TO_RECOVER} consecutive probe rounds: it is in use again.`,
        );
        this.noteOffFamilies(round);
      } else {
        this.ctx.logger.info(
          { source: this.config.name, zone: this.zone, state, healthyRounds: this.healthyRounds },
          `${this.zone} answered a probe round correctly (${this.healthyRounds} of ${HEALTHY_ROUNDS_TO_RECOVER} needed): it stays off until ${HEALTHY_ROUNDS_TO_RECOVER} consecutive rounds are correct.`,
        );
      }
      return;
    }
    this.healthyRounds = 0;
    if (state === "unknown") {
      this.change(round.state, round.detail);
      return;
    }
    if (state === "healthy") {
      this.failedRounds++;
      if (this.failedRounds >= FAILED_ROUNDS_TO_TRIP) {
        this.failedRounds = 0;
        this.change(round.state, round.detail);
      } else {
        this.ctx.logger.warn(
          { source: this.config.name, zone: this.zone, state, round: round.state, detail: round.detail },
          `${this.zone} failed a probe round (${round.state}): it stays in use until a second consecutive round fails; probing again in ${Math.round(this.retryMs / 1000)} s. ${round.detail}`,
        );
      }
      return;
    }
    if (round.state !== state) this.change(round.state, round.detail);
    else this.current = { ...this.current, detail: round.detail };
  }

  /** Warns when families the list is used for fail their test points while another family passes. */
  private noteOffFamilies(round: RoundResult): void {
    const off = round.families.filter((r) => r.verdict !== "pass" && this.used.has(r.family));
    const note = off.map((r) => `${FAMILY_NAMES[r.family]} keys are not looked up: ${r.detail}`).join(" ");
    if (note !== "" && !this.current.detail.includes(note)) {
      this.current = { ...this.current, detail: `${this.current.detail} ${note}` };
    }
    if (note === this.offFamiliesNote) return;
    this.offFamiliesNote = note;
    if (note !== "") {
      this.ctx.logger.warn(
        {
          source: this.config.name,
          zone: this.zone,
          state: this.current.state,
          families: off.map((r) => r.family),
        },
        note,
      );
    }
  }

  private change(state: DnsblState, detail: string): void {
    const previous = this.current;
    this.current = { state, detail, since: this.now() };
    if (state !== "healthy") this.clearWindow();
    if (state !== "healthy") this.offFamiliesNote = "";
    const fields = { source: this.config.name, zone: this.zone, state, previous: previous.state };
    if (state === "healthy") this.ctx.logger.info(fields, detail);
    else this.ctx.logger.warn(fields, detail);
    try {
      this.onStateChange?.(this.health(), previous);
    } catch (error) {
      this.ctx.logger.error({ ...fields, err: String(error) }, "a DNSBL state change listener failed");
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.resolver.cancel();
    await this.inFlight?.catch(() => undefined);
  }
}

/** A health-checked DNS block list (SPEC "DNSBL health"). Call `start()` for background probing. */
export function createDnsblSource(
  config: DnsblSourceConfig,
  ctx: SourceContext,
  options: DnsblSourceOptions = {},
): DnsblSource {
  return new DnsblList(config, ctx, options);
}
