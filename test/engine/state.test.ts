/**
 * rate() and greylist() through the engine: a RulesRuntime with its memory state and a fake
 * clock, transactions from TransactionEngines on its rules, reloads, failures of the state
 * (state.on_error), and dry-run looking without counting.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { dryRun } from "../../src/engine/dry-run.js";
import { Metrics } from "../../src/engine/metrics.js";
import { RulesRuntime } from "../../src/engine/service.js";
import { createMemoryStore } from "../../src/engine/state/memory.js";
import { stateLookups } from "../../src/engine/state/open.js";
import { TransactionEngine } from "../../src/engine/transaction-engine.js";
import type { StateLookups } from "../../src/runtime/lookups.js";
import { StateError } from "../../src/runtime/state.js";
import { FakeLookups, rulesetOf } from "../runtime/helpers.js";

const CLIENT = { ip: "203.0.113.7", name: "[203.0.113.7]", port: 40000 };
const SILENT = pino({ level: "silent" });

const RATE = `
rules:
  - name: per-sender
    on: rcpt
    if: rate(from, 1h) > 2
    then: tempfail 450 4.7.1 "Too many recipients"
`;

const GREYLIST = `
greylist: {delay: 5m, retry_window: 4h, pass_ttl: 1d}
rules:
  - on rcpt: if greylist(client.ip, from, rcpt) then tempfail 451 4.7.1 "Greylisted"
`;

const runtimes: RulesRuntime[] = [];
afterEach(async () => {
  for (const runtime of runtimes.splice(0)) await runtime.close();
});

async function start(yaml: string, options: { metrics?: Metrics } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "filterctl-state-"));
  const path = join(dir, "rules.yaml");
  writeFileSync(path, yaml);
  const clock = { t: 1_700_000_000_000 };
  const runtime = await RulesRuntime.start(path, SILENT, { stateClock: () => clock.t, ...options });
  runtimes.push(runtime);
  return { runtime, clock, path };
}

/** One transaction on the runtime's current rules: the reply code to each recipient ("" = accepted). */
async function send(runtime: RulesRuntime, from: string, rcpts: string[]): Promise<string[]> {
  const engine = new TransactionEngine(runtime.current());
  await engine.connect(CLIENT);
  await engine.helo("mx.example.net");
  await engine.mail({ sender: from });
  const codes: string[] = [];
  for (const rcpt of rcpts) codes.push(String((await engine.rcpt(rcpt)).outcome.decision?.code ?? ""));
  return codes;
}

describe("rate() through the engine", () => {
  it("counts every recipient across transactions: the 3rd over a rate of 2 is tempfailed", async () => {
    const { runtime, clock } = await start(RATE);
    expect(await send(runtime, "a@example.com", ["x@example.org", "y@example.org"])).toEqual(["", ""]);
    expect(await send(runtime, "a@example.com", ["z@example.org"])).toEqual(["450"]);
    // Another sender has its own count; the same sender's rate falls with time.
    expect(await send(runtime, "b@example.com", ["x@example.org"])).toEqual([""]);
    clock.t += 2 * 3_600_000;
    expect(await send(runtime, "a@example.com", ["z@example.org"])).toEqual([""]);
  });

  it("counts a value longer than a key may be under its SHA-256 (one key per value, as for short ones)", async () => {
    const { runtime } = await start(RATE);
    const long = `${"a".repeat(300)}@example.com`;
    const other = `${"b".repeat(300)}@example.com`;
    expect(await send(runtime, long, ["x@example.org", "y@example.org"])).toEqual(["", ""]);
    expect(await send(runtime, other, ["x@example.org"])).toEqual([""]);
    expect(await send(runtime, long, ["z@example.org"])).toEqual(["450"]);
  });

  it("a reload that leaves state: as it was keeps the counts; one that changes it starts afresh", async () => {
    const { runtime, path } = await start(RATE);
    await send(runtime, "a@example.com", ["x@example.org", "y@example.org"]);
    const store = runtime.current().state.store;
    writeFileSync(path, RATE.replace("Too many recipients", "Slow down"));
    expect(await runtime.reload("test")).toBe(true);
    expect(runtime.current().state.store).toBe(store);
    expect(await send(runtime, "a@example.com", ["z@example.org"])).toEqual(["450"]);

    writeFileSync(path, `state: {on_error: tempfail}\n${RATE}`);
    expect(await runtime.reload("test")).toBe(true);
    expect(runtime.current().state.store).not.toBe(store);
    expect(await send(runtime, "a@example.com", ["z@example.org"])).toEqual([""]);
    // The replaced store was closed (nobody held the old rules).
    expect(() => store.rate("k", 1000, { record: false })).toThrow(StateError);
  });

  it("shadow rules count too, and each evaluation counts once", async () => {
    const { runtime } = await start(`
rules:
  - name: watch
    on: rcpt
    mode: shadow
    if: rate(from, 1h) > 1
    then: tempfail
  - on rcpt: if rate(from, 1h) > 2 then tempfail 450 4.7.1 "Too many"
`);
    // Both rules count each recipient under one key (the same call in two rules counts together).
    expect(await send(runtime, "a@example.com", ["x@example.org", "y@example.org"])).toEqual(["", "450"]);
  });
});

describe("greylist() through the engine", () => {
  it("defers a new triplet, defers a retry within the delay, passes one after it", async () => {
    const { runtime, clock } = await start(GREYLIST);
    expect(await send(runtime, "a@example.com", ["x@example.org"])).toEqual(["451"]);
    clock.t += 60_000;
    expect(await send(runtime, "a@example.com", ["x@example.org", "y@example.org"])).toEqual(["451", "451"]);
    clock.t += 4 * 60_000;
    expect(await send(runtime, "a@example.com", ["x@example.org", "y@example.org"])).toEqual(["", "451"]);
    clock.t += 12 * 3_600_000;
    expect(await send(runtime, "a@example.com", ["x@example.org"])).toEqual([""]);
  });
});

describe("a state that cannot answer", () => {
  const failing: StateLookups = {
    rate: () => {
      throw new StateError("connection refused");
    },
    greylist: () => Promise.reject(new StateError("timed out after 200ms")),
  };

  it("state.on_error continue (the default): the condition is false, the failure reported as source 'state'", async () => {
    const lookups = new FakeLookups();
    lookups.state = failing;
    const ruleset = rulesetOf(`rules:\n${RATE.split("rules:\n")[1]}`);
    const engine = new TransactionEngine({ ruleset, lookups });
    await engine.connect(CLIENT);
    await engine.mail({ sender: "a@example.com" });
    const run = await engine.rcpt("x@example.org");
    expect(run.outcome.decision).toBeUndefined();
    expect(run.outcome.rules[0]?.errors).toEqual([{ source: "state", message: "connection refused" }]);
  });

  it("state.on_error tempfail: error_reply, synchronous or not; the event deadline decides so too", async () => {
    const lookups = new FakeLookups();
    lookups.state = failing;
    const yaml = `state: {on_error: tempfail}\n${GREYLIST}\n  - on mail: if rate(from, 1h) > 2 then reject`;
    const ruleset = rulesetOf(yaml);
    const engine = new TransactionEngine({ ruleset, lookups });
    await engine.connect(CLIENT);
    const mail = await engine.mail({ sender: "a@example.com" });
    expect(mail.outcome.decision).toMatchObject({
      action: "tempfail",
      code: 451,
      lookupError: "state: connection refused",
    });
    const rcpt = await engine.rcpt("x@example.org");
    expect(rcpt.outcome.decision).toMatchObject({
      action: "tempfail",
      lookupError: "state: timed out after 200ms",
    });
    expect(ruleset.rules.every((r) => r.usesState && r.canDecide)).toBe(true);
  });

  it("every failure is counted in filterctl_state_errors_total; any error becomes a StateError", async () => {
    const metrics = new Metrics();
    const store = createMemoryStore();
    await store.close();
    const bound = stateLookups(
      store,
      { delayMs: 1, retryWindowMs: 2, passTtlMs: 3 },
      {
        record: true,
        failed: () => metrics.stateErrors.inc({ store: "memory" }),
      },
    );
    expect(() => bound.rate("k", 1000)).toThrow(StateError);
    expect(() => bound.greylist("k")).toThrow(StateError);
    const broken = stateLookups(
      {
        kind: "redis",
        rate: () => Promise.reject(new Error("ECONNRESET")),
        greylist: () => true,
        close: async () => {},
      },
      { delayMs: 1, retryWindowMs: 2, passTtlMs: 3 },
      { record: true, failed: () => metrics.stateErrors.inc({ store: "redis" }) },
    );
    await expect(broken.rate("k", 1000)).rejects.toThrow(StateError);
    const text = await metrics.registry.metrics();
    expect(text).toContain('filterctl_state_errors_total{store="memory"} 2');
    expect(text).toContain('filterctl_state_errors_total{store="redis"} 1');
  });

  it("a running serve counts a failing store's calls in the metric, and keeps answering", async () => {
    const metrics = new Metrics();
    const { runtime } = await start(RATE, { metrics });
    await runtime.current().state.store.close();
    expect(await send(runtime, "a@example.com", ["x@example.org"])).toEqual([""]);
    expect(await metrics.registry.metrics()).toContain('filterctl_state_errors_total{store="memory"} 1');
  });
});

describe("dry-run", () => {
  it("reports the count and the greylist answer it saw, and changes nothing", async () => {
    const store = createMemoryStore();
    const settings = { delayMs: 300_000, retryWindowMs: 3_600_000, passTtlMs: 86_400_000 };
    store.rate("a@example.com|x", 3_600_000, { record: true });
    const lookups = new FakeLookups();
    lookups.state = stateLookups(store, settings, { record: false });
    const ruleset = rulesetOf(`
rules:
  - on rcpt: if rate(from, rcpt.local, 1h) > 5 then tempfail
  - on rcpt: if greylist(client.ip, from, rcpt) then tempfail 451 4.7.1 "Greylisted"
`);
    const input = {
      clientIp: CLIENT.ip,
      from: "a@example.com",
      rcpts: ["x@example.org"],
      headers: [],
      body: Buffer.alloc(0),
    };
    const report = await dryRun(ruleset, lookups, input);
    const rcpt = report.stages.find((s) => s.stage === "rcpt");
    expect(rcpt?.lookups.map((l) => [l.what, l.key, l.result])).toEqual([
      ["rate(1h)", "a@example.com|x", "2"],
      ["greylist", "203.0.113.7|a@example.com|x@example.org", "defer"],
    ]);
    // Nothing counted, nothing recorded: a second dry run sees the same.
    const again = await dryRun(ruleset, lookups, input);
    expect(again.stages.find((s) => s.stage === "rcpt")?.lookups.map((l) => l.result)).toEqual([
      "2",
      "defer",
    ]);
    expect(store.size).toBe(1);
  });
});
