/**
 * Hostile input against rule regexes, on the real `filterctl serve`: a HELO and a 64 KiB header
 * built to make a backtracking engine run for minutes. Rule regexes run in linear time, so the
 * hostile session gets its answer at once and a normal session on another connection is not held
 * up. (With V8's backtracking RegExp the event loop stalled: no reply to anyone within 5 s.)
 * Loopback only; every wait is bounded by the client's reply timeout.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MilterClient } from "../../src/milter/index.js";
import { ServeProcess } from "../support/serve-process.js";

const RULES = `
defaults:
  error_reply: "451 4.3.0 Temporary lookup failure, try again later"
rules:
  - name: only-a
    on: helo
    if: helo matches /^(a+)+$/
    then: reject 550 5.7.1 "HELO of only a"
  - name: words-only
    on: eoh
    if: header("Subject") matches /^(\\w+\\s?)*$/
    then: reject 550 5.7.1 "Subject of words only"
  - name: heavy
    on: eoh
    if: header("X-Heavy") matches /x.{0,999}x.{0,999}x.{0,999}x.{0,999}x.{0,999}q/
    then: reject 550 5.7.1 "Heavy"
  - name: no-bounces
    on: mail
    if: from == ""
    then: reject 550 5.7.1 "No bounces here"
  - name: no-such-user
    on: rcpt
    if: rcpt == "nobody@example.org"
    then: reject 550 5.1.1 "No such user"
`;

/** A reply later than this counts as a stall (the machine is shared; matching takes < 5 ms). */
const PROMPT_MS = 1000;
/** Past this the client gives up waiting, so a stalled server fails the test instead of hanging it. */
const REPLY_TIMEOUT_MS = 4000;

/** The fallback reply (defaults.error_reply) an event gets when its rules fail. */
const FALLBACK = { type: "replycode", text: "451 4.3.0 Temporary lookup failure, try again later" };

let dir: string;
let serve: ServeProcess;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "filterctl-hostile-regex-"));
  const config = join(dir, "rules.yaml");
  writeFileSync(config, RULES);
  serve = await ServeProcess.start({ config, keep: (line) => line.msg !== "event" });
});

afterAll(async () => {
  await serve?.stop(3000);
  rmSync(dir, { recursive: true, force: true });
});

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function timed<T>(work: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work;
  return { value, ms: performance.now() - started };
}

async function session(client = "192.0.2.10"): Promise<MilterClient> {
  const milter = await MilterClient.connect(serve.listen, REPLY_TIMEOUT_MS);
  await milter.negotiate();
  await milter.connectInfo({ hostname: "client.example", family: "inet", port: 2525, address: client });
  return milter;
}

/** A normal session's HELO, MAIL and RCPTs, each reply timed. */
async function normalSession(): Promise<{ replies: unknown[]; slowest: number }> {
  const milter = await session("192.0.2.20");
  const steps = [
    () => milter.helo("mail.example.net"),
    () => milter.mail("<alice@example.net>"),
    () => milter.rcpt("<bob@example.org>"),
    () => milter.rcpt("<nobody@example.org>"),
  ];
  const replies: unknown[] = [];
  let slowest = 0;
  for (const step of steps) {
    const { value, ms } = await timed(step());
    replies.push(value);
    slowest = Math.max(slowest, ms);
  }
  milter.quit();
  return { replies, slowest };
}

const NORMAL_REPLIES = [
  { type: "continue" },
  { type: "continue" },
  { type: "continue" },
  { type: "replycode", text: "550 5.1.1 No such user" },
];

describe("rule regexes against hostile input", () => {
  it("answers a HELO built for catastrophic backtracking at once, and other sessions meanwhile", async () => {
    const evil = await session();
    const [evilAnswer, normal] = await Promise.all([
      timed(evil.helo(`${"a".repeat(34)}!`)),
      // The server has read the hostile HELO by the time the normal session speaks.
      delay(20).then(normalSession),
    ]);

    expect(normal.replies).toEqual(NORMAL_REPLIES);
    expect(normal.slowest).toBeLessThan(PROMPT_MS);
    expect(evilAnswer.value).toEqual({ type: "continue" });
    expect(evilAnswer.ms).toBeLessThan(PROMPT_MS);
    evil.quit();

    // The rule is live: a HELO of only a is rejected by it.
    const plain = await session();
    expect(await plain.helo("a".repeat(34))).toEqual({ type: "replycode", text: "550 5.7.1 HELO of only a" });
    plain.quit();
  });

  it("matches a rule regex against a 64 KiB header quickly, without holding up other sessions", async () => {
    const words = "word ".repeat(13_107); // 65,535 characters
    const evil = await session();
    await evil.helo("mail.example.net");
    await evil.mail("<carol@example.net>");
    await evil.rcpt("<bob@example.org>");
    await evil.data();
    await evil.header("Subject", `${words}!`);
    const [evilAnswer, normal] = await Promise.all([timed(evil.eoh()), delay(20).then(normalSession)]);

    expect(normal.replies).toEqual(NORMAL_REPLIES);
    expect(normal.slowest).toBeLessThan(PROMPT_MS);
    expect(evilAnswer.value).toEqual({ type: "continue" });
    expect(evilAnswer.ms).toBeLessThan(PROMPT_MS);
    evil.abort();

    // Without the '!' the whole value is words: the rule matches and rejects, just as fast.
    await evil.mail("<carol@example.net>");
    await evil.rcpt("<bob@example.org>");
    await evil.data();
    await evil.header("Subject", words);
    const matching = await timed(evil.eoh());
    expect(matching.value).toEqual({ type: "replycode", text: "550 5.7.1 Subject of words only" });
    expect(matching.ms).toBeLessThan(PROMPT_MS);
    evil.quit();
    expect(serve.running).toBe(true);
  });

  it("runs a heavy pattern on a long header off the event loop, and gives up on it after 5 s", async () => {
    // 9998 instructions, all alive at once on this text: ~12 s of matching, on any RE2 engine.
    const heavy = `q${"x".repeat(65_535)}`;
    const milter = await MilterClient.connect(serve.listen, 15_000);
    await milter.negotiate();
    await milter.connectInfo({
      hostname: "client.example",
      family: "inet",
      port: 2525,
      address: "192.0.2.30",
    });
    await milter.helo("mail.example.net");
    await milter.mail("<dave@example.net>");
    await milter.rcpt("<bob@example.org>");
    await milter.data();
    await milter.header("Subject", "hello!");
    await milter.header("X-Heavy", heavy);
    const [evilAnswer, normal] = await Promise.all([timed(milter.eoh()), delay(20).then(normalSession)]);

    expect(normal.replies).toEqual(NORMAL_REPLIES);
    expect(normal.slowest).toBeLessThan(PROMPT_MS);
    // The match is abandoned at its deadline: the event gets the fallback reply, not a stall.
    expect(evilAnswer.value).toEqual(FALLBACK);
    expect(evilAnswer.ms).toBeGreaterThan(4000);
    expect(evilAnswer.ms).toBeLessThan(9000);
    milter.quit();
    // A long header with a light pattern still gets its answer (the worker was replaced).
    const second = await session();
    await second.helo("mail.example.net");
    await second.mail("<dave@example.net>");
    await second.rcpt("<bob@example.org>");
    await second.data();
    await second.header("Subject", "hello!");
    await second.header("X-Heavy", `${"x".repeat(300)}q`);
    expect(await second.eoh()).toEqual({ type: "replycode", text: "550 5.7.1 Heavy" });
    second.quit();
  });
});
