/**
 * `serve --metrics` as Prometheus sees it (metrics v2), scraped and parsed by a strict text-format
 * parser, and the reject-rate fuse through the real server: a rule rejecting everyone is demoted
 * to shadow after min_events, logged at error level, shown by its gauge, and the mail flows.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MilterClient } from "../../src/milter/index.js";
import { type Family, parsePrometheusText, sampleValue } from "../support/prometheus-text.js";
import { freePort, type RunningCli, startCli } from "./run.js";

let running: RunningCli | undefined;
afterEach(() => {
  if (running?.child.exitCode === null) process.kill(-(running.child.pid as number), "SIGKILL");
  running = undefined;
});

const RULES = `
sources:
  trusted:
    type: list
    items: ["192.0.2.1"]
  blocked:
    type: list
    items: ["spam@example.net"]
rules:
  - name: trusted-clients
    on: connect
    if: client.ip in trusted
    then: accept
  - name: no-blocked
    on: mail
    if: from in blocked
    then: reject
  - name: everyone
    on: rcpt
    then: reject 550 5.7.1 "Nobody gets in"
    fuse: { max_rate: 50%, window: 10m, min_events: 5, cooldown: 1h }
  - shadow on rcpt: if rcpt.domain == "example.org" then tempfail
`;

async function scrape(port: number): Promise<Map<string, Family>> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(response.status).toBe(200);
  return parsePrometheusText(await response.text());
}

async function send(port: number, rcpt: string) {
  const client = await MilterClient.connect(`inet:${port}@127.0.0.1`);
  await client.negotiate();
  await client.connectInfo({ hostname: "c.example", family: "inet", port: 1, address: "192.0.2.9" });
  await client.mail("<someone@example.com>");
  const reply = await client.rcpt(`<${rcpt}>`);
  client.quit();
  return reply;
}

/** `serve` on RULES with --metrics, listening (also in `running`, for the cleanup). */
async function serveWithMetrics(): Promise<{ cli: RunningCli; port: number; metricsPort: number }> {
  const config = join(mkdtempSync(join(tmpdir(), "filterctl-metrics-")), "rules.yaml");
  writeFileSync(config, RULES);
  const [port, metricsPort] = [await freePort(), await freePort()];
  const cli = startCli([
    ...["serve", "--config", config, "--listen", `inet:${port}@127.0.0.1`],
    ...["--metrics", `127.0.0.1:${metricsPort}`],
  ]);
  running = cli;
  await cli.waitForLine((l) => l.msg === "milter listening");
  return { cli, port, metricsPort };
}

const RULE_NAMES = ["trusted-clients", "no-blocked", "everyone", "rule-4"];

describe("serve --metrics (metrics v2)", () => {
  it("has every series from the start, counters ending in _total, and counts traffic; the fuse demotes a rule", async () => {
    const { cli, port, metricsPort } = await serveWithMetrics();

    const before = await scrape(metricsPort);
    for (const family of before.values()) {
      if (family.type === "counter") expect(family.name).toMatch(/_total$/);
      expect(family.name.startsWith("filterctl_") || /^(process|nodejs)_/.test(family.name)).toBe(true);
    }
    expect(before.get("filterctl_lookups_total")?.type).toBe("counter");
    expect(before.get("filterctl_cache_hits_total")?.type).toBe("counter");
    expect(before.has("filterctl_lookups")).toBe(false);
    for (const source of ["trusted", "blocked"]) {
      for (const name of [
        "filterctl_lookups_total",
        "filterctl_cache_hits_total",
        "filterctl_lookup_errors_total",
      ]) {
        expect(sampleValue(before, name, { source }), `${name}{source="${source}"}`).toBe(0);
      }
    }
    for (const rule of RULE_NAMES) {
      expect(sampleValue(before, "filterctl_rule_evaluations_total", { rule })).toBe(0);
      expect(
        sampleValue(before, "filterctl_decisions_total", { rule, decision: "reject", cause: "policy" }),
      ).toBe(0);
    }
    expect(sampleValue(before, "filterctl_decisions_total", { rule: "", cause: "deadline" })).toBe(0);
    expect(sampleValue(before, "filterctl_rule_fused", { rule: "everyone" })).toBe(0);
    // A fused rule's decisions come as shadow ones: those series exist too.
    const fusedShadow = { rule: "everyone", decision: "reject", cause: "policy", shadow: "true" };
    expect(sampleValue(before, "filterctl_decisions_total", fusedShadow)).toBe(0);
    expect(sampleValue(before, "filterctl_state_errors_total", { store: "memory" })).toBe(0);
    expect(sampleValue(before, "filterctl_reloads_total", { result: "failure" })).toBe(0);
    expect(before.get("filterctl_build_info")?.samples).toEqual([
      {
        name: "filterctl_build_info",
        labels: { version: expect.stringMatching(/^\d+\.\d+\.\d+/) },
        value: 1,
      },
    ]);
    const loadedAt = sampleValue(before, "filterctl_reload_last_success_timestamp_seconds") ?? 0;
    expect(Math.abs(loadedAt - Date.now() / 1000)).toBeLessThan(120);
    expect(sampleValue(before, "process_cpu_user_seconds_total")).toBeGreaterThanOrEqual(0);
    expect(before.get("nodejs_heap_size_used_bytes")?.type).toBe("gauge");

    // Five recipients refused, then the fuse blows: the sixth passes.
    for (let i = 0; i < 5; i++) {
      expect(await send(port, `u${i}@example.org`)).toEqual({
        type: "replycode",
        text: "550 5.7.1 Nobody gets in",
      });
    }
    expect(await send(port, "v@example.org")).toEqual({ type: "continue" });
    expect(await send(port, "w@example.org")).toEqual({ type: "continue" });
    const fused = await cli.waitForLine((l) => String(l.msg).startsWith("rule 'everyone' fused"));
    expect(fused).toMatchObject({ level: 50, rule: "everyone", evaluations: 5, refused: 5, maxRate: 0.5 });
    const shadow = await cli.waitForLine((l) => l.msg === "shadow decision" && l.rule === "everyone");
    expect(shadow).toMatchObject({ decision: "reject", shadow: true, fused: true, rcpt: "v@example.org" });

    const after = await scrape(metricsPort);
    expect(sampleValue(after, "filterctl_rule_fused", { rule: "everyone" })).toBe(1);
    expect(sampleValue(after, "filterctl_rule_evaluations_total", { rule: "everyone" })).toBe(7);
    expect(sampleValue(after, "filterctl_rule_evaluations_total", { rule: "trusted-clients" })).toBe(7);
    const decisions = { rule: "everyone", decision: "reject", cause: "policy" };
    expect(sampleValue(after, "filterctl_decisions_total", { ...decisions, shadow: "false" })).toBe(5);
    expect(sampleValue(after, "filterctl_decisions_total", { ...decisions, shadow: "true" })).toBe(2);
    // The shadow rule after it runs once the fused rule no longer ends the stage.
    expect(sampleValue(after, "filterctl_rule_evaluations_total", { rule: "rule-4" })).toBe(2);
    // List sources are counted: one lookup per connection and per MAIL.
    expect(sampleValue(after, "filterctl_lookups_total", { source: "trusted" })).toBe(7);
    expect(sampleValue(after, "filterctl_lookups_total", { source: "blocked" })).toBe(7);
    expect(sampleValue(after, "filterctl_sessions_total")).toBe(7);
    process.kill(cli.child.pid as number, "SIGTERM");
    expect(await cli.exit).toBe(0);
  });
});

describe("serve's memory", () => {
  it("starts with V8's young generation at its smallest (it grew to 16 MB while loading; bin/filterctl.js)", async () => {
    const { cli, metricsPort } = await serveWithMetrics();
    const newSpace = sampleValue(await scrape(metricsPort), "nodejs_heap_space_size_total_bytes", {
      space: "new",
    });
    expect(newSpace).toBeLessThanOrEqual(4 * 1024 * 1024);
    process.kill(cli.child.pid as number, "SIGTERM");
    expect(await cli.exit).toBe(0);
  });
});

describe("the Prometheus text parser of the tests", () => {
  it("reads samples, labels and escapes, and refuses what Prometheus would", () => {
    const good = parsePrometheusText(
      '# HELP a_total A.\n# TYPE a_total counter\na_total{x="q\\"\\\\",y="2"} 3\n\n# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_sum 0.5\nh_count 1\n',
    );
    expect(sampleValue(good, "a_total", { x: 'q"\\' })).toBe(3);
    expect(good.get("h")?.samples.map((s) => s.name)).toEqual(["h_bucket", "h_sum", "h_count"]);
    expect(() => parsePrometheusText("# TYPE a counter\nb 1\n")).toThrow(/no family/);
    expect(() => parsePrometheusText("# TYPE a counter\na one\n")).toThrow(/not a float/);
    expect(() => parsePrometheusText('# TYPE a counter\na{x="1" y="2"} 1\n')).toThrow(/comma/);
    expect(() => parsePrometheusText("# TYPE a counter\na 1\n# TYPE a counter\n")).toThrow(
      /after its samples/,
    );
    expect(() => parsePrometheusText("# TYPE a counter\na 1")).toThrow(/newline/);
  });
});
