/**
 * `filterctl lookup` through the real CLI against the suite's real components: the example's list
 * sources, Maildir++ mailboxes made by maildirmake and deliverquota, rbldnsd, slapd and an HTTP
 * quota service; failures (a stalled and an unreachable back-end) exit 3 with why, an unknown
 * source exits 1 with a did-you-mean.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HAVE_MAILDROP, MaildirFixtures } from "../support/maildir-fixtures.js";
import { type Rbldnsd, startRbldnsd, ZONES } from "../support/rbldnsd.js";
import { BIND_DN, BIND_PASSWORD, DESCRIPTIONS, Slapd, SUFFIX } from "../support/slapd.js";
import { BIN, freePort, runCli } from "./run.js";

/** runCli without blocking this process: the HTTP service below runs in it and must answer. */
function runCliAsync(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString("utf8");
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });
  return new Promise((resolve) => child.on("close", (status) => resolve({ status, stdout, stderr })));
}

const EXAMPLE = new URL("../../examples/rules.yaml", import.meta.url).pathname;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "filterctl-lookup-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function rules(name: string, sources: string): string {
  const path = join(dir, name);
  writeFileSync(path, `${sources}rules: []\n`);
  return path;
}

describe("filterctl lookup: list sources (examples/rules.yaml)", () => {
  it("finds an address as a rule would (case folded), and says 'not found' with exit 0", () => {
    const found = runCli(["lookup", "--config", EXAMPLE, "addresses", "Alice@Example.ORG"]);
    expect(found.stderr).toBe("");
    expect(found.status).toBe(0);
    expect(found.stdout).toBe('addresses "Alice@Example.ORG": found: alice@example.org\n');
    const missing = runCli(["lookup", "--config", EXAMPLE, "addresses", "nobody@example.org"]);
    expect(missing.status).toBe(0);
    expect(missing.stdout).toBe('addresses "nobody@example.org": not found\n');
  });

  it("--json gives {source, key, kind, found, value}", () => {
    const result = runCli(["lookup", "--config", EXAMPLE, "trusted_networks", "192.0.2.9", "--json"]);
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      source: "trusted_networks",
      key: "192.0.2.9",
      kind: "table",
      found: true,
      value: "192.0.2.0/24",
    });
  });

  it("an unknown source or table exits 1 with a did-you-mean and no file position", () => {
    const source = runCli(["lookup", "--config", EXAMPLE, "adresses", "a@example.org"]);
    expect(source.status).toBe(1);
    expect(source.stdout).toBe("");
    expect(source.stderr).toBe("filterctl: no source named 'adresses'; did you mean 'addresses'?\n");
    const table = runCli(["lookup", "--config", EXAMPLE, "addresses.x", "a@example.org"]);
    expect(table.status).toBe(1);
    expect(table.stderr).toBe("filterctl: source 'addresses' (list) has no tables: use 'addresses'\n");
  });

  it("usage errors exit 2", () => {
    expect(runCli(["lookup", "--config", EXAMPLE, "addresses"]).status).toBe(2);
    expect(runCli(["lookup", "--config", join(dir, "missing.yaml"), "a", "b"]).status).toBe(2);
  });
});

describe.skipIf(!HAVE_MAILDROP)("filterctl lookup: Maildir++ quotas made by maildirmake/deliverquota", () => {
  let boxes: MaildirFixtures;
  let config: string;
  beforeAll(async () => {
    boxes = await MaildirFixtures.create();
    await boxes.underQuota("ann");
    await boxes.overBytes("ben");
    config = rules(
      "maildir.yaml",
      `sources:\n  boxes:\n    type: maildir\n    path: "${boxes.template}"\n    recipient_delimiter: "+"\n`,
    );
  });
  afterAll(() => rmSync(boxes.root, { recursive: true, force: true }));

  it("prints usage, limits and percent; the recipient delimiter applies", () => {
    const result = runCli(["lookup", "--config", config, "boxes", "Ben+lists@example.org"]);
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(
      'boxes "Ben+lists@example.org": usage 3000 bytes (limit 2000 bytes), 3 messages (limit none), 150%\n',
    );
  });

  it("--json has usage, limit, count, count_limit and percent; no such mailbox is an answer", () => {
    const result = runCli(["lookup", "--config", config, "boxes", "ann@example.org", "--json"]);
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      source: "boxes",
      key: "ann@example.org",
      kind: "quota",
      found: true,
      usage: 3000,
      limit: 50000,
      count: 3,
      count_limit: 100,
      percent: 6,
    });
    const none = runCli(["lookup", "--config", config, "boxes", "zed@example.org"]);
    expect(none.status).toBe(0);
    expect(none.stdout).toBe('boxes "zed@example.org": no such mailbox\n');
  });
});

describe("filterctl lookup: DNSBLs (rbldnsd)", () => {
  let rbldnsd: Rbldnsd;
  let config: string;
  beforeAll(async () => {
    rbldnsd = await startRbldnsd();
    const list = (name: string, zone: string) =>
      `  ${name}:\n    type: dnsbl\n    zone: ${zone}\n    timeout: 500ms\n`;
    config = rules(
      "dnsbl.yaml",
      `dns:\n  servers: ["${rbldnsd.server}"]\nsources:\n${list("bl", ZONES.healthy)}${list("ordb", ZONES.everything)}`,
    );
  });
  afterAll(async () => rbldnsd?.stop());

  it("a listed IP: codes, reason and the list's health", () => {
    const result = runCli(["lookup", "--config", config, "bl", "127.0.0.2", "--json"]);
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    const answer = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(answer).toMatchObject({ kind: "dnsbl", zone: ZONES.healthy, listed: true, codes: ["127.0.0.2"] });
    expect(answer.reason).toMatch(/Listed in bl\.test/);
    expect(answer.health).toMatchObject({ state: "healthy" });
    const text = runCli(["lookup", "--config", config, "bl", "192.0.2.1"]);
    expect(text.status).toBe(0);
    expect(text.stdout).toBe(`bl "192.0.2.1": not listed\nlist ${ZONES.healthy}: healthy\n`);
  });

  it("a list switched off by its health check answers not listed, and says why", () => {
    const result = runCli(["lookup", "--config", config, "ordb", "127.0.0.2"]);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(
      /^ordb "127\.0\.0\.2": not listed\nlist everything\.test: lists-everything: .*switched off/,
    );
  });
});

describe("filterctl lookup: LDAP tables (slapd)", () => {
  let slapd: Slapd;
  let config: string;
  beforeAll(async () => {
    slapd = await Slapd.start();
    process.env.FILTERCTL_LOOKUP_TEST_PW = BIND_PASSWORD;
    config = rules(
      "ldap.yaml",
      `sources:\n  directory:\n    type: ldap\n    url: "${slapd.url}"\n    bind_dn: "${BIND_DN}"\n` +
        `    password_env: FILTERCTL_LOOKUP_TEST_PW\n    base: "${SUFFIX}"\n    result_attribute: description\n` +
        `    tables:\n      addresses: "(mailLocalAddress={key})"\n      domains: "(sendmailMTAClassValue={key})"\n`,
    );
  }, 30_000);
  afterAll(async () => slapd?.stop());

  it("a table's value (result_attribute), address folded; not found; escaping keeps a filter a key", () => {
    const found = runCli(["lookup", "--config", config, "directory.addresses", "ALICE@example.org"]);
    expect(found.stderr).toBe("");
    expect(found.status).toBe(0);
    expect(found.stdout).toBe(
      `directory.addresses "ALICE@example.org": found: ${DESCRIPTIONS["alice@example.org"]}\n`,
    );
    const star = runCli(["lookup", "--config", config, "directory.addresses", "*", "--json"]);
    expect(star.status).toBe(0);
    expect(JSON.parse(star.stdout)).toEqual({
      source: "directory",
      table: "addresses",
      key: "*",
      kind: "table",
      found: false,
    });
  });

  it("a source with tables needs one named; a wrong table gets a did-you-mean", () => {
    const bare = runCli(["lookup", "--config", config, "directory", "example.org"]);
    expect(bare.status).toBe(1);
    expect(bare.stderr).toBe(
      "filterctl: source 'directory' has tables: name one: directory.addresses, directory.domains\n",
    );
    const typo = runCli(["lookup", "--config", config, "directory.adresses", "a@example.org"]);
    expect(typo.status).toBe(1);
    expect(typo.stderr).toBe(
      "filterctl: source 'directory' has no table 'adresses'; did you mean 'addresses'?\n",
    );
  });
});

describe("filterctl lookup: HTTP quota service, and failures", () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      const user = url.searchParams.get("u") ?? "";
      if (url.pathname === "/stall") return; // never answers
      if (user === "nobody") res.writeHead(404).end(`NOUSER ${user}\n`);
      else res.writeHead(200, { "content-type": "text/plain" }).end(`OK ${user} 1234 200000 12 100\n`);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  const http = (name: string, url: string) =>
    rules(name, `sources:\n  backend:\n    type: http\n    url: "${url}"\n    timeout: 300ms\n`);

  it("answers the service's status; a 404 NOUSER is no such mailbox", async () => {
    const config = http("http.yaml", `${base}/quota?u={user}`);
    const result = await runCliAsync([
      "lookup",
      "--config",
      config,
      "backend",
      "carol@example.org",
      "--json",
    ]);
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      found: true,
      usage: 1234,
      limit: 200000,
      count: 12,
      count_limit: 100,
      percent: 12,
    });
    const none = await runCliAsync(["lookup", "--config", config, "backend", "nobody@example.org"]);
    expect(none.status).toBe(0);
    expect(none.stdout).toBe('backend "nobody@example.org": no such mailbox\n');
  });

  it("a back-end that times out: exit 3 with why", async () => {
    const config = http("stall.yaml", `${base}/stall?u={user}`);
    const result = await runCliAsync(["lookup", "--config", config, "backend", "carol@example.org"]);
    expect(result.status).toBe(3);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe("filterctl: lookup in backend failed: timed out after 300 ms\n");
  });

  it("a back-end that is unreachable: exit 3 with why", async () => {
    const config = http("closed.yaml", `http://127.0.0.1:${await freePort()}/quota?u={user}`);
    const result = await runCliAsync(["lookup", "--config", config, "backend", "carol@example.org"]);
    expect(result.status).toBe(3);
    expect(result.stderr).toMatch(/^filterctl: lookup in backend failed: .*ECONNREFUSED/);
  });
});
