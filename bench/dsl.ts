/**
 * `npm run bench:dsl`: what the rule language costs.
 *
 * (a) Validation time: a generated rules.yaml of 10,000 varied rules (text, one-line and
 *     structured forms; lists, CIDRs, regexes, sizes, quota(), DNSBL and LDAP tables, header(),
 *     macro(), shadow rules, every stage) through what `filterctl validate` and a reload do:
 *     parseConfig (YAML, JSON Schema, typed config) then compileConfig (rule parser, checker,
 *     compiler). The first run in the process is "cold" (schema compiled, parser built, code not
 *     yet optimised); the second is shown on its own (a serve's first reload: V8 is still
 *     optimising, it runs 1.2-1.5x the later ones); then WARMUP_RUNS more not counted, and the warm
 *     median of the runs after them is the figure the target is for: < 500 ms.
 *
 * (b) Evaluation speed: the rules of examples/rules.yaml that make the policy (trusted-networks,
 *     dnsbl, verify-from, mailbox-full), compiled as `serve` compiles them, against the same
 *     policy written by hand as a plain TypeScript function. Both answer the same transactions
 *     (connect, MAIL, each RCPT, stopping where a stage decides) with lookups answered from
 *     memory by the same fake Lookups, so the difference is the rule engine alone. Both are
 *     checked to give identical decisions first. Target: the engine within 1.5x of
 *     the hand-written function.
 *
 * (a2) Linearity: the same generator at several sizes (10,000, 40,000 and 65,000 rules, the most
 *     that fits the 10 MiB a configuration may have; 2,500 and 10,000 in the quick form CI runs),
 *     each validated once after (a) has warmed the code: time per rule should not grow with the
 *     file, nor memory per rule.
 *
 * Options: --quick (fewer and shorter rounds), --rules N (default 10000), --rounds N,
 * --sizes N,N,... (the linearity sizes).
 */
import { existsSync, readFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { parseDocument } from "yaml";
import { bareAddress, normalizeAddress, normalizeAddressParts } from "../src/common/address.js";
import { SourceFile } from "../src/common/diagnostics.js";
import { parseConfig } from "../src/config/load.js";
import { compileConfig } from "../src/dsl/compile.js";
import { type DnsblAnswer, isOverQuota, type Lookups, type QuotaStatus } from "../src/runtime/lookups.js";
import type { Decision } from "../src/runtime/model.js";
import type { Ruleset } from "../src/runtime/ruleset.js";
import { newTransaction, resetMessage, type Transaction } from "../src/runtime/transaction.js";
import { SOURCE_CATALOG } from "../src/sources/catalog.js";
import { ListTable } from "../src/sources/list.js";
import { generateRules } from "./dsl-rules.js";
import { provideSchema } from "./in-process-schema.js";

const here = dirname(fileURLToPath(import.meta.url));
/** dist-bench/bench/dsl.js → the repository root. */
const repo = resolve(here, "..", "..");

interface Options {
  rules: number;
  rounds: number;
  windowMs: number;
  validateRuns: number;
  sizes: number[];
}

function parseOptions(argv: string[]): Options {
  const quick = argv.includes("--quick");
  const options: Options = {
    rules: 10_000,
    rounds: quick ? 3 : 7,
    windowMs: quick ? 250 : 600,
    validateRuns: quick ? 5 : 7,
    sizes: quick ? [2_500, 10_000] : [10_000, 40_000, 65_000],
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = Number(argv[i + 1]);
    if (arg === "--quick") continue;
    const sizes = (argv[i + 1] ?? "").split(",").map(Number);
    if (arg === "--sizes" && sizes.every((n) => Number.isInteger(n) && n > 0 && n <= 200_000)) {
      options.sizes = sizes;
      i++;
    } else if (arg === "--rules" && Number.isInteger(value) && value > 0 && value <= 100_000) {
      options.rules = value;
      i++;
    } else if (arg === "--rounds" && Number.isInteger(value) && value > 0 && value <= 50) {
      options.rounds = value;
      i++;
    } else {
      throw new Error(`unknown or invalid option ${arg} (use --quick, --rules N, --rounds N, --sizes N,N)`);
    }
  }
  return options;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function table(rows: string[][]): string {
  const widths = (rows[0] ?? []).map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c] as number)).join(" | ")} |`;
  const rule = `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`;
  return [line(rows[0] as string[]), rule, ...rows.slice(1).map(line)].join("\n");
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

// --- (a) validation of a large generated ruleset ---------------------------------------------

/** CPU time of this process so far, in ms (user + system, all threads: GC helpers included). */
function cpuNow(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

interface ValidateTiming {
  loadMs: number;
  compileMs: number;
  totalMs: number;
  /** CPU time of the whole run: what other load on the machine does not inflate. */
  cpuMs: number;
}

function validateOnce(text: string): {
  timing: ValidateTiming;
  rules: number;
  errors: string[];
  warnings: number;
} {
  const file = new SourceFile("bench-rules.yaml", text);
  const c0 = cpuNow();
  const t0 = performance.now();
  const parsed = parseConfig(file, { sourceTypes: SOURCE_CATALOG });
  const t1 = performance.now();
  if (parsed.config === undefined) {
    return {
      timing: { loadMs: t1 - t0, compileMs: 0, totalMs: t1 - t0, cpuMs: cpuNow() - c0 },
      rules: 0,
      errors: parsed.diagnostics.map((d) => `${d.line}:${d.column}: ${d.message}`),
      warnings: 0,
    };
  }
  const compiled = compileConfig(parsed.config);
  const t2 = performance.now();
  const cpuMs = cpuNow() - c0;
  const diagnostics = [...parsed.diagnostics, ...compiled.diagnostics];
  return {
    timing: { loadMs: t1 - t0, compileMs: t2 - t1, totalMs: t2 - t0, cpuMs },
    rules: compiled.ruleset?.rules.length ?? 0,
    errors: diagnostics
      .filter((d) => d.severity === "error")
      .map((d) => `${d.line}:${d.column}: ${d.message}`),
    warnings: diagnostics.filter((d) => d.severity === "warning").length,
  };
}

interface ValidateResult {
  rows: string[][];
  warm: ValidateTiming;
  ok: boolean;
}

/** Validations between the second run and the warm ones, not counted (V8 optimises through them). */
const WARMUP_RUNS = 2;

function benchValidate(options: Options): ValidateResult {
  const text = generateRules(options.rules);
  const runs: ValidateTiming[] = [];
  let rules = 0;
  const failed = { loadMs: Number.NaN, compileMs: Number.NaN, totalMs: Number.NaN, cpuMs: Number.NaN };
  for (let i = 0; i < options.validateRuns + WARMUP_RUNS + 2; i++) {
    const result = validateOnce(text);
    if (result.errors.length > 0) {
      process.stderr.write(`generated rules do not validate:\n${result.errors.slice(0, 10).join("\n")}\n`);
      return { rows: [], warm: failed, ok: false };
    }
    if (result.warnings > 0 && i === 0)
      process.stderr.write(`note: ${result.warnings} warnings in the generated rules\n`);
    rules = result.rules;
    runs.push(result.timing);
  }
  const [cold, second, ...rest] = runs as [ValidateTiming, ValidateTiming, ...ValidateTiming[]];
  const warm = rest.slice(WARMUP_RUNS);
  const warmMedian: ValidateTiming = {
    loadMs: median(warm.map((r) => r.loadMs)),
    compileMs: median(warm.map((r) => r.compileMs)),
    totalMs: median(warm.map((r) => r.totalMs)),
    cpuMs: median(warm.map((r) => r.cpuMs)),
  };
  const bytes = Buffer.byteLength(text);
  const row = (label: string, t: ValidateTiming) => [
    label,
    fmt(t.loadMs),
    fmt(t.compileMs),
    fmt(t.totalMs),
    fmt(t.cpuMs),
    fmt((t.totalMs * 1000) / rules, 1),
  ];
  process.stdout.write(
    `\n(a) Validation: ${fmt(rules)} rules, ${fmt(bytes / 1024)} KiB of YAML (parseConfig + compileConfig, in process)\n\n`,
  );
  return {
    rows: [
      ["run", "YAML+schema+config ms", "parse+check+compile ms", "total ms", "CPU ms", "µs/rule"],
      row("cold (first in process)", cold),
      row("second (a first reload)", second),
      row(`warm (median of ${warm.length}, after ${WARMUP_RUNS} more)`, warmMedian),
    ],
    warm: warmMedian,
    ok: true,
  };
}

/** A full garbage collection, so "heap held" is what a validated ruleset keeps, not garbage. */
// Set before any code runs: changing V8 flags later throws away optimised code.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

function collectGarbage(): void {
  gc();
  gc();
}

/** What a size's validation made, alive while its heap is measured. */
const keepAlive: unknown[] = [];

/** (a2): one validation per size, ascending (peak RSS is the process's, so it only grows). */
function benchLinearity(options: Options): string[][] | undefined {
  const rows = [
    ["rules", "total ms", "CPU ms", "µs/rule", "× µs/rule of the first", "heap held MB", "peak RSS MB"],
  ];
  let first: number | undefined;
  for (const size of options.sizes) {
    const text = generateRules(size);
    collectGarbage();
    const base = process.memoryUsage().heapUsed;
    const file = new SourceFile("bench-rules.yaml", text);
    const c0 = cpuNow();
    const t0 = performance.now();
    const parsed = parseConfig(file, { sourceTypes: SOURCE_CATALOG });
    const compiled = parsed.config === undefined ? undefined : compileConfig(parsed.config);
    const ms = performance.now() - t0;
    const cpu = cpuNow() - c0;
    if (compiled?.ruleset?.rules.length !== size) {
      const first = [...parsed.diagnostics, ...(compiled?.diagnostics ?? [])].find(
        (d) => d.severity === "error",
      );
      process.stderr.write(`${size} generated rules do not validate: ${first?.message ?? "no ruleset"}\n`);
      return undefined;
    }
    keepAlive.push(compiled);
    collectGarbage();
    const heldBytes = process.memoryUsage().heapUsed - base;
    keepAlive.length = 0;
    const perRule = (ms * 1000) / size;
    first ??= perRule;
    rows.push([
      fmt(size),
      fmt(ms),
      fmt(cpu),
      fmt(perRule, 1),
      `${(perRule / first).toFixed(2)}x`,
      fmt(heldBytes / 1048576),
      fmt(process.resourceUsage().maxRSS / 1024),
    ]);
  }
  return rows;
}

// --- (b) evaluation: compiled rules against a hand-written function --------------------------

const CORPUS = 1000;
const EXAMPLE_RULES = ["trusted-networks", "dnsbl", "verify-from", "mailbox-full"];

/** examples/rules.yaml with only the rules of the policy (the others need no lookup worth timing). */
function examplePolicy(): Ruleset {
  const path = join(repo, "examples", "rules.yaml");
  const doc = parseDocument(readFileSync(path, "utf8"));
  const rules = doc.get("rules") as { items: { get(key: string): unknown }[] };
  rules.items = rules.items.filter((item) => EXAMPLE_RULES.includes(String(item.get?.("name"))));
  const parsed = parseConfig(new SourceFile(path, doc.toString()), { sourceTypes: SOURCE_CATALOG });
  if (parsed.config === undefined)
    throw new Error(`examples/rules.yaml: ${JSON.stringify(parsed.diagnostics)}`);
  const compiled = compileConfig(parsed.config);
  if (compiled.ruleset === undefined)
    throw new Error(`examples/rules.yaml: ${JSON.stringify(compiled.diagnostics)}`);
  const names = compiled.ruleset.rules.map((r) => r.name);
  if (names.join() !== EXAMPLE_RULES.join()) throw new Error(`unexpected rules ${names.join()}`);
  return compiled.ruleset;
}

function listFile(name: string): string[] {
  return readFileSync(join(repo, "examples", "data", name), "utf8")
    .split("\n")
    .map((l) => l.replace(/#.*/, "").trim())
    .filter((l) => l !== "");
}

interface Table {
  find(key: string): string | undefined;
}

/**
 * The cheapest table that still answers like a list source for this corpus: exact keys (domains
 * lower-cased, addresses with their domain lower-cased) and IP prefixes compared as text. It
 * leaves the rule engine's own cost in plain view.
 */
class PlainTable implements Table {
  private readonly exact = new Map<string, string>();

  constructor(
    items: string[],
    private readonly prefixes: string[] = [],
  ) {
    for (const item of items) this.exact.set(PlainTable.key(item), item);
  }

  private static key(text: string): string {
    const at = text.lastIndexOf("@");
    return at === -1 ? text.toLowerCase() : text.slice(0, at + 1) + text.slice(at + 1).toLowerCase();
  }

  find(key: string): string | undefined {
    const found = this.exact.get(PlainTable.key(key));
    if (found !== undefined) return found;
    for (const prefix of this.prefixes) if (key.startsWith(prefix)) return prefix;
    return undefined;
  }
}

type TableKind = "list" | "plain";

/** Every lookup answered from memory; both contenders get the same instance. */
class MemoryLookups implements Lookups {
  readonly tables: Map<string, Table>;
  readonly quotas = new Map<string, QuotaStatus>([
    ["alice", { usage: 2500, limit: 100_000_000, count: 2, countLimit: 1000 }],
    ["bob", { usage: 11_000, limit: 10_000, count: 2, countLimit: 0 }],
    ["carol", { usage: 3000, limit: 50_000_000, count: 3, countLimit: 3 }],
    ["dave", { usage: 800, limit: 200_000_000, count: 1, countLimit: 0 }],
  ]);
  readonly listed = new Set(["198.51.100.7", "198.51.100.77", "203.0.113.66"]);
  private readonly notListed: DnsblAnswer = { listed: false };
  private readonly listedAnswer: DnsblAnswer = { listed: true, code: "127.0.0.2" };

  /**
   * "list": the list source's own ListTable (node's BlockList for CIDRs), what `serve` uses.
   * "plain": PlainTable, so the difference between the contenders is the rule engine alone.
   */
  constructor(kind: TableKind) {
    const domains = listFile("local-domains.txt");
    const addresses = listFile("addresses.txt");
    this.tables =
      kind === "list"
        ? new Map<string, Table>([
            ["local_domains", new ListTable(domains)],
            ["addresses", new ListTable(addresses)],
            ["trusted_networks", new ListTable(["127.0.0.0/8", "::1", "192.0.2.0/24"])],
          ])
        : new Map<string, Table>([
            ["local_domains", new PlainTable(domains)],
            ["addresses", new PlainTable(addresses)],
            ["trusted_networks", new PlainTable(["::1"], ["127.", "192.0.2."])],
          ]);
  }

  has(source: string, _table: string | undefined, key: string): boolean {
    return this.tables.get(source)?.find(key) !== undefined;
  }
  get(source: string, _table: string | undefined, key: string): string | undefined {
    return this.tables.get(source)?.find(key);
  }
  quota(_source: string, address: string): QuotaStatus | undefined {
    const local = address.slice(0, address.lastIndexOf("@"));
    const plus = local.indexOf("+");
    return this.quotas.get(plus === -1 ? local : local.slice(0, plus));
  }
  dnsbl(_source: string, key: string): DnsblAnswer {
    return this.listed.has(key) ? this.listedAnswer : this.notListed;
  }
  zoneOf(source: string): string {
    return source === "spamhaus" ? "zen.spamhaus.org" : "";
  }
}

/** The same policy as the four rules, as a programmer would write it for this one server. */
function handWritten(
  stage: "connect" | "mail" | "rcpt",
  tx: Transaction,
  lookups: Lookups,
): Decision | undefined {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: reply texts lose control characters
  const clean = (s: string) => s.replace(/[\x00-\x1f\x7f]+/g, " ");
  if (stage === "connect") {
    const ip = tx.client.ip;
    if (ip !== "" && lookups.has("trusted_networks", undefined, ip))
      return { action: "accept", rule: "trusted-networks", shadow: false };
    if (ip !== "") {
      try {
        if ((lookups.dnsbl("spamhaus", ip) as DnsblAnswer).listed) {
          return {
            action: "reject",
            code: 554,
            enhancedCode: "5.7.1",
            text: `Service unavailable; ${clean(ip)} is listed by ${clean(lookups.zoneOf("spamhaus"))}`,
            rule: "dnsbl",
            shadow: false,
          };
        }
      } catch {
        // on_error: continue
      }
    }
    return undefined;
  }
  if (stage === "mail") {
    // The rules compare and look up addresses normalised: so must the hand-written contender.
    // Logged-in senders are not checked (`auth.user == ""`), as the rule says.
    if (tx.authUser !== "") return undefined;
    const domain = normalizeAddressParts(tx.from).domain ?? "";
    if (
      domain !== "" &&
      lookups.has("local_domains", undefined, domain) &&
      !lookups.has("addresses", undefined, normalizeAddress(tx.from))
    ) {
      return {
        action: "reject",
        code: 550,
        enhancedCode: "5.7.1",
        text: `Reject: your From address ${clean(tx.from)} does not exist.`,
        rule: "verify-from",
        shadow: false,
      };
    }
    return undefined;
  }
  const domain = normalizeAddressParts(tx.rcpt).domain ?? "";
  if (domain !== "" && lookups.has("local_domains", undefined, domain)) {
    const status = lookups.quota("mailboxes", normalizeAddress(tx.rcpt)) as QuotaStatus | undefined;
    if (status !== undefined && isOverQuota(status, tx.declaredSize)) {
      return {
        action: "tempfail",
        code: 452,
        enhancedCode: "4.2.2",
        text: `Mailbox of ${clean(tx.rcpt)} is full, try again later`,
        rule: "mailbox-full",
        shadow: false,
      };
    }
  }
  return undefined;
}

interface Envelope {
  ip: string;
  from: string;
  size: number;
  rcpts: string[];
}

/** Deterministic mix: trusted and listed clients, forged, existing, foreign and null senders, full mailboxes. */
function corpus(n: number): Envelope[] {
  let seed = 42;
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const envelopes: Envelope[] = [];
  for (let i = 0; i < n; i++) {
    const r = random();
    const ip =
      r < 0.1
        ? pick(["192.0.2.25", "127.0.0.1", "::1"])
        : r < 0.15
          ? pick(["198.51.100.7", "198.51.100.77", "203.0.113.66"])
          : `203.0.113.${Math.floor(random() * 250)}`;
    const s = random();
    const from =
      s < 0.1
        ? ""
        : s < 0.2
          ? `forged${i}@example.org`
          : s < 0.45
            ? pick(["alice@example.org", "bob@example.org", "postmaster@example.net"])
            : `sender${i % 97}@example.com`;
    const rcpts: string[] = [];
    const count = 1 + Math.floor(random() * 3);
    for (let k = 0; k < count; k++) {
      rcpts.push(
        pick([
          "alice@example.org",
          "bob@example.org",
          "carol@example.org",
          "dave@example.org",
          "bob+lists@example.org",
          "postmaster@example.org",
          "friend@example.com",
        ]),
      );
    }
    envelopes.push({ ip, from, size: random() < 0.5 ? 0 : Math.floor(random() * 50_000), rcpts });
  }
  return envelopes;
}

type StageFn = (stage: "connect" | "mail" | "rcpt", tx: Transaction) => Decision | undefined;

/** One transaction through a policy; answers the number of stage evaluations, and the decisions. */
function transaction(
  policy: StageFn,
  tx: Transaction,
  env: Envelope,
  out?: (Decision | undefined)[],
): number {
  tx.client.ip = env.ip;
  let d = policy("connect", tx);
  out?.push(d);
  if (d !== undefined) return 1;
  resetMessage(tx);
  tx.from = bareAddress(env.from);
  tx.declaredSize = env.size;
  d = policy("mail", tx);
  out?.push(d);
  if (d !== undefined) return 2;
  for (const rcpt of env.rcpts) {
    tx.rcpt = rcpt;
    d = policy("rcpt", tx);
    out?.push(d);
    if (d === undefined || (d.action !== "reject" && d.action !== "tempfail")) tx.rcpts.push(rcpt);
  }
  return 2 + env.rcpts.length;
}

function canonical(d: Decision | undefined): string {
  return d === undefined ? "-" : [d.action, d.code, d.enhancedCode, d.text, d.rule].join("|");
}

interface EvaluateResult {
  rows: string[][];
  ratio: number;
  ratioCpu: number;
  tally: Map<string, number>;
  ok: boolean;
}

function benchEvaluate(options: Options, ruleset: Ruleset, kind: TableKind): EvaluateResult {
  const lookups = new MemoryLookups(kind);
  const engine: StageFn = (stage, tx) => {
    const outcome = ruleset.evaluate(stage, tx, lookups);
    if (outcome instanceof Promise) throw new Error("a memory lookup went asynchronous");
    return outcome.decision;
  };
  const hand: StageFn = (stage, tx) => handWritten(stage, tx, lookups);
  const envelopes = corpus(CORPUS);

  // Same decisions, transaction by transaction, before anything is timed.
  const tally = new Map<string, number>();
  for (const env of envelopes) {
    const a: (Decision | undefined)[] = [];
    const b: (Decision | undefined)[] = [];
    transaction(engine, newTransaction(), env, a);
    transaction(hand, newTransaction(), env, b);
    const ca = a.map(canonical).join(" / ");
    const cb = b.map(canonical).join(" / ");
    if (ca !== cb) {
      process.stderr.write(`decisions differ for ${JSON.stringify(env)}:\n  rules: ${ca}\n  hand:  ${cb}\n`);
      return { rows: [], ratio: Number.NaN, ratioCpu: Number.NaN, tally, ok: false };
    }
    for (const d of a) {
      const key = d === undefined ? "continue" : `${d.action} (${d.rule})`;
      tally.set(key, (tally.get(key) ?? 0) + 1);
    }
  }

  /** Rates per wall-clock second, and per CPU second of this process (what other load does not distort). */
  interface Rate {
    tx: number;
    stages: number;
    txCpu: number;
  }
  const measure = (policy: StageFn, windowMs: number): Rate => {
    const tx = newTransaction();
    let transactions = 0;
    let stages = 0;
    const cpu0 = cpuNow();
    const start = performance.now();
    const end = start + windowMs;
    let now = start;
    while (now < end) {
      for (let i = 0; i < 200; i++) {
        stages += transaction(policy, tx, envelopes[(transactions + i) % envelopes.length] as Envelope);
      }
      transactions += 200;
      now = performance.now();
    }
    const cpu = cpuNow() - cpu0;
    return {
      tx: (transactions * 1000) / (now - start),
      stages: (stages * 1000) / (now - start),
      txCpu: (transactions * 1000) / cpu,
    };
  };
  // Warm-up, then alternate the two so drift on a shared machine hits both.
  measure(engine, options.windowMs);
  measure(hand, options.windowMs);
  const results = { engine: [] as Rate[], hand: [] as Rate[] };
  for (let round = 0; round < options.rounds; round++) {
    if (round % 2 === 0) {
      results.engine.push(measure(engine, options.windowMs));
      results.hand.push(measure(hand, options.windowMs));
    } else {
      results.hand.push(measure(hand, options.windowMs));
      results.engine.push(measure(engine, options.windowMs));
    }
  }
  const summary = (r: Rate[]) => ({
    tx: median(r.map((x) => x.tx)),
    stages: median(r.map((x) => x.stages)),
    txCpu: median(r.map((x) => x.txCpu)),
    min: Math.min(...r.map((x) => x.tx)),
    max: Math.max(...r.map((x) => x.tx)),
  });
  const e = summary(results.engine);
  const h = summary(results.hand);
  const ratio = h.tx / e.tx;
  const ratioCpu = h.txCpu / e.txCpu;
  const row = (label: string, s: ReturnType<typeof summary>) => [
    label,
    kind === "list" ? "ListTable" : "PlainTable",
    fmt(s.tx),
    fmt(s.stages),
    `${fmt(s.min)} - ${fmt(s.max)}`,
    fmt(1e9 / s.stages, 0),
    fmt(s.txCpu),
  ];
  return {
    rows: [
      row("compiled rules (Ruleset.evaluate)", e),
      row("hand-written TypeScript", h),
      ["ratio hand-written / rules", "", `${ratio.toFixed(2)}x`, "", "", "", `${ratioCpu.toFixed(2)}x`],
    ],
    ratio,
    ratioCpu,
    tally,
    ok: true,
  };
}

function main(): number {
  const options = parseOptions(process.argv.slice(2));
  if (!existsSync(join(repo, "schema", "rules.schema.json"))) throw new Error("run from the repository");
  provideSchema();
  process.stdout.write(
    `filterctl rule language benchmark (node ${process.version}, ${process.platform}/${process.arch}, ${availableParallelism()} CPUs)\n`,
  );

  const validate = benchValidate(options);
  if (!validate.ok) return 1;
  process.stdout.write(`${table(validate.rows)}\n`);
  process.stdout.write("\n(a2) Linearity: one validation per size, after (a) warmed the code\n\n");
  const linearity = benchLinearity(options);
  if (linearity === undefined) return 1;
  process.stdout.write(`${table(linearity)}\n`);
  const ruleset = examplePolicy();
  const plain = benchEvaluate(options, ruleset, "plain");
  const list = benchEvaluate(options, ruleset, "list");
  if (!plain.ok || !list.ok) return 1;
  process.stdout.write(
    `\n(b) Evaluation: rules ${EXAMPLE_RULES.join(", ")} of examples/rules.yaml against the same policy\n` +
      `    written by hand, lookups answered from memory by the same fake Lookups; ${CORPUS} transactions\n` +
      `    (connect, MAIL, 1-3 RCPT, stopping where a stage decides), decisions checked identical first:\n` +
      `    ${[...plain.tally.entries()].map(([k, v]) => `${k} ${v}`).join(", ")}\n` +
      `    median of ${options.rounds} rounds of ${options.windowMs} ms each, the contenders alternating\n\n`,
  );
  process.stdout.write(
    `${table([
      [
        "policy",
        "tables",
        "transactions/s",
        "stage evaluations/s",
        "transactions/s, min - max",
        "ns/stage",
        "transactions/CPU-s",
      ],
      ...plain.rows,
      ...list.rows,
    ])}\n`,
  );
  const evaluate = plain;

  const verdict = (ok: boolean) => (ok ? "met" : "NOT met");
  const load = loadavg()[0] ?? 0;
  process.stdout.write(
    `\ntargets: validate ${fmt(options.rules)} rules < 500 ms: ${verdict(validate.warm.totalMs < 500)} ` +
      `(${fmt(validate.warm.totalMs)} ms warm, ${fmt(validate.warm.cpuMs)} ms CPU); ` +
      `rules within 1.5x of hand-written: ${verdict(evaluate.ratio <= 1.5)} ` +
      `(PlainTable: ${evaluate.ratio.toFixed(2)}x wall clock, ${evaluate.ratioCpu.toFixed(2)}x per CPU second; ` +
      `ListTable: ${list.ratio.toFixed(2)}x, ${list.ratioCpu.toFixed(2)}x)\n` +
      `load average ${load.toFixed(1)} on ${availableParallelism()} CPUs` +
      `${load > availableParallelism() ? ": the machine is busy, trust the CPU columns more than wall clock" : ""}\n`,
  );
  return 0;
}

process.exitCode = main();
