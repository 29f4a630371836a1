/**
 * A load-generator process: plays the MTA side with `MilterClient`, one milter connection per
 * SMTP session as Postfix does, and checks every reply against the fixture.
 *
 * A session: negotiate; CONNECT, HELO, MAIL, two RCPTs, DATA, 8 headers, end of headers, a 2 KB
 * body, end of message, ABORT (Postfix sends one after every transaction), QUIT. Like Postfix
 * (milter8.c), it sends a stage's macros even when the stage itself was skipped at negotiation,
 * sends a skipped stage's command never, waits for a reply only where one is due, and writes
 * everything queued since the last reply in one write just before waiting (Postfix's VSTREAM
 * flushes on read). Header, end-of-header and body macros go only with their commands, as in
 * Postfix, whose MIME callbacks are not installed for skipped content stages.
 *
 * Driven over IPC by run.ts; every loop is bounded by a session count and a deadline.
 */
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import {
  Command,
  encodeCommand,
  type FinalResponse,
  type ListenAddress,
  MilterClient,
  type MilterCommand,
  type MilterResponse,
  type Stage,
} from "../src/milter/index.js";
import { type Mailbox, prng } from "./fixture.js";
import type { IdleOrder, IdleReport, LoadOrder, LoadReport, Order, Report } from "./messages.js";
import { Samples } from "./stats.js";

const REPLY_TIMEOUT_MS = 5_000;
const CONNECT_TIMEOUT_MS = 5_000;
const MAX_ERRORS = 100;
const MAX_SAMPLES = 20;
const OVER_QUOTA_TEXT = "452 4.2.2 Mailbox over quota";
const QUEUE_ID = "4XbF1k2Zq7z3";

/** Windows are compared in Date.now() time, the clock the orchestrator samples CPU time by. */
const inWindow = (window: { from: number; until: number }) => {
  const now = Date.now();
  return now >= window.from && now <= window.until;
};

function send(report: Report): void {
  process.send?.(report);
}

function encoded(command: MilterCommand): Buffer {
  return encodeCommand(command);
}

function macros(stage: number, pairs: [string, string][]): Buffer {
  return encoded({ type: "macro", forCommand: stage, macros: pairs });
}

/** One stage of the session whose bytes never change. */
interface FixedStep {
  stage: Stage;
  /** Macros sent before the command; for envelope stages even when the stage is skipped. */
  macro: Buffer | undefined;
  command: Buffer;
  macroEvenIfSkipped: boolean;
}

const ENVELOPE_STEPS: FixedStep[] = [
  {
    stage: "connect",
    macro: macros(Command.Connect, [
      ["j", "mx.bench.test"],
      ["{daemon_name}", "smtpd"],
      ["{daemon_addr}", "127.0.0.1"],
      ["v", "Postfix 3.7.11"],
      ["_", "client.bench.test [192.0.2.10]"],
    ]),
    command: encoded({
      type: "connect",
      hostname: "client.bench.test",
      family: "inet",
      port: 40123,
      address: "192.0.2.10",
    }),
    macroEvenIfSkipped: true,
  },
  {
    stage: "helo",
    // Postfix sends the TLS macros here; without TLS none has a value, so the packet has no pairs.
    macro: macros(Command.Helo, []),
    command: encoded({ type: "helo", name: "client.bench.test" }),
    macroEvenIfSkipped: true,
  },
  {
    stage: "mail",
    macro: macros(Command.Mail, [["{mail_addr}", "sender@bench.test"]]),
    command: encoded({ type: "mail", sender: "<sender@bench.test>", args: ["SIZE=2600", "BODY=8BITMIME"] }),
    macroEvenIfSkipped: true,
  },
];

const HEADERS: [string, string][] = [
  ["Received", "from client.bench.test (client.bench.test [192.0.2.10])\n\tby mx.bench.test (Postfix)"],
  ["From", "Sender <sender@bench.test>"],
  ["To", "Recipients <list@example.test>"],
  ["Subject", "Benchmark message"],
  ["Date", "Wed, 26 Nov 2025 14:00:00 +0000"],
  ["Message-ID", "<bench.0001@bench.test>"],
  ["MIME-Version", "1.0"],
  ["Content-Type", "text/plain; charset=utf-8"],
];

function bodyOf(size: number): Buffer {
  const line = "The quick brown fox jumps over the lazy dog, again and again.\r\n";
  return Buffer.from(`${line.repeat(Math.ceil(size / line.length)).slice(0, size - 2)}\r\n`, "latin1");
}

const QUEUE_MACRO: [string, string][] = [["i", QUEUE_ID]];
const CONTENT_STEPS: FixedStep[] = [
  {
    stage: "data",
    macro: macros(Command.Data, QUEUE_MACRO),
    command: encoded({ type: "data" }),
    macroEvenIfSkipped: true,
  },
  ...HEADERS.map(
    ([name, value]): FixedStep => ({
      stage: "header",
      macro: macros(Command.Header, QUEUE_MACRO),
      command: encoded({ type: "header", name, value }),
      macroEvenIfSkipped: false,
    }),
  ),
  {
    stage: "eoh",
    macro: macros(Command.EndOfHeaders, QUEUE_MACRO),
    command: encoded({ type: "eoh" }),
    macroEvenIfSkipped: false,
  },
  {
    stage: "body",
    macro: macros(Command.Body, QUEUE_MACRO),
    command: encoded({ type: "body", chunk: bodyOf(2048) }),
    macroEvenIfSkipped: false,
  },
];
const EOM_MACRO = macros(Command.EndOfMessage, QUEUE_MACRO);
const EOM = encoded({ type: "eom", chunk: Buffer.alloc(0) });
const ABORT = encoded({ type: "abort" });

function describe(response: MilterResponse): string {
  return response.type === "replycode" ? `'y' "${response.text}"` : `'${response.type}'`;
}

class SessionError extends Error {}

/** Bytes queued since the last reply; written in one go right before waiting, like Postfix. */
class Outbox {
  private readonly parts: Buffer[] = [];
  shape: string[] | undefined;

  constructor(
    private readonly client: MilterClient,
    private readonly replyMs: Samples,
    private readonly window: { from: number; until: number },
    recordShape: boolean,
  ) {
    if (recordShape) this.shape = ["O>"];
  }

  add(packet: Buffer): void {
    this.parts.push(packet);
    this.shape?.push(String.fromCharCode(packet[4] as number));
  }

  flush(): void {
    if (this.parts.length === 0) return;
    this.client.sendRaw(this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts));
    this.parts.length = 0;
  }

  /** Sends what is queued and waits for the final reply, collecting end-of-message modifications. */
  async roundTrip(modifications?: MilterResponse[]): Promise<FinalResponse> {
    if (this.shape !== undefined) this.shape[this.shape.length - 1] += ">";
    const started = performance.now();
    this.flush();
    for (let i = 0; i < 1000; i++) {
      const response = await this.client.next();
      if (response.type === "progress") continue;
      if (response.type === "optneg") throw new SessionError("negotiation reply in the middle of a session");
      const final =
        response.type === "continue" ||
        response.type === "accept" ||
        response.type === "reject" ||
        response.type === "tempfail" ||
        response.type === "discard" ||
        response.type === "replycode" ||
        response.type === "shutdown" ||
        response.type === "skip";
      if (!final) {
        modifications?.push(response);
        if (modifications === undefined) throw new SessionError(`unexpected '${response.type}' packet`);
        continue;
      }
      if (inWindow(this.window)) this.replyMs.push(performance.now() - started);
      return response as FinalResponse;
    }
    throw new SessionError("more than 1000 packets before a final reply");
  }
}

interface Checker {
  checked: number;
  mismatches: number;
  mismatchSamples: string[];
}

function mismatch(checker: Checker, text: string): void {
  checker.mismatches++;
  if (checker.mismatchSamples.length < MAX_SAMPLES) checker.mismatchSamples.push(text);
}

function connect(address: ListenAddress): Promise<MilterClient> {
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      reject(new SessionError(`connect timed out after ${CONNECT_TIMEOUT_MS} ms`));
    }, CONNECT_TIMEOUT_MS);
    MilterClient.connect(address, REPLY_TIMEOUT_MS).then(
      (client) => {
        clearTimeout(timer);
        if (done) client.destroy();
        else resolve(client);
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (!done) reject(error);
      },
    );
  });
}

async function runLoad(order: LoadOrder): Promise<LoadReport> {
  const mailboxes = JSON.parse(readFileSync(order.expectPath, "utf8")) as Mailbox[];
  const rcptPackets = mailboxes.map((mailbox) => ({
    macro: macros(Command.Rcpt, [
      ["i", QUEUE_ID],
      ["{rcpt_addr}", mailbox.address.slice(1, -1)],
      ["{rcpt_host}", "mail.example.test"],
      ["{rcpt_mailer}", "lmtp"],
    ]),
    command: encoded({ type: "rcpt", recipient: mailbox.address, args: [] }),
  }));
  const random = prng(order.seed);
  const address: ListenAddress = { kind: "tcp", host: "127.0.0.1", port: order.port, family: 4 };
  const window = { from: order.measureFrom, until: order.measureUntil };
  const sessionMs = new Samples();
  const replyMs = new Samples();
  const checker: Checker = { checked: 0, mismatches: 0, mismatchSamples: [] };
  const errorSamples: string[] = [];
  let errors = 0;
  let started = 0;
  let completed = 0;
  let measured = 0;
  let negotiatedProtocol = -1;
  let negotiatedActions = -1;
  let sessionShape = "";

  const session = async (number: number): Promise<void> => {
    const first = Math.floor(random() * mailboxes.length);
    let second = Math.floor(random() * (mailboxes.length - 1));
    if (second >= first) second++;
    const recipients = [first, second];

    const begin = performance.now();
    const client = await connect(address);
    try {
      const negotiationStart = performance.now();
      const offer = await client.negotiate();
      if (inWindow(window)) replyMs.push(performance.now() - negotiationStart);
      if (negotiatedProtocol === -1) {
        negotiatedProtocol = offer.protocol;
        negotiatedActions = offer.actions;
      }
      checker.checked++;
      if (offer.version !== 6)
        mismatch(checker, `${order.label}: negotiated version ${offer.version}, expected 6`);
      const outbox = new Outbox(client, replyMs, window, sessionShape === "");

      for (const step of ENVELOPE_STEPS) {
        const sent = client.sends(step.stage);
        if (step.macro !== undefined && (sent || step.macroEvenIfSkipped)) outbox.add(step.macro);
        if (!sent) continue;
        outbox.add(step.command);
        if (!client.expectsReply(step.stage)) continue;
        const response = await outbox.roundTrip();
        checker.checked++;
        if (response.type !== "continue")
          mismatch(
            checker,
            `${order.label}: ${step.stage} answered ${describe(response)}, expected 'continue'`,
          );
      }

      let accepted = 0;
      for (const index of recipients) {
        const mailbox = mailboxes[index] as Mailbox;
        const packets = rcptPackets[index] as { macro: Buffer; command: Buffer };
        outbox.add(packets.macro);
        if (!client.sends("rcpt") || !client.expectsReply("rcpt")) {
          mismatch(
            checker,
            `${order.label}: the server did not negotiate RCPT with a reply; quota cannot be checked`,
          );
          accepted++;
          continue;
        }
        outbox.add(packets.command);
        const response = await outbox.roundTrip();
        checker.checked++;
        const expected = mailbox.over ? `'y' "${OVER_QUOTA_TEXT}"` : "'continue'";
        const ok = mailbox.over
          ? response.type === "replycode" && response.text === OVER_QUOTA_TEXT
          : response.type === "continue";
        if (!ok) {
          mismatch(
            checker,
            `${order.label}: session ${number}, RCPT ${mailbox.address} answered ${describe(response)}, expected ${expected} — fixture: ${mailbox.note}`,
          );
        }
        if (response.type === "continue") accepted++;
      }

      if (accepted > 0) {
        for (const step of CONTENT_STEPS) {
          const sent = client.sends(step.stage);
          if (step.macro !== undefined && (sent || step.macroEvenIfSkipped)) outbox.add(step.macro);
          if (!sent) continue;
          outbox.add(step.command);
          if (!client.expectsReply(step.stage)) continue;
          const response = await outbox.roundTrip();
          checker.checked++;
          if (response.type !== "continue")
            mismatch(
              checker,
              `${order.label}: ${step.stage} answered ${describe(response)}, expected 'continue'`,
            );
        }
        outbox.add(EOM_MACRO);
        outbox.add(EOM);
        const modifications: MilterResponse[] = [];
        const response = await outbox.roundTrip(modifications);
        checker.checked++;
        if (response.type !== "continue" || modifications.length > 0) {
          mismatch(
            checker,
            `${order.label}: end of message answered ${describe(response)} after ${modifications.length} modification(s), expected 'continue' alone`,
          );
        }
      }
      const end = performance.now();
      completed++;
      if (inWindow(window)) {
        measured++;
        sessionMs.push(end - begin);
      }
      outbox.add(ABORT);
      outbox.flush();
      if (outbox.shape !== undefined) sessionShape = `${outbox.shape.join(" ")} Q`;
      client.quit();
    } catch (error) {
      client.destroy();
      throw error;
    }
  };

  const slot = async (): Promise<void> => {
    while (started < order.maxSessions && Date.now() < order.measureUntil && errors < MAX_ERRORS) {
      const number = ++started;
      try {
        await session(number);
      } catch (error) {
        errors++;
        if (errorSamples.length < MAX_SAMPLES) {
          errorSamples.push(
            `${order.label}: session ${number}: ${error instanceof Error ? error.message : String(error)}`,
          );
        }
      }
    }
  };

  const wait = order.startAt - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  await Promise.all(Array.from({ length: order.concurrency }, slot));
  return {
    kind: "load",
    completed,
    measured,
    sessionMs: sessionMs.values(),
    replyMs: replyMs.values(),
    checked: checker.checked,
    mismatches: checker.mismatches,
    mismatchSamples: checker.mismatchSamples,
    errors,
    errorSamples,
    negotiatedProtocol,
    negotiatedActions,
    sessionShape,
  };
}

let idleClients: MilterClient[] = [];

async function openIdle(order: IdleOrder): Promise<IdleReport> {
  const address: ListenAddress = { kind: "tcp", host: "127.0.0.1", port: order.port, family: 4 };
  const errorSamples: string[] = [];
  let errors = 0;
  let next = 0;
  const opener = async (): Promise<void> => {
    while (next < order.connections && errors < MAX_ERRORS) {
      next++;
      try {
        const client = await connect(address);
        idleClients.push(client);
        await client.negotiate();
      } catch (error) {
        errors++;
        if (errorSamples.length < MAX_SAMPLES) errorSamples.push(`${order.label}: ${String(error)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: 32 }, opener));
  return { kind: "idle-ready", open: idleClients.length, errors, errorSamples };
}

function releaseIdle(): IdleReport {
  const count = idleClients.length;
  for (const client of idleClients) {
    try {
      client.quit();
    } catch {
      client.destroy();
    }
  }
  idleClients = [];
  return { kind: "idle-done", open: count, errors: 0, errorSamples: [] };
}

process.on("message", (order: Order) => {
  const work: Promise<Report> =
    order.kind === "load"
      ? runLoad(order)
      : order.kind === "idle"
        ? openIdle(order)
        : Promise.resolve(releaseIdle());
  work.then(send, (error: unknown) => {
    process.stderr.write(`load generator failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
});
process.on("disconnect", () => process.exit(0));
