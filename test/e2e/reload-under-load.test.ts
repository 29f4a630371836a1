/**
 * Issue #5: hot reload and SIGTERM while mail flows. A load generator (MilterClient, as an MTA
 * would talk) keeps many milter sessions going against the real `filterctl serve` while the
 * test rewrites its rules file 20 times, valid and invalid edits alternating, in place and by
 * rename (as editors do). Every rules version answers the probe recipient with a reply naming
 * the version (550 for even versions, 451 for odd ones) and adds a header naming it at end of
 * message, so each transaction says which rules served it.
 *
 * Asserted: no session fails; every reply is the one of a version that was valid at the time;
 * a transaction keeps the rules it started with (RCPT and end-of-message agree); the server
 * never goes back to older rules (a transaction that starts after another ended sees the same
 * version or a newer one); each valid edit is served within 2 s of the write; an invalid one
 * changes nothing and is logged with file:line:col. Then SIGTERM under load: the sessions in
 * flight complete, new connections are refused, the process exits 0.
 */
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MilterClient } from "../../src/milter/index.js";
import { type LogLine, ServeProcess } from "../support/serve-process.js";
import { freePort } from "./processes.js";

const WORKERS = 16;
/** Bounds of the load generator, whatever happens. */
const MAX_SESSIONS = 200_000;
const MAX_LOAD_MS = 90_000;
const VALID_EDITS = 10;
/** The SPEC's bound from a valid write to new transactions served by it. */
const RELOAD_BOUND_MS = 2000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The `then:` of the probe rule for a version: even versions reject, odd ones defer. */
function probeReply(version: number): string {
  return version % 2 === 0
    ? `550 5.7.1 probe refused by version ${version}`
    : `451 4.7.1 probe deferred by version ${version}`;
}

function thenOf(version: number): string {
  const [code, xcode, ...words] = probeReply(version).split(" ");
  return `${code?.startsWith("5") ? "reject" : "tempfail"} ${code} ${xcode} "${words.join(" ")}"`;
}

/**
 * A valid version. Line numbers matter (the invalid variants below name them):
 *  7 type, 8 items, 11 on, 12 if, 13 then.
 */
function validRules(
  version: number,
  overrides: Partial<Record<"type" | "items" | "on" | "if" | "then", string>> = {},
) {
  return `# reload-under-load rules, version ${version}
shutdown_timeout: 20s
defaults:
  on_error: tempfail
sources:
  probes:
    type: ${overrides.type ?? "list"}
    items: ${overrides.items ?? '["probe@example.org"]'}
rules:
  - name: probe-rule
    on: ${overrides.on ?? "rcpt"}
    if: ${overrides.if ?? "rcpt in probes"}
    then: ${overrides.then ?? thenOf(version)}
  - on eom: add header "X-Rules-Version" "${version}"
`;
}

interface InvalidEdit {
  what: string;
  content: string;
  /** Where the error must be reported; column undefined = any. */
  line: number;
  column?: number;
  message: RegExp;
}

/** Invalid edits; each would serve version `marker` if it were (wrongly) taken. */
function invalidEdit(k: number, marker: number): InvalidEdit {
  const variants: InvalidEdit[] = [
    {
      what: "unknown source (typo)",
      content: validRules(marker, { if: "rcpt in probez" }),
      line: 12,
      column: 17,
      message: /probez/,
    },
    {
      what: "reject with a 4xx code",
      content: validRules(marker, { then: `reject 451 4.7.1 "probe refused by version ${marker}"` }),
      line: 13,
      message: /4\d\d|5xx|reject/i,
    },
    {
      what: "unknown source type (schema)",
      content: validRules(marker, { type: "lst" }),
      line: 7,
      column: 11,
      message: /lst|type/,
    },
    {
      what: "value used before its stage",
      content: validRules(marker, { on: "connect" }),
      line: 12,
      message: /rcpt/,
    },
    {
      what: "YAML syntax error (unclosed flow sequence)",
      content: validRules(marker, { items: '["probe@example.org"' }),
      line: 0,
      message: /./,
    },
  ];
  return variants[k % variants.length] as InvalidEdit;
}

interface Transaction {
  session: number;
  /** When MAIL was sent, and when the end-of-message reply came (ms, Date.now()). */
  mailAt: number;
  endAt: number;
  version: number;
}

interface SessionRecord {
  id: number;
  /** When the negotiation reply came (the session is then in flight). */
  negotiatedAt: number;
  endAt?: number;
  error?: string;
}

class LoadGenerator {
  readonly transactions: Transaction[] = [];
  readonly sessions: SessionRecord[] = [];
  stopAt: number | undefined;
  private stopping = false;
  private nextId = 0;
  private workers: Promise<void>[] = [];

  constructor(
    private readonly spec: string,
    private readonly validVersions: Set<number>,
  ) {}

  start(): void {
    const until = Date.now() + MAX_LOAD_MS;
    for (let w = 0; w < WORKERS; w++) this.workers.push(this.worker(w, until));
  }

  /** From now on connections may be refused (SIGTERM sent). */
  markStop(): void {
    this.stopAt = Date.now();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.workers);
  }

  get failures(): SessionRecord[] {
    return this.sessions.filter((s) => s.error !== undefined);
  }

  private async worker(w: number, until: number): Promise<void> {
    while (!this.stopping && Date.now() < until && this.nextId < MAX_SESSIONS) {
      const id = this.nextId++;
      let client: MilterClient;
      try {
        client = await MilterClient.connect(this.spec, 10_000);
        await client.negotiate();
      } catch (error) {
        // After SIGTERM a refused connection is expected; before, it is a failure.
        if (this.stopAt !== undefined) return;
        this.sessions.push({ id, negotiatedAt: Date.now(), error: `connect/negotiate: ${String(error)}` });
        continue;
      }
      const record: SessionRecord = { id, negotiatedAt: Date.now() };
      this.sessions.push(record);
      try {
        await this.session(client, id, w);
        record.endAt = Date.now();
      } catch (error) {
        record.error = String(error);
      } finally {
        client.destroy();
      }
      if (this.stopAt !== undefined) return;
    }
  }

  private check(condition: boolean, what: string): void {
    if (!condition) throw new Error(what);
  }

  /**
   * One session outside the workers that stops before DATA until `release` resolves: it is
   * mid-transaction for as long as the test wants. Resolves with its version, or rejects.
   */
  async held(release: Promise<void>): Promise<SessionRecord> {
    const id = this.nextId++;
    const client = await MilterClient.connect(this.spec, 30_000);
    await client.negotiate();
    const record: SessionRecord = { id, negotiatedAt: Date.now() };
    this.sessions.push(record);
    try {
      await this.session(client, id, WORKERS + (id % 100), release);
      record.endAt = Date.now();
    } catch (error) {
      record.error = String(error);
    } finally {
      client.destroy();
    }
    return record;
  }

  private async session(client: MilterClient, id: number, w: number, hold?: Promise<void>): Promise<void> {
    const continues = (r: unknown) => r === undefined || (r as { type: string }).type === "continue";
    let r = await client.connectInfo({
      hostname: `client${w}.example`,
      family: "inet",
      port: 40000 + w,
      address: `192.0.2.${w + 1}`,
    });
    this.check(continues(r), `connect: ${JSON.stringify(r)}`);
    r = await client.helo(`client${w}.example`);
    this.check(continues(r), `helo: ${JSON.stringify(r)}`);
    // One or two transactions; some pause in the middle, so sessions overlap reloads and SIGTERM.
    const count = 1 + (id % 2);
    for (let t = 0; t < count; t++) {
      const mailAt = Date.now();
      r = await client.mail(`<sender${id}@example.net>`, ["SIZE=100"]);
      this.check(continues(r), `mail: ${JSON.stringify(r)}`);
      const probe = await client.rcpt("<probe@example.org>");
      this.check(probe?.type === "replycode", `probe rcpt: ${JSON.stringify(probe)}`);
      const text = probe?.type === "replycode" ? probe.text : "";
      const version = Number(/ by version (\d+)$/.exec(text)?.[1] ?? Number.NaN);
      this.check(this.validVersions.has(version) && text === probeReply(version), `probe reply '${text}'`);
      r = await client.rcpt(`<user${id}@example.org>`);
      this.check(continues(r), `user rcpt: ${JSON.stringify(r)}`);
      if (hold !== undefined && t === 0) await hold;
      else if (id % 5 === 0) await sleep(20 + (id % 40));
      r = await client.data();
      this.check(continues(r), `data: ${JSON.stringify(r)}`);
      r = await client.header("Subject", `load ${id}.${t}`);
      this.check(continues(r), `header: ${JSON.stringify(r)}`);
      r = await client.eoh();
      this.check(continues(r), `eoh: ${JSON.stringify(r)}`);
      r = await client.body(Buffer.from(`body of ${id}.${t}\r\n`));
      this.check(continues(r), `body: ${JSON.stringify(r)}`);
      const eom = await client.eom();
      this.check(eom.reply.type === "continue", `eom: ${JSON.stringify(eom.reply)}`);
      const added = eom.modifications.filter((m) => m.type === "addHeader");
      // The transaction kept the rules it started with.
      this.check(
        added.length === 1 &&
          added[0]?.type === "addHeader" &&
          added[0].name === "X-Rules-Version" &&
          added[0].value === String(version),
        `eom of a version ${version} transaction added ${JSON.stringify(added)}`,
      );
      this.transactions.push({ session: id, mailAt, endAt: Date.now(), version });
    }
    client.quit();
  }
}

describe("filterctl serve: 20 rules rewrites and SIGTERM under load", () => {
  let dir: string;
  let rules: string;
  let serve: ServeProcess;
  let load: LoadGenerator;
  const validVersions = new Set<number>([0]);
  /** When each valid version was written (after the write or rename returned). */
  const writtenAt = new Map<number, number>();
  let metricsPort: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "filterctl-reload-"));
    rules = join(dir, "rules.yaml");
    await writeFile(rules, validRules(0));
    writtenAt.set(0, Date.now());
    metricsPort = await freePort();
    // Decisions (one per transaction) are counted, not kept.
    serve = await ServeProcess.start({
      config: rules,
      args: ["--metrics", `127.0.0.1:${metricsPort}`],
      keep: (line) => line.msg !== "decision",
    });
    for (let v = 1; v <= VALID_EDITS; v++) validVersions.add(v);
    load = new LoadGenerator(serve.listen, validVersions);
  });

  afterAll(async () => {
    await load?.stop();
    await serve?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  /** Writes the file in place, or (editors) a temporary file renamed over it. */
  async function write(content: string, byRename: boolean): Promise<number> {
    if (byRename) {
      const temporary = join(dir, `.rules.yaml.${process.pid}.tmp`);
      await writeFile(temporary, content);
      await rename(temporary, rules);
    } else {
      await writeFile(rules, content);
    }
    return Date.now();
  }

  async function firstTransactionWith(version: number, timeoutMs: number): Promise<Transaction | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const seen = load.transactions
        .filter((t) => t.version === version)
        .sort((a, b) => a.mailAt - b.mailAt)[0];
      if (seen !== undefined || Date.now() > deadline) return seen;
      await sleep(10);
    }
  }

  it("serves each valid edit within 2 s, ignores each invalid one, and fails no session", async () => {
    load.start();
    expect(await firstTransactionWith(0, 10_000), serve.tail()).toBeDefined();
    const latencies: number[] = [];
    let refusedSoFar = 0;
    for (let k = 1; k <= VALID_EDITS; k++) {
      // A valid edit: the next version.
      const at = await write(validRules(k), k % 2 === 0);
      writtenAt.set(k, at);
      const first = await firstTransactionWith(k, 5000);
      expect(first, `version ${k} never served:\n${serve.tail()}`).toBeDefined();
      latencies.push((first as Transaction).mailAt - at);
      await sleep(250);

      // An invalid edit: nothing may change, and the log says where the error is.
      const bad = invalidEdit(k - 1, 1000 + k);
      const before = serve.lines.length;
      await write(bad.content, k % 2 === 1);
      const refused = await serve.waitForLine(
        (l) => String(l.msg).startsWith("reload refused") && serve.lines.indexOf(l) >= before,
        5000,
      );
      refusedSoFar++;
      expect(refused).toMatchObject({ level: 50, generation: k + 1 });
      const errors = serve.lines
        .slice(before, serve.lines.indexOf(refused))
        .filter((l) => l.level === 50 && typeof l.line === "number");
      expect(errors.length, `${bad.what}: no located error:\n${serve.tail()}`).toBeGreaterThan(0);
      for (const error of errors) {
        expect(error.file, bad.what).toBe(rules);
        expect(String(error.msg), bad.what).toContain(`rules.yaml:${error.line}:${error.column}: error:`);
      }
      const located = errors.find(
        (e) =>
          (bad.line === 0 || e.line === bad.line) && (bad.column === undefined || e.column === bad.column),
      );
      expect(
        located,
        `${bad.what}: expected an error at ${bad.line}:${bad.column ?? "*"}, got ${JSON.stringify(errors)}`,
      ).toBeDefined();
      expect(String(located?.msg), bad.what).toMatch(bad.message);
      await sleep(350);
    }

    // Every valid edit was served within the bound; the slowest one is reported.
    expect(Math.max(...latencies), `latencies ${latencies.join(", ")} ms`).toBeLessThan(RELOAD_BOUND_MS);
    expect(serve.lines.filter((l) => String(l.msg).startsWith("reload refused"))).toHaveLength(refusedSoFar);
    const reloaded = serve.lines.filter((l) => String(l.msg).startsWith("reloaded: serving generation"));
    expect(reloaded.map((l) => l.generation)).toEqual(Array.from({ length: VALID_EDITS }, (_, i) => i + 2));

    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(
      new RegExp(`^filterctl_reloads_total\\{result="success"\\} ${VALID_EDITS}$`, "m"),
    );
    expect(metrics).toMatch(
      new RegExp(`^filterctl_reloads_total\\{result="failure"\\} ${VALID_EDITS}$`, "m"),
    );
    expect(metrics).toMatch(new RegExp(`^filterctl_config_generation ${VALID_EDITS + 1}$`, "m"));

    // The load: no failure; each transaction's version was valid and already written when it
    // ended, and no older than the versions written 2 s before it started.
    expect(load.failures, JSON.stringify(load.failures.slice(0, 5))).toEqual([]);
    const done = load.transactions;
    expect(done.length).toBeGreaterThan(500);
    const versionsWrittenBefore = (t: number) => [...writtenAt].filter(([, at]) => at <= t).map(([v]) => v);
    for (const tx of done) {
      expect(Math.max(...versionsWrittenBefore(tx.endAt))).toBeGreaterThanOrEqual(tx.version);
      const due = versionsWrittenBefore(tx.mailAt - RELOAD_BOUND_MS);
      if (due.length > 0) expect(tx.version, JSON.stringify(tx)).toBeGreaterThanOrEqual(Math.max(...due));
    }
    // Never back to older rules: a transaction that started after another ended sees the same
    // version or a newer one.
    const byEnd = [...done].sort((a, b) => a.endAt - b.endAt);
    const byStart = [...done].sort((a, b) => a.mailAt - b.mailAt);
    let ended = 0;
    let newestEnded = -1;
    for (const tx of byStart) {
      while (ended < byEnd.length && (byEnd[ended] as Transaction).endAt < tx.mailAt) {
        newestEnded = Math.max(newestEnded, (byEnd[ended] as Transaction).version);
        ended++;
      }
      if (tx.version < newestEnded)
        expect.fail(`transaction ${JSON.stringify(tx)} went back from version ${newestEnded}`);
    }
    // Every version was served, each by more than a handful of transactions.
    for (const v of validVersions)
      expect(done.filter((t) => t.version === v).length, `version ${v}`).toBeGreaterThan(5);
  }, 90_000);

  it("on SIGTERM under load, lets the sessions in flight complete and exits 0", async () => {
    // The load is still running (the previous test left it on). Three more sessions stop
    // mid-transaction (after RCPT) until released, so the drain has something to wait for.
    const sessionsBefore = load.sessions.length;
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const held = [load.held(released), load.held(released), load.held(released)];
    await sleep(300);
    expect(load.sessions.length).toBeGreaterThan(sessionsBefore + 3);

    load.markStop();
    const signalledAt = Date.now();
    serve.signal("SIGTERM");
    await serve.waitForLine((l) => String(l.msg).startsWith("stopping"), 5000);
    // No new connection is served while the old ones drain.
    const late = await MilterClient.connect(serve.listen, 2000)
      .then((client) =>
        client.negotiate().then(
          () => "served",
          () => "closed",
        ),
      )
      .catch(() => "refused");
    expect(late).not.toBe("served");
    await sleep(500);
    expect(serve.running, "exited before the sessions in flight were done").toBe(true);
    release();
    const heldDone = await Promise.all(held);
    const status = await serve.waitForExit(20_000);
    await load.stop();
    expect(status, serve.tail()).toEqual({ code: 0, signal: null });

    expect(heldDone.map((s) => s.error)).toEqual([undefined, undefined, undefined]);
    // They finished with the rules they started with: the last valid version.
    const heldVersions = load.transactions
      .filter((t) => heldDone.some((s) => s.id === t.session))
      .map((t) => t.version);
    expect(heldVersions.slice(0, 3)).toEqual([VALID_EDITS, VALID_EDITS, VALID_EDITS]);
    const inFlight = load.sessions.filter(
      (s) => s.negotiatedAt < signalledAt && (s.endAt ?? Number.POSITIVE_INFINITY) > signalledAt,
    );
    expect(inFlight.length, "sessions in flight at SIGTERM").toBeGreaterThan(3);
    expect(inFlight.filter((s) => s.error !== undefined || s.endAt === undefined)).toEqual([]);
    expect(load.failures, JSON.stringify(load.failures.slice(0, 5))).toEqual([]);
    expect(serve.find((l: LogLine) => l.msg === "stopped")).toMatchObject({ cut: 0 });
  }, 60_000);
});

describe("filterctl serve: a reload that needs what an open connection did not negotiate", () => {
  let dir: string;
  let serve: ServeProcess;

  afterAll(async () => {
    await serve?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it("keeps that connection on the rules it negotiated for (no decision lost), new connections get the new rules", async () => {
    dir = await mkdtemp(join(tmpdir(), "filterctl-reload-needs-"));
    const rules = join(dir, "rules.yaml");
    // Generation 1 decides at RCPT only: MAIL and end of headers are not asked for with replies.
    await writeFile(
      rules,
      'rules:\n  - on rcpt: if rcpt.local == "probe" then reject 550 5.7.1 "probe, first rules"\n',
    );
    serve = await ServeProcess.start({ config: rules });
    const old = await MilterClient.connect(serve.listen);
    await old.negotiate();
    await old.connectInfo({ hostname: "old.example", family: "inet", port: 1025, address: "192.0.2.1" });

    await writeFile(
      rules,
      `rules:
  - on rcpt: if rcpt.local == "probe" then reject 550 5.7.1 "probe, second rules"
  - on mail: if from.local == "bad" then reject 550 5.7.1 "bad sender"
  - on eoh: if header("Subject") == "spam" then reject 550 5.7.1 "spam subject"
`,
    );
    await serve.waitForLine((l) => l.msg === "reloaded: serving generation 2", 5000);

    // A new connection negotiates for the new rules and gets their decisions.
    const fresh = await MilterClient.connect(serve.listen);
    await fresh.negotiate();
    await fresh.connectInfo({ hostname: "new.example", family: "inet", port: 1026, address: "192.0.2.2" });
    expect(await fresh.mail("<bad@example.org>")).toEqual({
      type: "replycode",
      text: "550 5.7.1 bad sender",
    });
    fresh.quit();

    // The old connection was negotiated without a reply at MAIL and without end of headers:
    // the new rules' decisions there could not reach the MTA, so it keeps generation 1.
    expect(await old.mail("<bad@example.org>")).toBeUndefined();
    expect(await old.rcpt("<probe@example.org>")).toEqual({
      type: "replycode",
      text: "550 5.7.1 probe, first rules",
    });
    old.quit();
    await serve.waitForLine((l) => l.conn === 1 && l.msg === "decision" && l.stage === "rcpt", 5000);
    const kept = await serve.waitForLine(
      (l) => String(l.msg).startsWith("connection 1 keeps generation 1"),
      5000,
    );
    expect(kept).toMatchObject({ generation: 1, current: 2 });
    // Every decision logged for the old connection is one the MTA was told.
    const decisions = serve.lines.filter((l) => l.msg === "decision");
    expect(decisions.map((l) => [l.conn, l.generation, l.stage, l.reply])).toEqual([
      [2, 2, "mail", "550 5.7.1 bad sender"],
      [1, 1, "rcpt", "550 5.7.1 probe, first rules"],
    ]);
  });
});
