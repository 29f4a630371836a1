/**
 * `filterctl dnsbl-status` through the real CLI, with `dns: servers:` pointing at a private
 * rbldnsd: every kind of list health, the table and the JSON, and the exit codes (0 all healthy,
 * 3 any not, 1 invalid configuration, 2 unreadable file).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freeUdpPort, type Rbldnsd, startRbldnsd, ZONES } from "../support/rbldnsd.js";
import { runCli } from "./run.js";

let rbldnsd: Rbldnsd;
let dir: string;

beforeAll(async () => {
  rbldnsd = await startRbldnsd();
  dir = mkdtempSync(join(tmpdir(), "filterctl-dnsbl-status-"));
});
afterAll(async () => {
  await rbldnsd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A rules file with one DNSBL source per zone (name → zone) and a rule using the first. */
function rulesFile(name: string, lists: Record<string, string>, server: string, extra = ""): string {
  const sources = Object.entries(lists)
    .map(([source, zone]) => `  ${source}:\n    type: dnsbl\n    zone: ${zone}\n    timeout: 500ms\n${extra}`)
    .join("");
  const first = Object.keys(lists)[0];
  const rules =
    first === undefined ? "rules: []\n" : `rules:\n  - on connect: if client.ip in ${first} then reject\n`;
  const path = join(dir, name);
  writeFileSync(
    path,
    `dns:\n  servers: ["${server}"]\nsources:\n${sources === "" ? "  {}\n" : sources}${rules}`,
  );
  return path;
}

describe("filterctl dnsbl-status", () => {
  it("--json reports every list's state; exit 3 when any is not healthy", () => {
    const config = rulesFile(
      "all.yaml",
      {
        spamhaus: ZONES.spamhausError,
        healthy: ZONES.healthy,
        ordb: ZONES.everything,
        sorbs: ZONES.empty,
        parked: ZONES.parked,
        uribl: ZONES.refusing,
        dbl: ZONES.domains,
      },
      rbldnsd.server,
    );
    const started = Date.now();
    const result = runCli(["dnsbl-status", "--config", config, "--json"]);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(result.stderr).toBe("");
    expect(result.status, result.stderr).toBe(3);
    const report = JSON.parse(result.stdout) as { lists: Record<string, string>[] };
    expect(report.lists.map((l) => [l.source, l.zone, l.state])).toEqual([
      ["spamhaus", ZONES.spamhausError, "refused"],
      ["healthy", ZONES.healthy, "healthy"],
      ["ordb", ZONES.everything, "lists-everything"],
      ["sorbs", ZONES.empty, "dead"],
      ["parked", ZONES.parked, "refused"],
      ["uribl", ZONES.refusing, "refused"],
      ["dbl", ZONES.domains, "healthy"],
    ]);
    for (const l of report.lists)
      expect(Object.keys(l).sort()).toEqual(["detail", "source", "state", "zone"]);
    const detail = (source: string) => report.lists.find((l) => l.source === source)?.detail;
    expect(detail("ordb")).toMatch(
      /lists everything \(like ORDB in 2008\).*switched off.*Remove it from rules\.yaml/,
    );
    expect(detail("spamhaus")).toMatch(/127\.255\.255\.254/);
    expect(detail("sorbs")).toMatch(/does not list its test point 127\.0\.0\.2/);
  });

  it("prints a table; exit 0 when every list is healthy", () => {
    const config = rulesFile("healthy.yaml", { zen: ZONES.healthy, dbl: ZONES.domains }, rbldnsd.server);
    const result = runCli(["dnsbl-status", "--config", config]);
    expect(result.status, result.stderr).toBe(0);
    const lines = result.stdout.split("\n");
    expect(lines[0]).toMatch(/^SOURCE\s+ZONE\s+STATE\s+DETAIL$/);
    expect(lines[1]).toMatch(/^zen\s+bl\.test\s+healthy\s+bl\.test answers its test points correctly/);
    expect(lines[2]).toMatch(/^dbl\s+rhsbl\.test\s+healthy\s+/);
    expect(result.stdout).toMatch(/2 lists, all healthy/);
  });

  it("the table names what is wrong", () => {
    const config = rulesFile("mixed.yaml", { zen: ZONES.healthy, ordb: ZONES.everything }, rbldnsd.server);
    const result = runCli(["dnsbl-status", "--config", config]);
    expect(result.status, result.stderr).toBe(3);
    expect(result.stdout).toMatch(
      /^ordb\s+everything\.test\s+lists-everything\s+everything\.test answers 'listed'/m,
    );
    expect(result.stdout).toMatch(/1 of 2 lists not healthy/);
  });

  it("passes the source's health settings: require_positive_probe: false", () => {
    const config = rulesFile(
      "relaxed.yaml",
      { empty: ZONES.empty },
      rbldnsd.server,
      "    health:\n      require_positive_probe: false\n",
    );
    const result = runCli(["dnsbl-status", "--config", config, "--json"]);
    expect(result.status, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).lists[0].state).toBe("healthy");
  });

  it("a DNS server that does not answer: dead, exit 3, quickly", async () => {
    const port = await freeUdpPort();
    const config = rulesFile("down.yaml", { zen: ZONES.healthy }, `127.0.0.1:${port}`);
    const result = runCli(["dnsbl-status", "--config", config, "--json"]);
    expect(result.status, result.stderr).toBe(3);
    const [line] = JSON.parse(result.stdout).lists;
    expect(line.state).toBe("dead");
    expect(line.detail).toMatch(/does not answer/);
  });

  it("no DNSBL configured: exit 0", () => {
    const config = rulesFile("none.yaml", {}, rbldnsd.server);
    const json = runCli(["dnsbl-status", "--config", config, "--json"]);
    expect(json.status, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ lists: [] });
    const table = runCli(["dnsbl-status", "--config", config]);
    expect(table.status, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/no DNSBL sources are configured/);
  });

  it("an invalid configuration: exit 1 with file:line:col", () => {
    const path = join(dir, "invalid.yaml");
    writeFileSync(
      path,
      'sources:\n  zen:\n    type: dnsbl\n    zone: bl.test\n    codes: ["127.0.0.11-127.0.0.2"]\nrules: []\n',
    );
    const result = runCli(["dnsbl-status", "--config", path]);
    expect(result.status, result.stderr).toBe(1);
    expect(result.stderr).toMatch(/invalid\.yaml:5:\d+: error: .*ends before it starts/);
    expect(result.stdout).toBe("");
  });

  it("an unreadable file: exit 2", () => {
    const result = runCli(["dnsbl-status", "--config", join(dir, "missing.yaml")]);
    expect(result.status, result.stderr).toBe(2);
    expect(result.stderr).toMatch(/missing\.yaml/);
  });
});
