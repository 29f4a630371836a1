/**
 * The journal (serve --journal) and replay, without a server: the engine records a transaction
 * through its recording lookups, the writer rotates and survives a path it cannot write, and a
 * replay answers from the journal and groups what changed.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { JournalReadError, journalLines, unreadableJournal } from "../../src/engine/journal/read.js";
import type { JournalRecord } from "../../src/engine/journal/record.js";
import { parseJournal, replayJournal, type SkippedLine } from "../../src/engine/journal/replay.js";
import { JournalWriter } from "../../src/engine/journal/writer.js";
import { TransactionEngine } from "../../src/engine/transaction-engine.js";
import { FakeLookups, rules, rulesetOf, SOURCES } from "../runtime/helpers.js";

const CLIENT = { ip: "192.0.2.10", name: "mx.example.net", port: 25000 };

const SERVED = `${SOURCES}${rules(
  'on connect: if client.ip in trusted then log "trusted"',
  'on mail: if from.domain in directory.local_domains and from not in directory.addresses then reject 550 5.7.1 "no such sender"',
  'on rcpt: if quota(rcpt, mailboxes) over then tempfail 452 4.2.2 "full"',
  'shadow on rcpt: if rcpt.local == "postmaster" then reject 550 5.7.1 "shadow"',
  'on eom: if header("Subject") matches /viagra/i then reject 550 5.7.1 "spam"',
)}`;

function lookups(): FakeLookups {
  return new FakeLookups()
    .table("directory.local_domains", ["example.org"])
    .table("directory.addresses", ["alice@example.org"])
    .mailbox("mailboxes", "bob@example.org", { usage: 11_000, limit: 10_000, count: 1, countLimit: 0 })
    .mailbox("mailboxes", "alice@example.org", { usage: 1, limit: 10_000, count: 1, countLimit: 0 });
}

/** One transaction through an engine with a journal; answers the records written. */
async function journalled(
  send: (engine: TransactionEngine) => Promise<void>,
  fake = lookups(),
  yaml = SERVED,
): Promise<JournalRecord[]> {
  const records: JournalRecord[] = [];
  const engine = new TransactionEngine(
    { ruleset: rulesetOf(yaml), lookups: fake },
    { journal: { write: (r) => records.push(JSON.parse(JSON.stringify(r))) } },
  );
  await send(engine);
  engine.close();
  return records;
}

async function message(engine: TransactionEngine, from: string, rcpts: string[], subject = "hello") {
  await engine.connect(CLIENT, (name) => (name === "i" ? "4XyZ1" : undefined));
  await engine.helo("mx.example.net");
  await engine.mail({ sender: `<${from}>`, esmtpArgs: ["SIZE=300"] });
  for (const rcpt of rcpts) await engine.rcpt(`<${rcpt}>`);
  await engine.data();
  await engine.header("Subject", subject);
  await engine.header("X-Unread", "not read by any rule");
  await engine.eoh();
  await engine.body(100);
  await engine.eom();
}

describe("the journal of the transaction engine", () => {
  it("records the envelope, the headers rules read, each lookup's answer and each decision", async () => {
    const [record, ...more] = await journalled((e) =>
      message(e, "alice@example.org", ["bob@example.org", "alice@example.org", "postmaster@example.org"]),
    );
    expect(more).toEqual([]);
    expect(record).toMatchObject({
      v: 1,
      end: "eom",
      queue_id: "4XyZ1",
      client: CLIENT,
      helo: "mx.example.net",
      from: "alice@example.org",
      size_declared: 300,
      rcpts: ["bob@example.org", "alice@example.org", "postmaster@example.org"],
      headers: [["Subject", "hello"]],
    });
    expect(record?.size).toBe(
      "Subject: hello\r\n".length + "X-Unread: not read by any rule\r\n".length + 2 + 100,
    );
    expect(record?.lookups).toContainEqual({
      kind: "has",
      source: "directory",
      table: "local_domains",
      key: "example.org",
      answer: true,
    });
    // The connection's lookups (connect, HELO) are in every message's record.
    expect(record?.lookups[0]).toEqual({ kind: "has", source: "trusted", key: "192.0.2.10", answer: false });
    expect(record?.lookups).toContainEqual({
      kind: "quota",
      source: "mailboxes",
      key: "bob@example.org",
      answer: { usage: 11_000, limit: 10_000, count: 1, countLimit: 0 },
    });
    expect(record?.stages).toEqual([
      {
        stage: "rcpt",
        rcpt: "bob@example.org",
        decision: { action: "tempfail", reply: "452 4.2.2 full", rule: "rule-3" },
      },
      {
        stage: "rcpt",
        rcpt: "postmaster@example.org",
        shadow: [{ action: "reject", reply: "550 5.7.1 shadow", rule: "rule-4" }],
      },
    ]);
  });

  it("records a failed lookup, an aborted message and a connection without MAIL", async () => {
    const fake = lookups();
    fake.failing.add("directory");
    const records = await journalled(async (engine) => {
      await engine.connect(CLIENT);
      await engine.mail({ sender: "carol@example.org" });
      engine.abort();
      await engine.connect(CLIENT);
    }, fake);
    expect(records.map((r) => r.end)).toEqual(["abort", "connection"]);
    expect(records[0]?.lookups.find((l) => l.source === "directory")).toMatchObject({
      kind: "has",
      source: "directory",
      error: expect.any(String),
    });
    expect(records[0]?.stages[0]).toMatchObject({ stage: "mail", decision: { action: "tempfail" } });
  });
});

describe("the journal writer", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "filterctl-journal-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const record = (n: number): JournalRecord => ({
    v: 1,
    time: `2026-01-01T00:00:${String(n).padStart(2, "0")}Z`,
    end: "eom",
    client: { ip: "192.0.2.1", name: "[192.0.2.1]", port: 1 },
    from: `sender${n}@example.com`,
    rcpts: ["a@example.org"],
    lookups: [],
    stages: [],
  });

  it("rotates before max_size and keeps `keep` old files, newest first", async () => {
    const path = join(dir, "journal.jsonl");
    const lineBytes = JSON.stringify(record(10)).length + 1;
    const lost: number[] = [];
    const writer = new JournalWriter(
      { path, maxSizeBytes: lineBytes * 2, keep: 2 },
      { lost: (n) => lost.push(n) },
    );
    for (let n = 10; n < 17; n++) writer.write(record(n));
    await writer.close();
    const files = (await readdir(dir)).sort();
    expect(files).toEqual(["journal.jsonl", "journal.jsonl.1", "journal.jsonl.2"]);
    const senders = async (file: string) =>
      (await readFile(join(dir, file), "utf8"))
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as JournalRecord).from);
    // 7 records, 2 a file: 10-11 rotated away (keep 2), 12-13, 14-15, then 16.
    expect(await senders("journal.jsonl.2")).toEqual(["sender12@example.com", "sender13@example.com"]);
    expect(await senders("journal.jsonl.1")).toEqual(["sender14@example.com", "sender15@example.com"]);
    expect(await senders("journal.jsonl")).toEqual(["sender16@example.com"]);
    expect(lost).toEqual([]);
  });

  it("appends to an existing journal and counts its size", async () => {
    const path = join(dir, "journal.jsonl");
    await writeFile(path, `${JSON.stringify(record(1))}\n`);
    const writer = new JournalWriter({ path, maxSizeBytes: 100_000, keep: 1 }, { lost: () => {} });
    writer.write(record(2));
    await writer.close();
    expect((await readFile(path, "utf8")).trim().split("\n")).toHaveLength(2);
  });

  it("counts the records it cannot write and logs once, and mail flows on", async () => {
    const path = join(dir, "no-such-folder", "journal.jsonl");
    const lost: { records: number; log: boolean; error: string }[] = [];
    let now = 1_000_000;
    const writer = new JournalWriter(
      { path, maxSizeBytes: 100_000, keep: 1 },
      { lost: (records, error, log) => lost.push({ records, error, log }) },
      () => now,
    );
    writer.write(record(1));
    await new Promise((resolve) => setTimeout(resolve, 50));
    writer.write(record(2));
    now += 1000;
    writer.write(record(3));
    await writer.close();
    const counted = lost.reduce((sum, l) => sum + Math.max(l.records, 1), 0);
    expect(counted).toBeGreaterThanOrEqual(3);
    expect(lost.filter((l) => l.log)).toHaveLength(1);
    expect(lost[0]?.error).toMatch(/no-such-folder.*ENOENT/);
  });
});

describe("replay", () => {
  async function journalText(): Promise<string> {
    const records = await journalled(async (engine) => {
      await message(engine, "alice@example.org", ["alice@example.org"]);
      await message(engine, "dave@example.com", ["alice@example.org", "bob@example.org"]);
      await message(engine, "erin@example.com", ["alice@example.org"], "cheap viagra");
      await message(engine, "frank@example.com", ["alice@example.org"]);
    });
    return records.map((r) => JSON.stringify(r)).join("\n");
  }

  it("answers from the journal and groups the transactions whose outcome changed", async () => {
    const { lines, skipped } = parseJournal("j.jsonl", `${await journalText()}\nnot json\n{"v": 2}\n`);
    expect(skipped.map((s) => `${s.file}:${s.line}`)).toEqual(["j.jsonl:5", "j.jsonl:6"]);
    // The candidate refuses mail from example.com at MAIL, and no longer checks subjects.
    const candidate = rulesetOf(
      `${SOURCES}${rules(
        'on mail: if from.domain == "example.com" then reject 550 5.7.1 "not you"',
        'on rcpt: if quota(rcpt, mailboxes) over then tempfail 452 4.2.2 "full"',
      )}`,
    );
    // No live sources: every lookup must come from the journal.
    const report = await replayJournal(candidate, lines, { skipped });
    expect(report.askedLive).toBe(0);
    expect(report.totals).toEqual({ replayed: 4, changed: 3, unchanged: 1, skipped: 2 });
    // Only the first stage that changed is named: later ones follow from it.
    expect(report.groups.map((g) => [g.change, g.count])).toEqual([
      ["continue → reject 550 5.7.1 by rule rule-1 (at mail)", 3],
    ]);
    expect(report.groups[0]?.examples.map((e) => e.from)).toEqual([
      "dave@example.com",
      "erin@example.com",
      "frank@example.com",
    ]);
    expect(report.groups[0]?.examples[0]).toMatchObject({
      client: "192.0.2.10 (mx.example.net)",
      queue_id: "4XyZ1",
    });
  });

  it("names the stage that changed, each distinct change of several recipients once", async () => {
    const { lines } = parseJournal("j.jsonl", await journalText());
    // The quota rule no longer fires; the others are as served (same names: rule-N by position).
    const candidate = rulesetOf(SERVED.replace("quota(rcpt, mailboxes) over", 'rcpt.local == \\"nobody\\"'));
    const report = await replayJournal(candidate, lines);
    expect(report.groups.map((g) => [g.change, g.count])).toEqual([
      ["tempfail 452 4.2.2 by rule rule-3 → continue (at rcpt)", 1],
    ]);
    expect(report.groups[0]?.examples[0]).toMatchObject({ from: "dave@example.com", at: "j.jsonl:2" });
  });

  it("reads journal files line by line as it replays, with the same report as from their text", async () => {
    const dir = await mkdtemp(join(tmpdir(), "filterctl-read-"));
    const text = await journalText();
    const [first, ...rest] = text.split("\n");
    // Two files (two workers'), CRLF line ends, a blank line, a torn last line (a crash mid-write).
    const a = join(dir, "journal-w1.jsonl");
    const b = join(dir, "journal-w2.jsonl");
    await writeFile(a, `${first}\r\n\r\n`);
    await writeFile(b, `${rest.join("\n")}\n{"v": 1, "cli`);
    const candidate = rulesetOf(SERVED.replace("quota(rcpt, mailboxes) over", 'rcpt.local == \\"nobody\\"'));
    const skipped: SkippedLine[] = [];
    const streamed = await replayJournal(candidate, journalLines([a, b], skipped), { skipped });
    expect(skipped.map((s) => `${s.file.slice(dir.length + 1)}:${s.line}`)).toEqual(["journal-w2.jsonl:4"]);
    const parsed = parseJournal("j.jsonl", `${text}\n{"v": 1, "cli`);
    const whole = await replayJournal(candidate, parsed.lines, { skipped: parsed.skipped });
    expect(streamed.totals).toEqual(whole.totals);
    expect(streamed.totals).toMatchObject({ replayed: 4, changed: 1, skipped: 1 });
    expect(streamed.groups.map((g) => [g.change, g.count])).toEqual(
      whole.groups.map((g) => [g.change, g.count]),
    );
    expect(streamed.groups[0]?.examples[0]?.at).toBe(`${b}:1`);
    // Checked before anything is replayed: missing, a folder, readable.
    expect(await unreadableJournal([a, join(dir, "nope.jsonl")])).toBe(
      `cannot read journal ${join(dir, "nope.jsonl")}: no such file`,
    );
    expect(await unreadableJournal([dir])).toBe(`cannot read journal ${dir}: not a regular file`);
    expect(await unreadableJournal([a, b])).toBeUndefined();
    // Gone after the check: the read fails with the file's name, after the records read before it.
    const read: string[] = [];
    const failed = (async () => {
      for await (const line of journalLines([a, join(dir, "gone.jsonl")], [])) read.push(line.file);
    })();
    await expect(failed).rejects.toThrow(JournalReadError);
    await expect(failed).rejects.toThrow(`cannot read journal ${join(dir, "gone.jsonl")}: no such file`);
    expect(read).toEqual([a]);
    await rm(dir, { recursive: true, force: true });
  });

  it("changes nothing when the candidate is the served rules", async () => {
    const { lines } = parseJournal("j.jsonl", await journalText());
    const report = await replayJournal(rulesetOf(SERVED), lines);
    expect(report.totals).toMatchObject({ replayed: 4, changed: 0, unchanged: 4 });
    expect(report.askedLive).toBe(0);
  });

  it("asks the live sources what the journal lacks", async () => {
    const { lines } = parseJournal("j.jsonl", await journalText());
    const candidate = rulesetOf(
      `${SOURCES}${rules('on connect: if client.ip in spamhaus then reject 554 5.7.1 "listed"')}`,
    );
    const live = new FakeLookups().listed("spamhaus", "192.0.2.10");
    const report = await replayJournal(candidate, lines, { live });
    expect(report.askedLive).toBe(4);
    expect(report.groups.map((g) => [g.change, g.count])).toEqual([
      ["continue → reject 554 5.7.1 by rule rule-1 (at connect)", 4],
    ]);
  });
});
