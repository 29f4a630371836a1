/**
 * The milter handler that runs the rules: one per MTA connection. It fills the transaction
 * stage by stage, evaluates the ruleset pinned at the start of each transaction, turns decisions
 * into milter replies, and collects `add header` / quarantine for end of message.
 */
import { bareAddress } from "../common/address.js";
import { withDeadline } from "../common/deadline.js";
import { CONTEXT_STAGES, type Stage } from "../common/stages.js";
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
import { AddedHeaders } from "../runtime/added-headers.js";
import type { Lookups, MaybePromise } from "../runtime/lookups.js";
import type { Decision, Effect, LookupRecord, Tracer } from "../runtime/model.js";
import type { Ruleset, StageOutcome } from "../runtime/ruleset.js";
import { declaredSize, newTransaction, resetMessage, type Transaction } from "../runtime/transaction.js";

/** What the handler needs from the running service: the current rules and where to report. */
export interface RulesService {
  /** The ruleset and sources new transactions use. */
  current(): {
    ruleset: Ruleset;
    lookups: Lookups;
    generation: number;
    /** Deadline of one milter event; past it the event is answered by `timeoutReply` and its lookups are abandoned. */
    eventTimeoutMs?: number;
    /** The answer when a stage's rules miss the deadline: what their sources' on_error says. */
    timeoutReply?: (stage: Stage) => Reply | undefined;
  };
  /** A connection starts using these rules (they and their sources stay open while used). */
  retain?(rules: ReturnType<RulesService["current"]>): void;
  /** A connection stops using these rules. */
  release?(rules: ReturnType<RulesService["current"]>): void;
  /** A stage's rules missed the event deadline. */
  deadlinePassed?(conn: number, stage: Stage, timeoutMs: number, reply: Reply | undefined): void;
  /** Called once per stage evaluation that decided something or produced effects. */
  report(event: DecisionEvent): void;
  /** Headers the rules added to one message past the bound were dropped (once per message, at its end). */
  headersDropped?(event: HeadersDroppedEvent): void;
  /** A connection keeps older rules because the current ones need what it did not negotiate. */
  keptRules?(conn: number, generation: number, current: number): void;
}

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

export function decisionReply(decision: Decision | undefined): Reply | undefined {
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
      return { action: "accept" };
    case "discard":
      return { action: "discard" };
    case "quarantine":
      // Quarantine is applied at end of message; the message goes on meanwhile.
      return undefined;
  }
}

function wishesFor(ruleset: Ruleset): NegotiationWishes {
  const stages: Partial<Record<Stage, StageInterest>> = {};
  for (const stage of CONTEXT_STAGES) stages[stage] = "observe";
  for (const [stage, need] of ruleset.needs.stages) stages[stage] = need;
  // The end of message is where headers are added and quarantines applied: always asked for.
  stages.eom = "decide";
  const macros: NegotiationWishes["macros"] = { ...ruleset.needs.macros };
  macros.eom = [...new Set([...(macros.eom ?? []), "i"])];
  macros.mail = [...new Set([...(macros.mail ?? []), "i", "{auth_authen}"])];
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

/** The answer at end of message: the reply, the headers to add and the quarantine. */
function endOfMessage(
  reply: Reply | undefined,
  headers: AddedHeaders,
  quarantine: string | undefined,
  session: SessionContext,
  service: RulesService,
): EndOfMessageResult {
  const modifications: Modification[] = headers.kept.map((h) => ({
    type: "addHeader",
    name: h.name,
    value: h.value,
  }));
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
    service.headersDropped?.(event);
  }
  return { reply: reply ?? { action: "continue" }, modifications };
}

export function rulesHandler(service: RulesService): (info: { id: number }) => MilterHandler {
  return (info) => {
    const connectionRules = service.current();
    const wishes = wishesFor(connectionRules.ruleset);
    let pinned = connectionRules;
    // Whether this connection holds `pinned` (QUIT_NC closes a session but keeps the socket).
    let holding = true;
    service.retain?.(pinned);
    let keptNoted = 0;
    /**
     * The rules for what starts now: the current ones, unless a reload since this connection's
     * negotiation needs stages, replies or macros it did not ask the MTA for (their decisions
     * would be lost, or logged but never told to the MTA). Then the connection keeps the rules
     * it has until the MTA opens a new one.
     */
    const repin = () => {
      const current = service.current();
      if (current === pinned) return;
      if (negotiatedFor(wishes, current.ruleset)) {
        service.retain?.(current);
        service.release?.(pinned);
        pinned = current;
      } else if (keptNoted !== current.generation) {
        keptNoted = current.generation;
        service.keptRules?.(info.id, pinned.generation, current.generation);
      }
    };
    let tx: Transaction = newTransaction();
    let headersToAdd = new AddedHeaders();
    let quarantine: string | undefined;

    // One command at a time per connection: one list of the current stage's lookups is enough.
    const lookupsSeen: LookupRecord[] = [];
    const tracer: Tracer = { lookup: (record) => lookupsSeen.push(record) };
    const evaluate = (
      stage: Stage,
      session: SessionContext,
      extra: { rcpt?: string } = {},
    ): MaybePromise<Reply | undefined> => {
      lookupsSeen.length = 0;
      const outcome = pinned.ruleset.evaluate(stage, tx, pinned.lookups, tracer);
      const handle = (o: StageOutcome): Reply | undefined => {
        for (const effect of o.effects) collect(effect);
        if (o.decision?.action === "quarantine") quarantine ??= o.decision.reason;
        if (o.decision !== undefined || o.effects.length > 0 || o.shadowDecisions.length > 0) {
          const event: DecisionEvent = {
            stage,
            conn: session.id,
            generation: pinned.generation,
            client: tx.client.ip,
            outcome: o,
            lookups: [...lookupsSeen],
          };
          const queueId = session.macro("i");
          if (queueId) event.queueId = queueId;
          if (stage !== "connect" && stage !== "helo") event.from = tx.from;
          if (extra.rcpt !== undefined) event.rcpt = extra.rcpt;
          service.report(event);
        }
        return decisionReply(o.decision);
      };
      if (!(outcome instanceof Promise)) return handle(outcome);
      const timeoutMs = pinned.eventTimeoutMs;
      if (timeoutMs === undefined) return outcome.then(handle);
      const rules = pinned;
      let late = false;
      return withDeadline(
        outcome.then((o) => (late ? undefined : handle(o))),
        {
          ms: timeoutMs,
          onTimeout: () => {
            late = true;
            // The lookups still running are abandoned (a cache keeps what they find for the next one).
            const reply = rules.timeoutReply?.(stage);
            service.deadlinePassed?.(session.id, stage, timeoutMs, reply);
            return reply;
          },
        },
      );
    };
    const collect = (effect: Effect) => {
      if (effect.kind === "addHeader") headersToAdd.add(effect);
    };
    const startMessage = () => {
      repin();
      resetMessage(tx);
      headersToAdd = new AddedHeaders();
      quarantine = undefined;
    };

    return {
      wishes,
      connect(client: ConnectInfo, session) {
        tx = newTransaction((name) => session.macro(name));
        tx.client = { ip: client.address, name: client.hostname, port: client.port };
        if (!holding) {
          service.retain?.(pinned);
          holding = true;
        }
        repin();
        return evaluate("connect", session);
      },
      helo(name, session) {
        tx.helo = name;
        return evaluate("helo", session);
      },
      mail(sender, args, session) {
        startMessage();
        tx.from = bareAddress(sender);
        tx.declaredSize = declaredSize(args);
        tx.authUser = session.macro("{auth_authen}") ?? "";
        return evaluate("mail", session);
      },
      rcpt(recipient, _args, session) {
        tx.rcpt = bareAddress(recipient);
        const result = evaluate("rcpt", session, { rcpt: tx.rcpt });
        const accept = (reply: Reply | undefined) => {
          if (reply?.action !== "reject" && reply?.action !== "tempfail") tx.rcpts.push(tx.rcpt);
          return reply;
        };
        return result instanceof Promise ? result.then(accept) : accept(result);
      },
      data(session) {
        return evaluate("data", session);
      },
      header(name, value, session) {
        tx.header = { name, value };
        const key = name.toLowerCase();
        if (!tx.headers.has(key)) tx.headers.set(key, value);
        return evaluate("header", session);
      },
      eoh(session) {
        return evaluate("eoh", session);
      },
      body(chunk, session) {
        tx.bodyBytes += chunk.length;
        return evaluate("body", session);
      },
      eom(session): MaybePromise<EndOfMessageResult> {
        const finish = (reply: Reply | undefined) =>
          endOfMessage(reply, headersToAdd, quarantine, session, service);
        const result = evaluate("eom", session);
        return result instanceof Promise ? result.then(finish) : finish(result);
      },
      abort() {
        resetMessage(tx);
        headersToAdd = new AddedHeaders();
        quarantine = undefined;
      },
      close() {
        if (holding) service.release?.(pinned);
        holding = false;
      },
    };
  };
}
