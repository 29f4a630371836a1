/**
 * Issue #12 end to end: `filterctl serve --journal` behind a real Postfix records the traffic
 * swaks sends; `filterctl replay` with a candidate that tightens one rule (the size limit) names
 * exactly the transactions that would change, answering the list lookups from the journal.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JournalRecord } from "../../src/engine/journal/record.js";
import type { ReplayReport } from "../../src/engine/journal/replay.js";
import { FILTERCTL_BIN, ServeProcess } from "../support/serve-process.js";
import { PostfixInstance } from "./postfix-instance.js";
import { run } from "./processes.js";
import { swaks } from "./smtp.js";

function rulesYaml(sizeLimit: string): string {
  return `sources:
  known:
    type: list
    items: ["alice@example.org", "bob@example.org"]
rules:
  - name: local-senders
    on: mail
    if: from.domain == "example.org" and from not in known
    then: reject 550 5.7.1 "unknown sender {from}"
  - name: size-limit
    on: eom
    if: size > ${sizeLimit}
    then: reject 552 5.3.4 "Message too big"
`;
}

/** Bodies: a short one, and one past the candidate's 2KB limit (not the served 1MB). */
const SHORT = "Hello.";
const LONG = "x".repeat(70).concat("\n").repeat(40);

const TRAFFIC = [
  { from: "alice@example.org", to: ["carol@example.net"], body: SHORT },
  { from: "alice@example.org", to: ["dave@example.net"], body: LONG },
  { from: "mallory@example.org", to: ["carol@example.net"], body: LONG },
  { from: "someone@example.com", to: ["bob@example.org", "carol@example.net"], body: LONG },
  { from: "someone@example.com", to: ["carol@example.net"], body: SHORT },
];

describe("serve --journal behind Postfix, then replay against a tightened candidate", () => {
  let dir: string;
  let serve: ServeProcess;
  let postfix: PostfixInstance;
  let journal: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "filterctl-journal-e2e-"));
    const rules = join(dir, "rules.yaml");
    await writeFile(rules, rulesYaml("1MB"));
    await writeFile(join(dir, "candidate.yaml"), rulesYaml("2KB"));
    journal = join(dir, "journal.jsonl");
    serve = await ServeProcess.start({ config: rules, args: ["--journal", journal] });
    postfix = await PostfixInstance.start({ milter: serve.postfixSpec });
    for (const message of TRAFFIC) {
      const sent = await swaks(postfix.smtpPort, { ...message, subject: `from ${message.from}` });
      expect(sent.code, sent.output).not.toBeNull();
    }
  }, 120_000);

  afterAll(async () => {
    await postfix?.stop();
    await serve?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  async function records(): Promise<JournalRecord[]> {
    // Written asynchronously, a moment after the connection closes.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const text = await readFile(journal, "utf8").catch(() => "");
      const parsed = text
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as JournalRecord);
      if (parsed.filter((r) => r.from !== undefined).length >= TRAFFIC.length || Date.now() > deadline)
        return parsed;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  it("journals each transaction with its envelope, lookups and decisions", async () => {
    const messages = (await records()).filter((r) => r.from !== undefined);
    expect(messages.map((r) => r.from)).toEqual(TRAFFIC.map((t) => t.from));
    const mallory = messages[2];
    expect(mallory?.stages).toContainEqual({
      stage: "mail",
      decision: {
        action: "reject",
        reply: "550 5.7.1 unknown sender mallory@example.org",
        rule: "local-senders",
      },
    });
    expect(mallory?.lookups).toContainEqual({
      kind: "has",
      source: "known",
      key: "mallory@example.org",
      answer: false,
    });
    expect(messages[3]).toMatchObject({
      end: "eom",
      rcpts: ["bob@example.org", "carol@example.net"],
      client: { ip: "127.0.0.1" },
    });
    expect(messages[3]?.size).toBeGreaterThan(2000);
    expect(messages[3]?.queue_id).toMatch(/^[0-9A-Za-z]+$/);
  });

  it("replay names exactly the transactions the tighter size limit refuses", async () => {
    await records();
    const args = [FILTERCTL_BIN, "replay", "--config", join(dir, "candidate.yaml"), journal];
    const json = await run(process.execPath, [...args, "--json"], { timeoutMs: 30_000 });
    expect(json.code, json.stderr).toBe(0);
    const report = JSON.parse(json.stdout) as ReplayReport;
    expect(report.askedLive).toBe(0);
    // The long message refused at MAIL never reached its end: unchanged.
    expect(report.groups.map((g) => [g.change, g.count])).toEqual([
      ["continue → reject 552 5.3.4 by rule size-limit (at eom)", 2],
    ]);
    expect(report.groups[0]?.examples.map((e) => [e.from, e.rcpts])).toEqual([
      ["alice@example.org", ["dave@example.net"]],
      ["someone@example.com", ["bob@example.org", "carol@example.net"]],
    ]);
    expect(report.totals).toMatchObject({ changed: 2, unchanged: report.totals.replayed - 2, skipped: 0 });

    const text = await run(process.execPath, args, { timeoutMs: 30_000 });
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(
      "continue → reject 552 5.3.4 by rule size-limit (at eom): 2 transactions\n",
    );
    expect(text.stdout).toMatch(/from <alice@example\.org> {2}to dave@example\.net {2}queue \w+/);
  });

  it("exits 2 for a journal it cannot read and 1 for an invalid candidate", async () => {
    const missing = await run(process.execPath, [
      FILTERCTL_BIN,
      "replay",
      "--config",
      join(dir, "candidate.yaml"),
      join(dir, "nope.jsonl"),
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("cannot read journal");
    const bad = join(dir, "bad.yaml");
    await writeFile(bad, "rules:\n  - on mail: if frm == 1 then reject\n");
    const invalid = await run(process.execPath, [FILTERCTL_BIN, "replay", "--config", bad, journal]);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/bad\.yaml:2:\d+: error/);
  });
});
