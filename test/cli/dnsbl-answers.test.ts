/**
 * A DNSBL's answers in rules (`NAME[X]`, `{NAME.codes}`), end to end: `filterctl dry-run` with
 * `dns: servers:` pointing at a private rbldnsd whose bl.test lists 127.0.0.20 with two A records
 * (127.0.0.4 and 127.0.0.10, from two datasets), as Spamhaus Zen answers for a host in both the
 * XBL and the PBL.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Rbldnsd, startRbldnsd, ZONES } from "../support/rbldnsd.js";
import { runCli } from "./run.js";

let rbldnsd: Rbldnsd;
let dir: string;

beforeAll(async () => {
  rbldnsd = await startRbldnsd();
  dir = mkdtempSync(join(tmpdir(), "filterctl-dnsbl-answers-"));
});
afterAll(async () => {
  await rbldnsd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function rulesFile(): string {
  const path = join(dir, "rules.yaml");
  writeFileSync(
    path,
    `dns:
  servers: ["${rbldnsd.server}"]
sources:
  zen:
    type: dnsbl
    zone: ${ZONES.healthy}
    timeout: 500ms
rules:
  - name: exploited
    on: connect
    if: 127.0.0.4 in zen[client.ip]
    then: reject 554 5.7.1 "{client.ip} listed ({zen.codes})"
  - name: listed
    on: connect
    if: count(zen[client.ip]) > 0
    then: tempfail 451 4.7.1 "{zen.codes} - {zen.reason}"
`,
  );
  return path;
}

function dryRun(config: string, clientIp: string) {
  return runCli([
    "dry-run",
    "--config",
    config,
    "--client-ip",
    clientIp,
    "--from",
    "a@example.org",
    "--rcpt",
    "b@example.org",
    "--json",
  ]);
}

describe("NAME[X] against a real DNSBL", () => {
  it("is every A record the list answered: 127.0.0.4 in zen[client.ip], {zen.codes}", () => {
    const config = rulesFile();
    expect(runCli(["validate", "--config", config]).status).toBe(0);
    const both = dryRun(config, "127.0.0.20");
    expect(both.status, both.stderr).toBe(0);
    expect(both.stdout).toContain("554 5.7.1 127.0.0.20 listed (127.0.0.4, 127.0.0.10)");

    // Listed with 127.0.0.2 only: the first rule does not match, the second does.
    const one = dryRun(config, "127.0.0.5");
    expect(one.stdout).toContain("451 4.7.1 127.0.0.2 - Client 127.0.0.5 sent spam to our traps");

    // Not listed: an empty list, so neither rule matches.
    const clean = dryRun(config, "192.0.2.1");
    expect(clean.stdout).not.toMatch(/"action":\s*"(reject|tempfail)"/);
    expect(clean.stdout).not.toContain("listed (");
  });
});
