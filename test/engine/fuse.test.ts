/**
 * The reject-rate fuse with an injected clock: alone (trip, min_events, the sliding window,
 * cooldown), and through RulesRuntime and TransactionEngine (shadow decisions, the gauge, the
 * error log, reload re-arming).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { FuseConfig } from "../../src/config/types.js";
import { Fuse, type FuseEvents, type FuseFigures } from "../../src/engine/fuse.js";
import { Metrics } from "../../src/engine/metrics.js";
import { RulesRuntime } from "../../src/engine/service.js";
import { TransactionEngine } from "../../src/engine/transaction-engine.js";

const T0 = 1_700_000_000_000;
const SETTINGS: FuseConfig = { maxRate: 0.5, windowMs: 600_000, minEvents: 10, cooldownMs: 3_600_000 };

function fuseWith(settings: Partial<FuseConfig> = {}) {
  const clock = { t: T0 };
  const seen: { tripped: FuseFigures[]; rearmed: number } = { tripped: [], rearmed: 0 };
  const events: FuseEvents = {
    tripped: (_rule, _fuse, figures) => seen.tripped.push(figures),
    rearmed: () => {
      seen.rearmed++;
    },
  };
  const fuse = new Fuse("r", { ...SETTINGS, ...settings }, events, () => clock.t);
  return { fuse, clock, seen };
}

describe("Fuse", () => {
  it("trips once min_events evaluations were made and more than max_rate refused", () => {
    const { fuse, seen } = fuseWith();
    for (let i = 0; i < 9; i++) fuse.record(true);
    expect(fuse.blown).toBe(false);
    fuse.record(true);
    expect(fuse.blown).toBe(true);
    expect(seen.tripped).toEqual([{ evaluations: 10, refused: 10, rate: 1, until: T0 + 3_600_000 }]);
  });

  it("stays armed below min_events, and at a rate not above max_rate", () => {
    const { fuse, seen } = fuseWith({ minEvents: 100 });
    for (let i = 0; i < 99; i++) fuse.record(true);
    expect(fuse.blown).toBe(false);
    const half = fuseWith();
    for (let i = 0; i < 50; i++) {
      half.fuse.record(false);
      half.fuse.record(true);
    }
    expect(half.fuse.blown).toBe(false);
    half.fuse.record(true);
    expect(half.fuse.blown).toBe(true);
    expect(seen.tripped).toEqual([]);
  });

  it("forgets evaluations older than the window", () => {
    const { fuse, clock } = fuseWith();
    for (let i = 0; i < 9; i++) fuse.record(true);
    clock.t += 600_000;
    fuse.record(true);
    expect(fuse.blown).toBe(false);
    // Within the window they add up.
    for (let i = 0; i < 8; i++) fuse.record(true);
    clock.t += 300_000;
    fuse.record(true);
    expect(fuse.blown).toBe(true);
  });

  it("re-arms after the cooldown, with an empty window", () => {
    const { fuse, clock, seen } = fuseWith();
    for (let i = 0; i < 10; i++) fuse.record(true);
    clock.t += 3_600_000 - 1;
    expect(fuse.blown).toBe(true);
    fuse.record(true);
    clock.t += 1;
    expect(fuse.blown).toBe(false);
    expect(seen.rearmed).toBe(1);
    for (let i = 0; i < 9; i++) fuse.record(true);
    expect(fuse.blown).toBe(false);
    fuse.record(true);
    expect(fuse.blown).toBe(true);
    expect(seen.tripped).toHaveLength(2);
  });
});

const RULES = `
defaults:
  fuse: { max_rate: 50%, window: 10m, min_events: 5, cooldown: 1h }
rules:
  - name: everyone
    on: rcpt
    if: rcpt.domain == "example.org"
    then: reject 550 5.7.1 "No"
  - name: own-fuse
    on: mail
    if: from == "x@example.com"
    then: reject
    fuse: { max_rate: 90%, min_events: 1000 }
  - shadow on rcpt: if rcpt == "a@example.org" then tempfail
`;

const runtimes: RulesRuntime[] = [];
afterEach(async () => {
  for (const runtime of runtimes.splice(0)) await runtime.close();
});

function memoryLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { lines, logger };
}

async function start(yaml: string) {
  const path = join(mkdtempSync(join(tmpdir(), "filterctl-fuse-")), "rules.yaml");
  writeFileSync(path, yaml);
  const clock = { t: T0 };
  const metrics = new Metrics();
  const { lines, logger } = memoryLogger();
  const runtime = await RulesRuntime.start(path, logger, { metrics, fuseClock: () => clock.t });
  runtimes.push(runtime);
  return { runtime, clock, metrics, lines, path };
}

async function rcptDecision(runtime: RulesRuntime, rcpt: string) {
  const engine = new TransactionEngine(runtime.current());
  await engine.connect({ ip: "192.0.2.1", name: "[192.0.2.1]", port: 1 });
  await engine.mail({ sender: "s@example.net" });
  return (await engine.rcpt(rcpt)).outcome;
}

async function fusedGauge(metrics: Metrics): Promise<Record<string, number>> {
  const values = (await metrics.ruleFused.get()).values;
  return Object.fromEntries(values.map((v) => [String(v.labels.rule), v.value]));
}

describe("the fuse in serve's runtime", () => {
  it("demotes a rule refusing everyone to shadow after min_events, logs it, shows the gauge", async () => {
    const { runtime, metrics, lines, clock } = await start(RULES);
    // A rule's own fuse wins over defaults'; shadow rules have none.
    expect(await fusedGauge(metrics)).toEqual({ everyone: 0, "own-fuse": 0 });
    for (let i = 0; i < 5; i++)
      expect((await rcptDecision(runtime, `u${i}@example.org`)).decision?.action).toBe("reject");
    const after = await rcptDecision(runtime, "v@example.org");
    expect(after.decision).toBeUndefined();
    expect(after.shadowDecisions.map((d) => [d.rule, d.action, d.shadow, d.fused])).toEqual([
      ["everyone", "reject", true, true],
    ]);
    expect(await fusedGauge(metrics)).toEqual({ everyone: 1, "own-fuse": 0 });
    const error = lines.find((l) => l.level === 50 && String(l.msg).startsWith("rule 'everyone' fused"));
    expect(error).toMatchObject({
      rule: "everyone",
      evaluations: 5,
      refused: 5,
      rate: 1,
      maxRate: 0.5,
      window: "10m",
    });
    expect(error?.msg).toBe(
      "rule 'everyone' fused: 5 of its 5 evaluations in the last 10m rejected or tempfailed (100%, more than max_rate 50%); it runs in shadow mode for 1h or until the rules are reloaded",
    );
    // The cooldown passes: the scrape re-arms it, the rule enforces again.
    clock.t += 3_600_000;
    runtime.collectCounters();
    expect(await fusedGauge(metrics)).toEqual({ everyone: 0, "own-fuse": 0 });
    expect(
      lines.some((l) => l.msg === "rule 'everyone' re-armed: its 1h cooldown passed, it enforces again"),
    ).toBe(true);
    expect((await rcptDecision(runtime, "w@example.org")).decision?.action).toBe("reject");
  });

  it("a reload re-arms every fuse", async () => {
    const { runtime, metrics, path } = await start(RULES);
    for (let i = 0; i < 5; i++) await rcptDecision(runtime, `u${i}@example.org`);
    expect((await rcptDecision(runtime, "v@example.org")).decision).toBeUndefined();
    writeFileSync(path, RULES.replace('"No"', '"Not here"'));
    expect(await runtime.reload("test")).toBe(true);
    expect(await fusedGauge(metrics)).toEqual({ everyone: 0, "own-fuse": 0 });
    expect((await rcptDecision(runtime, "v@example.org")).decision?.text).toBe("Not here");
  });

  it("leaves rules as compiled when no fuse is set", async () => {
    const { runtime } = await start("rules:\n  - on rcpt: reject\n");
    expect(runtime.current().fuses).toEqual([]);
  });
});
