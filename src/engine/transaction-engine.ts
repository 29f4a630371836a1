/**
 * The transaction engine: one SMTP transaction (or several, on one connection) run through the
 * rules, event by event. It is the only place the Transaction the rules read is filled; `serve`
 * (milter-handler.ts) drives it from milter events and answers the MTA, `dry-run` (dry-run.ts)
 * from the command line and prints a report. Its input is plain data, so a test case or a
 * logged transaction can drive it the same way.
 *
 * Each event answers a StageRun: the stage's outcome (the enforced decision, shadow decisions,
 * effects, the rules' traces) and the lookups it made. Effects that shape the message (added
 * headers, the quarantine) are collected here until the end of the message.
 */
import { bareAddress } from "../common/address.js";
import { withDeadline } from "../common/deadline.js";
import type { Stage } from "../common/stages.js";
import { type AddedHeader, AddedHeaders } from "../runtime/added-headers.js";
import type { Lookups, MaybePromise } from "../runtime/lookups.js";
import type { Decision, LookupRecord, Tracer } from "../runtime/model.js";
import type { Ruleset, StageOutcome } from "../runtime/ruleset.js";
import {
  declaredSize,
  headerLineBytes,
  newTransaction,
  resetMessage,
  type Transaction,
} from "../runtime/transaction.js";
import type { JournalSink } from "./journal/record.js";
import { TransactionRecorder } from "./journal/recorder.js";

/** The rules a transaction runs with: one generation of `serve`, or dry-run's only one. */
export interface EngineRules {
  ruleset: Ruleset;
  lookups: Lookups;
  /** Deadline of one event; past it the stage ends with `deadlineDecision` and its lookups are abandoned. */
  eventTimeoutMs?: number;
  /** The decision of a stage whose rules missed the deadline: what their sources' on_error says. */
  deadlineDecision?: (stage: Stage) => Decision | undefined;
}

/** The SMTP client, as the MTA reports it at connect. */
export interface ClientInput {
  ip: string;
  /** Its host name, or `[ip]` when it has none. */
  name: string;
  port: number;
}

/** MAIL FROM. */
export interface MailInput {
  /** As written after MAIL FROM, with or without angle brackets; "" is the null sender. */
  sender: string;
  /** ESMTP arguments (`SIZE=12345`). */
  esmtpArgs?: readonly string[];
  /** The SASL login; default: the `{auth_authen}` macro. */
  authUser?: string;
}

/** What one event did. */
export interface StageRun {
  stage: Stage;
  outcome: StageOutcome;
  /** The lookups the stage made. Valid until the next event: copy it to keep it. */
  lookups: LookupRecord[];
  /** Set when the rules missed the event deadline (ms): `outcome` holds `deadlineDecision` only. */
  lateAfterMs?: number;
}

export interface EngineOptions {
  /** List every rule evaluated in each outcome, also those that did nothing (dry-run). */
  everyRule?: boolean;
  /** Write each finished transaction here (serve --journal); without it nothing is recorded. */
  journal?: JournalSink;
}

/** A decision that refuses what it answers (the recipient, or the whole transaction). */
export function refuses(decision: Decision | undefined): boolean {
  return decision?.action === "reject" || decision?.action === "tempfail";
}

/**
 * `accept` at rcpt accepts that recipient only: the rest of its rules are skipped (the stage is
 * decided), but the other recipients are still checked and the later stages still run.
 */
export function acceptsRecipientOnly(stage: Stage, decision: Decision | undefined): boolean {
  return stage === "rcpt" && decision?.action === "accept";
}

const NO_MACROS = () => undefined;

/**
 * Headers and a quarantine decided before MAIL (at connect or HELO) are the connection's: every
 * message on it gets them. A new HELO replaces what the previous one decided.
 */
interface ConnectionEffects {
  headers: AddedHeader[];
  quarantine?: string | undefined;
}

export class TransactionEngine {
  private tx: Transaction = newTransaction();
  private headers = new AddedHeaders();
  private quarantined: string | undefined;
  private atConnect: ConnectionEffects = { headers: [] };
  private atHelo: ConnectionEffects = { headers: [] };
  // One event at a time per connection: one list of the current stage's lookups is enough.
  private readonly seen: LookupRecord[] = [];
  private readonly tracer: Tracer;
  // Only with a journal: without one, lookups are not wrapped and nothing is kept.
  private readonly recorder: TransactionRecorder | undefined;

  constructor(
    /** The rules events use; change them (pin) only where a transaction starts: connect, MAIL. */
    public rules: EngineRules,
    options: EngineOptions = {},
  ) {
    const seen = this.seen;
    this.tracer = { lookup: (record) => seen.push(record) };
    if (options.everyRule) this.tracer.everyRule = true;
    this.recorder = options.journal === undefined ? undefined : new TransactionRecorder(options.journal);
  }

  /** The transaction as the rules see it now. */
  get transaction(): Readonly<Transaction> {
    return this.tx;
  }

  /** The headers the rules added to the current message (bounded; the rest counted as dropped). */
  get addedHeaders(): AddedHeaders {
    return this.headers;
  }

  /** Why the current message is quarantined (the first quarantine decision), if it is. */
  get quarantine(): string | undefined {
    return this.quarantined;
  }

  /** A new connection: everything before is forgotten. `macro` answers the MTA's macros by name. */
  connect(
    client: ClientInput,
    macro: (name: string) => string | undefined = NO_MACROS,
  ): MaybePromise<StageRun> {
    const recorder = this.recorder;
    if (recorder !== undefined) this.endMessage("abort");
    this.tx = newTransaction(recorder === undefined ? macro : recorder.connect(client, macro));
    this.tx.client = { ip: client.ip, name: client.name, port: client.port };
    this.atConnect = { headers: [] };
    this.atHelo = { headers: [] };
    this.forgetMessage();
    return this.run("connect");
  }

  helo(name: string): MaybePromise<StageRun> {
    this.tx.helo = name;
    this.recorder?.heloSeen(name);
    this.atHelo = { headers: [] };
    return this.run("helo");
  }

  /** MAIL FROM starts a message: the previous one's envelope, content and effects are forgotten. */
  mail(mail: MailInput): MaybePromise<StageRun> {
    this.abort();
    const tx = this.tx;
    tx.from = bareAddress(mail.sender);
    tx.declaredSize = declaredSize(mail.esmtpArgs ?? []);
    tx.authUser = mail.authUser ?? tx.macro("{auth_authen}") ?? "";
    if (this.recorder !== undefined) tx.headers = this.recorder.mail(tx);
    return this.run("mail");
  }

  /** A recipient the rules do not refuse joins `rcpts`. */
  rcpt(recipient: string): MaybePromise<StageRun> {
    this.tx.rcpt = bareAddress(recipient);
    this.recorder?.rcpt(this.tx.rcpt);
    const run = this.run("rcpt");
    return run instanceof Promise ? run.then(this.acceptRecipient) : this.acceptRecipient(run);
  }

  data(): MaybePromise<StageRun> {
    return this.run("data");
  }

  header(name: string, value: string): MaybePromise<StageRun> {
    const tx = this.tx;
    tx.header = { name, value };
    const key = name.toLowerCase();
    if (!tx.headers.has(key)) tx.headers.set(key, value);
    tx.headerBytes += headerLineBytes(name, value);
    this.recorder?.header(name, value);
    return this.run("header");
  }

  eoh(): MaybePromise<StageRun> {
    return this.run("eoh");
  }

  /** A chunk of the body: `bytes` is its length (lines ending in CRLF, as the MTA sends them). */
  body(bytes: number): MaybePromise<StageRun> {
    this.tx.bodyBytes += bytes;
    return this.run("body");
  }

  /** End of message: `addedHeaders` and `quarantine` are what the message gets. */
  eom(): MaybePromise<StageRun> {
    const tx = this.tx;
    // The header lines, the blank line after them, the body.
    tx.messageBytes = tx.headerBytes + 2 + tx.bodyBytes;
    return this.run("eom");
  }

  /** The current message is abandoned (RSET, or a new MAIL). */
  abort(): void {
    if (this.recorder !== undefined) this.endMessage("abort");
    resetMessage(this.tx);
    this.forgetMessage();
  }

  /** The connection ends (serve): the journal gets what it has not written yet. */
  close(): void {
    this.recorder?.close(this.tx, this.rules.ruleset.rulesFor("header").length > 0);
  }

  private endMessage(end: "eom" | "abort"): void {
    this.recorder?.end(end, this.tx, this.rules.ruleset.rulesFor("header").length > 0);
  }

  private forgetMessage(): void {
    this.headers = new AddedHeaders();
    for (const header of this.atConnect.headers) this.headers.add(header);
    for (const header of this.atHelo.headers) this.headers.add(header);
    this.quarantined = this.atConnect.quarantine ?? this.atHelo.quarantine;
  }

  private readonly acceptRecipient = (run: StageRun): StageRun => {
    if (!refuses(run.outcome.decision)) this.tx.rcpts.push(this.tx.rcpt);
    return run;
  };

  private run(stage: Stage): MaybePromise<StageRun> {
    this.seen.length = 0;
    const rules = this.rules;
    const lookups = this.recorder === undefined ? rules.lookups : this.recorder.lookups(rules.lookups);
    const outcome = rules.ruleset.evaluate(stage, this.tx, lookups, this.tracer);
    if (!(outcome instanceof Promise)) return this.settle(stage, outcome);
    const timeoutMs = rules.eventTimeoutMs;
    if (timeoutMs === undefined) return outcome.then((o) => this.settle(stage, o));
    // Past the deadline the stage is answered (the lookups still running are abandoned, a cache
    // keeps what they find for the next one); what the rules decide late changes nothing.
    let answered: StageRun | undefined;
    return withDeadline(
      outcome.then((o) => answered ?? this.settle(stage, o)),
      {
        ms: timeoutMs,
        onTimeout: () => {
          answered = this.late(stage, rules, timeoutMs);
          return answered;
        },
      },
    );
  }

  /** Collects what the stage did to the message. */
  private settle(stage: Stage, outcome: StageOutcome): StageRun {
    const connection = stage === "connect" ? this.atConnect : stage === "helo" ? this.atHelo : undefined;
    for (const effect of outcome.effects) {
      if (effect.kind !== "addHeader") continue;
      const header = { name: effect.name, value: effect.value, rule: effect.rule };
      this.headers.add(header);
      connection?.headers.push(header);
    }
    if (outcome.decision?.action === "quarantine") {
      this.quarantined ??= outcome.decision.reason;
      if (connection !== undefined) connection.quarantine ??= outcome.decision.reason;
    }
    if (this.recorder !== undefined) this.recorded(stage, outcome);
    return { stage, outcome, lookups: this.seen };
  }

  private recorded(stage: Stage, outcome: StageOutcome, lateMs?: number): void {
    this.recorder?.stage(stage, this.tx, outcome, lateMs);
    if (stage === "eom") this.endMessage("eom");
  }

  private late(stage: Stage, rules: EngineRules, timeoutMs: number): StageRun {
    const decision = rules.deadlineDecision?.(stage);
    const outcome: StageOutcome = { shadowDecisions: [], effects: [], rules: [] };
    if (decision !== undefined) outcome.decision = decision;
    if (this.recorder !== undefined) this.recorded(stage, outcome, timeoutMs);
    return { stage, outcome, lookups: this.seen, lateAfterMs: timeoutMs };
  }
}
