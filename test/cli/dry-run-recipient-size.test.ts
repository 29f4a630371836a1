/**
 * `filterctl dry-run`, the real binary, on what issue 10 changed: accept at rcpt accepts one
 * recipient (the "recipients:" lines say so), `size` at eom is the whole message of --message
 * (exact bytes, whatever line ends the file has), and client.net comes from --client-ip.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./run.js";

let dir: string;
let config: string;

const RULES = `sources:
  spool:
    type: mbox
    path: "SPOOLS/{user}"
    quota: 1KB
rules:
  - on connect: log "network {client.net}"
  - name: postmaster
    on: rcpt
    if: rcpt.local == "postmaster"
    then: accept
  - name: mailbox-full
    on: rcpt
    if: quota(rcpt, spool) over
    then: tempfail 452 4.2.2 "Mailbox of {rcpt} is full"
  - on eom: add header "X-Size" "{size}"
`;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "filterctl-dry-run-"));
  for (const user of ["postmaster", "full"]) writeFileSync(join(dir, user), "x".repeat(2000));
  config = join(dir, "rules.yaml");
  writeFileSync(config, RULES.replace("SPOOLS", dir));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function dryRun(...args: string[]) {
  return runCli(["dry-run", "--config", config, "--from", "a@example.net", ...args]);
}

describe("filterctl dry-run", () => {
  it("accept at rcpt: that recipient accepted by its rule, the next one still checked, the message goes on", () => {
    const result = dryRun(
      "--client-ip",
      "192.0.2.1",
      "--rcpt",
      "postmaster@example.org",
      "--rcpt",
      "full@example.org",
    );
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    const out = result.stdout.replace(/\(\d+\.\d ms\)/g, "(T ms)");
    expect(out).toContain(
      [
        "rcpt    postmaster@example.org",
        "  rule postmaster: accept",
        "  => accept (rule postmaster)",
        "rcpt    full@example.org",
        "  rule postmaster: no decision",
        "  rule mailbox-full: tempfail",
      ].join("\n"),
    );
    expect(out).toContain("\neom\n");
    expect(out).toMatch(
      /\nrecipients:\n {2}postmaster@example\.org {2}accept \(rule postmaster\)\n {2}full@example\.org {8}tempfail 452 4\.2\.2 Mailbox of full@example\.org is full \(rule mailbox-full\)\n/,
    );
    expect(out).toMatch(/\nresult: accept\n$/);
  });

  it("size at eom is the whole --message, exactly; a file with bare LFs counts as the MTA sends it (CRLF)", () => {
    // "Subject: hello" + CRLF = 16, "X-Folded: a" CRLF "\tb" CRLF = 17, blank line 2, "Hi." CRLF = 5.
    const crlf = "Subject: hello\r\nX-Folded: a\r\n\tb\r\n\r\nHi.\r\n";
    writeFileSync(join(dir, "crlf.eml"), crlf);
    writeFileSync(join(dir, "lf.eml"), crlf.replace(/\r\n/g, "\n"));
    for (const file of ["crlf.eml", "lf.eml"]) {
      const result = dryRun(
        "--client-ip",
        "192.0.2.1",
        "--rcpt",
        "b@example.org",
        "--message",
        join(dir, file),
      );
      expect(result.status).toBe(0);
      expect(result.stdout, file).toContain("header added: X-Size: 40 (rule rule-4)");
    }
  });

  it("client.net from --client-ip: the /24 of IPv4, the /64 of IPv6", () => {
    for (const [ip, net] of [
      ["192.0.2.77", "192.0.2.0/24"],
      ["2001:DB8:1:2::77", "2001:db8:1:2::/64"],
      ["::ffff:198.51.100.9", "198.51.100.0/24"],
    ]) {
      const result = dryRun("--client-ip", ip as string, "--rcpt", "b@example.org");
      expect(result.stdout).toContain(`    log: network ${net}\n`);
    }
  });
});
