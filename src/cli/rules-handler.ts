/**
 * The milter handler that runs the rules: one per MTA connection. It fills the transaction
 * stage by stage, evaluates the ruleset pinned at the start of each transaction, turns decisions
 * into milter replies, and collects `add header` / quarantine for end of message.
 */
import type { Stage } from "../dsl/ast.js";
import type { Decision, Effect } from "../dsl/compiler.js";
import {
  ActionFlag,
  type ConnectInfo,
  type EndOfMessageResult,
  type MilterHandler,
  type Modification,
  type NegotiationWishes,
  type Reply,
  type SessionContext,
  type StageInterest,
} from "../milter/index.js";
import type { Lookups, MaybePromise } from "../runtime/lookups.js";
import type { Ruleset, StageOutcome } from "../runtime/ruleset.js";
import {
  bareAddress,
  declaredSize,
  newTransaction,
  normalizeAddress,
  resetMessage,
  type Transaction,
} from "../runtime/transaction.js";

/** What the handler needs from the running service: the current rules and where to report. */
export interface RulesService {
  /** The ruleset and sources new transactions use. */
  current(): { ruleset: Ruleset; lookups: Lookups; generation: number };
  /** Called once per stage evaluation that decided something or produced effects. */
  report(event: DecisionEvent): void;
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
}

/** Everything is asked for per connection; these stages are always observed for the logs' context. */
const CONTEXT_STAGES: Stage[] = ["connect", "mail", "rcpt"];

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

export function rulesHandler(service: RulesService): (info: { id: number }) => MilterHandler {
  return () => {
    const connectionRules = service.current();
    let pinned = connectionRules;
    let tx: Transaction = newTransaction();
    let headersToAdd: Modification[] = [];
    let quarantine: string | undefined;

    const evaluate = (
      stage: Stage,
      session: SessionContext,
      extra: { rcpt?: string } = {},
    ): MaybePromise<Reply | undefined> => {
      const outcome = pinned.ruleset.evaluate(stage, tx, pinned.lookups);
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
          };
          const queueId = session.macro("i");
          if (queueId) event.queueId = queueId;
          if (stage !== "connect" && stage !== "helo") event.from = tx.from;
          if (extra.rcpt !== undefined) event.rcpt = extra.rcpt;
          service.report(event);
        }
        return decisionReply(o.decision);
      };
      return outcome instanceof Promise ? outcome.then(handle) : handle(outcome);
    };
    const collect = (effect: Effect) => {
      if (effect.kind === "addHeader")
        headersToAdd.push({ type: "addHeader", name: effect.name, value: effect.value });
    };
    const startMessage = () => {
      pinned = service.current();
      resetMessage(tx);
      headersToAdd = [];
      quarantine = undefined;
    };

    return {
      wishes: wishesFor(connectionRules.ruleset),
      connect(info: ConnectInfo, session) {
        tx = newTransaction((name) => session.macro(name));
        tx.client = { ip: info.address, name: info.hostname, port: info.port };
        pinned = service.current();
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
          if (reply?.action !== "reject" && reply?.action !== "tempfail")
            tx.rcpts.push(normalizeAddress(tx.rcpt));
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
        const finish = (reply: Reply | undefined): EndOfMessageResult => {
          const modifications = [...headersToAdd];
          if (quarantine !== undefined) modifications.push({ type: "quarantine", reason: quarantine });
          return { reply: reply ?? { action: "continue" }, modifications };
        };
        const result = evaluate("eom", session);
        return result instanceof Promise ? result.then(finish) : finish(result);
      },
      abort() {
        resetMessage(tx);
        headersToAdd = [];
        quarantine = undefined;
      },
    };
  };
}
