/**
 * The milter handler that runs the rules: one per MTA connection. It drives the transaction
 * engine (transaction-engine.ts) from milter events, pins the rules at the start of each
 * transaction, turns stage outcomes into milter replies, and adds the headers and the quarantine
 * at end of message.
 */
import type { Stage } from "../common/stages.js";
import { parseReply } from "../dsl/compiler.js";
import {
  ActionFlag,
  type ConnectInfo,
  type EndOfMessageResult,
  type MacroStage,
  type MilterHandler,
  type Modification,
  type NegotiationWishes,
  type Reply,
  type SessionContext,
  type StageInterest,
} from "../milter/index.js";
import type { MaybePromise } from "../runtime/lookups.js";
import type { Decision, LookupRecord } from "../runtime/model.js";
import type { Ruleset, StageOutcome } from "../runtime/ruleset.js";
import type { JournalSink } from "./journal/record.js";
import {
  acceptsRecipientOnly,
  type EngineRules,
  type StageRun,
  TransactionEngine,
} from "./transaction-engine.js";

/** One generation of the rules being served. */
export interface ServedRules extends EngineRules {
  generation: number;
  /** The answer when the handler fails or hangs (`defaults.error_reply`); default the server's. */
  fallback?: Reply;
}

/** What the handler needs from the running service: the current rules and where to report. */
export interface RulesService {
  /** The ruleset and sources new transactions use. */
  current(): ServedRules;
  /** A connection starts using these rules (they and their sources stay open while used). */
  retain?(rules: ServedRules): void;
  /** A connection stops using these rules. */
  release?(rules: ServedRules): void;
  /** A stage's rules missed the event deadline. */
  deadlinePassed?(conn: number, stage: Stage, timeoutMs: number, reply: Reply | undefined): void;
  /** Called once per stage evaluation that decided something or produced effects. */
  report(event: DecisionEvent): void;
  /** Headers the rules added to one message past the bound were dropped (once per message, at its end). */
  headersDropped?(event: HeadersDroppedEvent): void;
  /** A connection keeps older rules because the current ones need what it did not negotiate. */
  keptRules?(conn: number, generation: number, current: number): void;
}

/**
 * The server's own deadline for one event, past the rules' event_timeout: the engine answers at
 * event_timeout itself (with the sources' on_error); this only backs it up.
 */
export const BACKUP_DEADLINE_MARGIN_MS = 2000;

export interface DecisionEvent {
  stage: Stage;
  conn: number;
  generation: number;
  queueId?: string;
  client: string;
  from?: string;
  rcpt?: string;
  outcome: StageOutcome;
  /** The lookups the stage made, with their answers and times. */
  lookups: LookupRecord[];
}

export interface HeadersDroppedEvent {
  conn: number;
  queueId?: string;
  /** How many were dropped. */
  dropped: number;
  /** How many were added (the bound). */
  added: number;
  /** The rules whose headers were dropped. */
  rules: string[];
}

/** The milter reply for `defaults.error_reply` ("451 4.3.0 Temporary lookup failure, …"): a tempfail. */
export function errorReply(text: string): Reply {
  const parsed = parseReply(text);
  const reply: Reply = { action: "tempfail", code: parsed.code, text: parsed.text };
  if (parsed.enhancedCode !== undefined) reply.enhancedCode = parsed.enhancedCode;
  return reply;
}

/**
 * The milter reply for a stage's decision. `accept` at rcpt is that recipient's only
 * (acceptsRecipientOnly): the MTA is told to continue, since SMFIR_ACCEPT there would accept the
 * whole message and skip every later recipient and stage.
 */
export function decisionReply(decision: Decision | undefined, stage?: Stage): Reply | undefined {
  if (decision === undefined) return undefined;
  switch (decision.action) {
    case "reject":
    case "tempfail": {
      const reply: Reply = { action: decision.action };
      if (decision.code !== undefined) reply.code = decision.code;
      if (decision.enhancedCode !== undefined) reply.enhancedCode = decision.enhancedCode;
      if (decision.text !== undefined) reply.text = decision.text;
      return reply;
    }
    case "accept":
      return stage !== undefined && acceptsRecipientOnly(stage, decision) ? undefined : { action: "accept" };
    case "discard":
      return { action: "discard" };
    case "quarantine":
      // Quarantine is applied at end of message; the message goes on meanwhile.
      return undefined;
  }
}

/**
 * What the logs need when the rules need neither CONNECT nor MAIL: those events are not asked
 * for, and the RCPT macros carry the client's address, the sender and the queue id instead
 * (Postfix and Sendmail both set these at RCPT). One event fewer each, and no reply to wait for.
 */
export const CONTEXT_MACROS = { connect: ["{client_addr}"], mail: ["{mail_addr}", "i"] } as const;

/** One wishes object per ruleset: the milter layer negotiates once per ruleset and MTA offer. */
const wishesByRuleset = new WeakMap<Ruleset, NegotiationWishes>();

function wishesFor(ruleset: Ruleset): NegotiationWishes {
  let wishes = wishesByRuleset.get(ruleset);
  if (wishes === undefined) {
    wishes = wishesOf(ruleset);
    wishesByRuleset.set(ruleset, wishes);
  }
  return wishes;
}

function wishesOf(ruleset: Ruleset): NegotiationWishes {
  const stages: Partial<Record<Stage, StageInterest>> = {};
  // RCPT is always observed: the recipients are the logs' context, and where the skipped
  // stages' facts arrive as macros.
  stages.rcpt = "observe";
  for (const [stage, need] of ruleset.needs.stages) stages[stage] = need;
  // The end of message is where headers are added and quarantines applied: always asked for.
  stages.eom = "decide";
  const macros: NegotiationWishes["macros"] = { ...ruleset.needs.macros };
  const add = (stage: MacroStage, names: readonly string[]) => {
    macros[stage] = [...new Set([...(macros[stage] ?? []), ...names])];
  };
  add("eom", ["i"]);
  if (stages.mail !== undefined) add("mail", ["i", "{auth_authen}"]);
  else add("rcpt", CONTEXT_MACROS.mail);
  if (stages.connect === undefined) {
    for (const stage of ["helo", "mail", "rcpt"] as const)
      if (stages[stage] !== undefined) add(stage, CONTEXT_MACROS.connect);
  }
  return { stages, macros, actions: ActionFlag.AddHeaders | ActionFlag.Quarantine };
}

/**
 * Whether a connection negotiated with `wishes` gets every stage, reply and macro `ruleset`
 * needs. A stage asked as `observe` is sent without waiting for a reply: a decision there
 * would never reach the MTA.
 */
export function negotiatedFor(wishes: NegotiationWishes, ruleset: Ruleset): boolean {
  for (const [stage, need] of ruleset.needs.stages) {
    const have = wishes.stages?.[stage];
    if (have === undefined || (need === "decide" && have !== "decide")) return false;
  }
  for (const [stage, names] of Object.entries(ruleset.needs.macros) as [MacroStage, string[]][]) {
    const asked = wishes.macros?.[stage] ?? [];
    if (names.some((name) => !asked.includes(name))) return false;
  }
  return true;
}

/** The rules handler of one MTA connection: milter events in, the engine's outcomes out as replies. */
class RulesConnection implements MilterHandler {
  readonly wishes: NegotiationWishes;
  private pinned: ServedRules;
  // Whether this connection holds `pinned` (QUIT_NC closes a session but keeps the socket).
  private holding = true;
  private keptNoted = 0;
  /** The session's client is known: CONNECT came, or its macros were read (see `enter`). */
  private connected = false;
  /** A message is open: MAIL came, or its macros were read. */
  private inMessage = false;
  private readonly engine: TransactionEngine;

  constructor(
    private readonly service: RulesService,
    private readonly id: number,
    journal: JournalSink | undefined,
  ) {
    this.pinned = service.current();
    this.wishes = wishesFor(this.pinned.ruleset);
    service.retain?.(this.pinned);
    this.engine = new TransactionEngine(this.pinned, journal === undefined ? {} : { journal });
  }

  /** The session's own deadline for one event follows the rules this connection uses now. */
  get handlerTimeoutMs(): number | undefined {
    const ms = this.pinned.eventTimeoutMs;
    return ms === undefined ? undefined : ms + BACKUP_DEADLINE_MARGIN_MS;
  }

  get fallback(): Reply | undefined {
    return this.pinned.fallback;
  }

  /**
   * The rules for what starts now: the current ones, unless a reload since this connection's
   * negotiation needs stages, replies or macros it did not ask the MTA for (their decisions
   * would be lost, or logged but never told to the MTA). Then the connection keeps the rules
   * it has until the MTA opens a new one.
   */
  private repin(): void {
    const current = this.service.current();
    if (current === this.pinned) return;
    if (negotiatedFor(this.wishes, current.ruleset)) {
      this.service.retain?.(current);
      this.service.release?.(this.pinned);
      this.pinned = current;
      this.engine.rules = current;
    } else if (this.keptNoted !== current.generation) {
      this.keptNoted = current.generation;
      this.service.keptRules?.(this.id, this.pinned.generation, current.generation);
    }
  }

  private startSession(): void {
    if (!this.holding) {
      this.service.retain?.(this.pinned);
      this.holding = true;
    }
    this.repin();
    this.connected = true;
  }

  /**
   * CONNECT or MAIL not asked of the MTA (no rule needs them): the client and the sender the
   * logs show come from the macros asked for instead, at the first event of the session or
   * message. No rule runs at a stage that was not asked for, so nothing is decided here.
   */
  private enter(session: SessionContext, message: boolean): void {
    if (!this.connected) {
      this.startSession();
      const ip = session.macro("{client_addr}") ?? "";
      this.engine.connect({ ip, name: ip === "" ? "" : `[${ip}]`, port: 0 }, (name) => session.macro(name));
    }
    if (message && !this.inMessage) {
      this.inMessage = true;
      if (this.wishes.stages?.mail !== undefined) return;
      this.repin();
      this.engine.mail({ sender: session.macro("{mail_addr}") ?? "" });
    }
  }

  connect(client: ConnectInfo, session: SessionContext): MaybePromise<Reply | undefined> {
    this.startSession();
    const input = { ip: client.address, name: client.hostname, port: client.port };
    return this.answer(
      this.engine.connect(input, (name) => session.macro(name)),
      session,
    );
  }

  helo(name: string, session: SessionContext): MaybePromise<Reply | undefined> {
    this.enter(session, false);
    return this.answer(this.engine.helo(name), session);
  }

  mail(sender: string, args: string[], session: SessionContext): MaybePromise<Reply | undefined> {
    this.enter(session, false);
    this.repin();
    this.inMessage = true;
    return this.answer(this.engine.mail({ sender, esmtpArgs: args }), session);
  }

  rcpt(recipient: string, _args: string[], session: SessionContext): MaybePromise<Reply | undefined> {
    this.enter(session, true);
    return this.answer(this.engine.rcpt(recipient), session);
  }

  data(session: SessionContext): MaybePromise<Reply | undefined> {
    this.enter(session, true);
    return this.answer(this.engine.data(), session);
  }

  header(name: string, value: string, session: SessionContext): MaybePromise<Reply | undefined> {
    this.enter(session, true);
    return this.answer(this.engine.header(name, value), session);
  }

  eoh(session: SessionContext): MaybePromise<Reply | undefined> {
    this.enter(session, true);
    return this.answer(this.engine.eoh(), session);
  }

  body(chunk: Buffer, session: SessionContext): MaybePromise<Reply | undefined> {
    this.enter(session, true);
    return this.answer(this.engine.body(chunk.length), session);
  }

  eom(session: SessionContext): MaybePromise<EndOfMessageResult> {
    this.enter(session, true);
    this.inMessage = false;
    const run = this.engine.eom();
    return run instanceof Promise
      ? run.then((r) => this.endOfMessage(r, session))
      : this.endOfMessage(run, session);
  }

  abort(): void {
    this.inMessage = false;
    this.engine.abort();
  }

  close(): void {
    this.engine.close();
    if (this.holding) this.service.release?.(this.pinned);
    this.holding = false;
    this.connected = false;
    this.inMessage = false;
  }

  private answer(run: MaybePromise<StageRun>, session: SessionContext): MaybePromise<Reply | undefined> {
    return run instanceof Promise ? run.then((r) => this.reply(r, session)) : this.reply(run, session);
  }

  /** The milter reply of a stage, reported to the service when the stage did something. */
  private reply(run: StageRun, session: SessionContext): Reply | undefined {
    const { stage, outcome } = run;
    const reply = decisionReply(outcome.decision, stage);
    if (run.lateAfterMs !== undefined) {
      this.service.deadlinePassed?.(session.id, stage, run.lateAfterMs, reply);
      return reply;
    }
    if (outcome.decision !== undefined || outcome.effects.length > 0 || outcome.shadowDecisions.length > 0) {
      const tx = this.engine.transaction;
      const event: DecisionEvent = {
        stage,
        conn: session.id,
        generation: this.pinned.generation,
        client: tx.client.ip,
        outcome,
        lookups: [...run.lookups],
      };
      const queueId = session.macro("i");
      if (queueId) event.queueId = queueId;
      if (stage !== "connect" && stage !== "helo") event.from = tx.from;
      if (stage === "rcpt") event.rcpt = tx.rcpt;
      this.service.report(event);
    }
    return reply;
  }

  /** The answer at end of message: the reply, the headers to add and the quarantine. */
  private endOfMessage(run: StageRun, session: SessionContext): EndOfMessageResult {
    const reply = this.reply(run, session);
    const headers = this.engine.addedHeaders;
    const modifications: Modification[] = headers.kept.map((h) => ({
      type: "addHeader",
      name: h.name,
      value: h.value,
    }));
    const quarantine = this.engine.quarantine;
    if (quarantine !== undefined) modifications.push({ type: "quarantine", reason: quarantine });
    if (headers.dropped > 0) {
      const event: HeadersDroppedEvent = {
        conn: session.id,
        dropped: headers.dropped,
        added: headers.kept.length,
        rules: [...headers.droppedBy],
      };
      const queueId = session.macro("i");
      if (queueId) event.queueId = queueId;
      this.service.headersDropped?.(event);
    }
    return { reply: reply ?? { action: "continue" }, modifications };
  }
}

export interface RulesHandlerOptions {
  /** Each finished transaction is written here (serve --journal). */
  journal?: JournalSink;
}

export function rulesHandler(
  service: RulesService,
  options: RulesHandlerOptions = {},
): (info: { id: number }) => MilterHandler {
  return (info) => new RulesConnection(service, info.id, options.journal);
}
