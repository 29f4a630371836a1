/**
 * `npm run bench:regex`: what rule regexes cost on each engine considered.
 *
 * Engines:
 *  - V8 RegExp: what rules used before; fast, but backtracking (exponential on some patterns).
 *  - re2js, as rules run it: src/dsl/regex.ts (JavaScript syntax translated to RE2's, then
 *    re2js, a pure-JavaScript RE2). This is the engine filterctl uses.
 *  - re2 (native addon), when installed: it is not a dependency (its install downloads a binary
 *    from GitHub or compiles C++ for ~2 minutes, and its releases since 1.24.1 need Node 22). To
 *    include it: `npm install --no-save re2@1.24.0`.
 *
 * Typical rule patterns on typical texts (HELO names, addresses, subjects), a 64 KiB header, and
 * inputs built for catastrophic backtracking. Every engine's answer is checked against the
 * expected one before it is timed; the exit status is 1 if any differs. A backtracking pattern is
 * not run on V8 at full size (it would take minutes): a separate table shows its growth instead.
 *
 * Options: --quick (shorter windows, one round), --rounds N.
 */
import { createRequire } from "node:module";
import { availableParallelism, loadavg } from "node:os";
import { compileRegex } from "../src/dsl/regex.js";
import { INLINE_STEPS, matchRegex } from "../src/dsl/regex-offload.js";

interface Case {
  name: string;
  pattern: string;
  flags: string;
  text: string;
  expected: boolean;
  /** Exponential on a backtracking engine: V8 is not run on it. */
  backtracks?: boolean;
}

interface Engine {
  name: string;
  compile(pattern: string, flags: string): { test(text: string): boolean };
}

const FILLER = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. ";
const BIG = FILLER.repeat(Math.ceil(65_536 / FILLER.length)).slice(0, 65_536 - 11);

const CASES: Case[] = [
  { name: "HELO has a dot", pattern: "\\.", flags: "", text: "mail.example.org", expected: true },
  {
    name: "HELO is an address literal",
    pattern: "^\\[?\\d{1,3}(\\.\\d{1,3}){3}\\]?$",
    flags: "",
    text: "[192.0.2.45]",
    expected: true,
  },
  {
    name: "dynamic-looking rDNS",
    pattern: "(dyn|dsl|pool|dhcp|ppp)[-.]?\\d",
    flags: "i",
    text: "DSL-203-0-113-7.provider.example",
    expected: true,
  },
  {
    name: "sender prefix",
    pattern: "^(bounce|noreply|no-reply)[-+.]?",
    flags: "i",
    text: "alice.smith@example.org",
    expected: false,
  },
  {
    name: "domain suffix",
    pattern: "\\.example\\.(org|net)$",
    flags: "",
    text: "bob@mail.example.net",
    expected: true,
  },
  {
    name: "subject tag",
    pattern: "^\\[SPAM\\]",
    flags: "i",
    text: "[spam] Cheap offers inside",
    expected: true,
  },
  {
    name: "subject words",
    pattern: "offer \\d+|win [0-9]+ prizes|\\bviagra\\b",
    flags: "i",
    text: "Re: minutes of the meeting on Tuesday",
    expected: false,
  },
  {
    name: "local part shape",
    pattern: "^[a-z0-9._%+-]{1,64}@[a-z0-9.-]+\\.[a-z]{2,}$",
    flags: "i",
    text: "Carol.Jones+lists@Example.COM",
    expected: true,
  },
  {
    name: "64 KiB header, no match",
    pattern: "viagra|cialis|casino",
    flags: "i",
    text: BIG,
    expected: false,
  },
  {
    name: "64 KiB header, match at end",
    pattern: "unsubscribe",
    flags: "i",
    text: `${BIG}Unsubscribe`,
    expected: true,
  },
  {
    name: "^(a+)+$ on 34 a then !",
    pattern: "^(a+)+$",
    flags: "",
    text: `${"a".repeat(34)}!`,
    expected: false,
    backtracks: true,
  },
  {
    name: "^(\\w+\\s?)*$ on 64 KiB",
    pattern: "^(\\w+\\s?)*$",
    flags: "",
    text: `${"word ".repeat(13_107)}!`,
    expected: false,
    backtracks: true,
  },
];

function engines(): { list: Engine[]; missing: string[] } {
  const list: Engine[] = [
    { name: "V8 RegExp", compile: (p, f) => new RegExp(p, f) },
    {
      name: "re2js (rules)",
      compile: (p, f) => {
        const compiled = compileRegex(p, f);
        if (!compiled.ok) throw new Error(`/${p}/${f}: ${compiled.problem.message}`);
        return compiled.regex;
      },
    },
  ];
  const missing: string[] = [];
  try {
    // re2 is optional and untyped here: it is only loaded when someone installed it for this bench.
    const RE2 = createRequire(import.meta.url)("re2") as new (
      p: string,
      f: string,
    ) => { test(text: string): boolean };
    list.push({ name: "re2 (native)", compile: (p, f) => new RE2(p, f) });
  } catch {
    missing.push("re2 (native): not installed (npm install --no-save re2@1.24.0)");
  }
  return { list, missing };
}

/** ns per call of `run`, over a window of `windowMs`. */
function nsPerCall(run: () => unknown, windowMs: number): number {
  let calls = 0;
  const started = process.hrtime.bigint();
  const until = started + BigInt(Math.round(windowMs * 1e6));
  let now = started;
  while (now < until) {
    for (let i = 0; i < 16; i++) run();
    calls += 16;
    now = process.hrtime.bigint();
  }
  return Number(now - started) / calls;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1] as number;
}

function table(rows: string[][]): string {
  const widths = (rows[0] ?? []).map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c] as number)).join(" | ")} |`;
  const rule = `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`;
  return [line(rows[0] as string[]), rule, ...rows.slice(1).map(line)].join("\n");
}

function formatNs(ns: number): string {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(1)} µs`;
  return `${ns.toFixed(0)} ns`;
}

interface Options {
  rounds: number;
  windowMs: number;
}

function parseOptions(argv: string[]): Options {
  const quick = argv.includes("--quick");
  const options = { rounds: quick ? 1 : 3, windowMs: quick ? 60 : 250 };
  const at = argv.indexOf("--rounds");
  const rounds = Number(argv[at + 1]);
  if (at !== -1 && Number.isInteger(rounds) && rounds > 0 && rounds <= 20) options.rounds = rounds;
  return options;
}

/** Checks every engine's answers, then times test() per case and engine. */
function matchTable(list: Engine[], options: Options, mismatches: string[]): string {
  const rows = [["case", "text", ...list.map((e) => e.name), "re2js / V8"]];
  for (const c of CASES) {
    const times: (number | undefined)[] = [];
    for (const engine of list) {
      if (c.backtracks && engine.name === "V8 RegExp") {
        times.push(undefined);
        continue;
      }
      const regex = engine.compile(c.pattern, c.flags);
      const answer = regex.test(c.text);
      if (answer !== c.expected)
        mismatches.push(`${engine.name}: /${c.pattern}/${c.flags} (${c.name}) answered ${answer}`);
      const rounds = Array.from({ length: options.rounds }, () =>
        nsPerCall(() => regex.test(c.text), options.windowMs),
      );
      times.push(median(rounds));
    }
    const [v8, re2js] = times;
    const ratio = v8 === undefined || re2js === undefined ? "-" : `${(re2js / v8).toFixed(1)}x`;
    const cells = times.map((t) => (t === undefined ? "not run (exponential)" : formatNs(t)));
    const size = c.text.length > 1000 ? `${(c.text.length / 1024).toFixed(0)} KiB` : `${c.text.length} chars`;
    rows.push([`/${c.pattern}/${c.flags}`.slice(0, 42), size, ...cells, ratio]);
  }
  return table(rows);
}

function compileTable(list: Engine[], options: Options): string {
  const rows = [["engine", "compile, median over the typical patterns", "slowest"]];
  const typical = CASES.filter((c) => !c.backtracks);
  for (const engine of list) {
    const each = typical.map((c) =>
      nsPerCall(() => engine.compile(c.pattern, c.flags), options.windowMs / 4),
    );
    rows.push([engine.name, formatNs(median(each)), formatNs(Math.max(...each))]);
  }
  return table(rows);
}

/** V8 on the catastrophic HELO at small sizes, to show the growth the full size would have. */
function growthTable(): string {
  const regex = /^(a+)+$/;
  const rows = [["a's then !", "V8 RegExp", "re2js (rules)"]];
  const compiled = compileRegex("^(a+)+$", "");
  if (!compiled.ok) throw new Error(compiled.problem.message);
  regex.test("aaaa!");
  for (const n of [16, 18, 20, 22]) {
    const text = `${"a".repeat(n)}!`;
    const started = process.hrtime.bigint();
    regex.test(text);
    const v8 = Number(process.hrtime.bigint() - started);
    rows.push([String(n), formatNs(v8), formatNs(nsPerCall(() => compiled.regex.test(text), 20))]);
  }
  return table(rows);
}

/**
 * As rules run them (src/dsl/regex-offload.ts): inline, or in the worker thread when text length
 * × program size could hold the event loop. Per call, including the worker round trip.
 */
async function placementTable(options: Options, mismatches: string[]): Promise<string> {
  const rows = [["case", "text", "program", "runs", "per call", "event loop held, longest"]];
  for (const c of CASES.filter((c) => c.text.length > 1000 || c.backtracks)) {
    const compiled = compileRegex(c.pattern, c.flags);
    if (!compiled.ok) throw new Error(compiled.problem.message);
    const inline = c.text.length * compiled.size <= INLINE_STEPS;
    let calls = 0;
    let held = 0;
    const started = performance.now();
    while (performance.now() - started < options.windowMs * 2) {
      const before = performance.now();
      const pending = matchRegex(compiled, c.text);
      held = Math.max(held, performance.now() - before);
      const answer = await pending;
      if (answer !== c.expected) mismatches.push(`matchRegex: /${c.pattern}/${c.flags} answered ${answer}`);
      calls++;
    }
    const per = ((performance.now() - started) * 1e6) / calls;
    const size = c.text.length > 1000 ? `${(c.text.length / 1024).toFixed(0)} KiB` : `${c.text.length} chars`;
    rows.push([
      `/${c.pattern}/${c.flags}`,
      size,
      String(compiled.size),
      inline ? "inline" : "worker",
      formatNs(per),
      formatNs(held * 1e6),
    ]);
  }
  return table(rows);
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const { list, missing } = engines();
  const mismatches: string[] = [];
  console.log(
    `filterctl rule regex benchmark (node ${process.version}, ${process.platform}/${process.arch}, ${availableParallelism()} CPUs)\n`,
  );
  console.log("test() per call, median of", options.rounds, `round(s) of ${options.windowMs} ms\n`);
  console.log(matchTable(list, options, mismatches));
  console.log(
    "\nCompiling (once per rule at validate and reload; V8 compiles lazily and caches by source)\n",
  );
  console.log(compileTable(list, options));
  console.log("\nBacktracking: V8 doubles with each extra 'a' (34 would take minutes); re2js stays flat\n");
  console.log(growthTable());
  console.log(
    `\nWhere rules run them: inline, or in a worker when text length × program size > ${INLINE_STEPS}\n`,
  );
  console.log(await placementTable(options, mismatches));
  for (const line of missing) console.log(`\n${line}`);
  const load = loadavg()[0] as number;
  if (load > availableParallelism())
    console.log(`\nload average ${load.toFixed(1)}: the machine is busy, times are noisy`);
  if (mismatches.length > 0) {
    console.log(`\nWRONG ANSWERS:\n${mismatches.join("\n")}`);
    process.exitCode = 1;
  } else {
    console.log("\nall answers as expected");
  }
}

await main();
