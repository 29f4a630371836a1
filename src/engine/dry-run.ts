/**
 * One SMTP transaction run through the rules, stage by stage, with the live sources: what
 * `filterctl dry-run` shows. The milter runs the same ruleset evaluation; this walk mirrors
 * what the MTA would do with each answer.
 */
import { bareAddress } from "../common/address.js";
import type { Stage } from "../common/stages.js";
import { AddedHeaders } from "../runtime/added-headers.js";
import type { Lookups } from "../runtime/lookups.js";
import type { Decision, DecisionAction, Effect, LookupRecord } from "../runtime/model.js";
import type { Ruleset, RuleTrace, StageOutcome } from "../runtime/ruleset.js";
import { declaredSize, newTransaction, resetMessage } from "../runtime/transaction.js";

export interface DryRunInput {
  clientIp: string;
  clientName?: string;
  clientPort?: number;
  helo?: string;
  /** As typed after MAIL FROM, with or without angle brackets; "" is the null sender. */
  from: string;
  mailArgs?: string[];
  rcpts: string[];
  headers: { name: string; value: string }[];
  body: Buffer;
  authUser?: string;
  macros?: Record<string, string>;
}

export type Verdict = "continue" | DecisionAction;

export interface StageReport {
  stage: Stage;
  /** What the stage is about: the client, the HELO name, the sender. */
  detail?: string;
  /** For rcpt stages. */
  rcpt?: string;
  /** For header stages. */
  header?: string;
  decision: Verdict;
  reply: string | null;
  rule?: string;
  rules: RuleTrace[];
  lookups: LookupRecord[];
  shadow: { rule: string; decision: Verdict; reply: string | null }[];
}

export interface DryRunReport {
  recipients: { rcpt: string; decision: Verdict; reply: string | null; rule?: string }[];
  stages: StageReport[];
  result: { decision: "accept" | "reject" | "tempfail" | "discard" | "quarantine"; reply: string | null };
  headersAdded: { name: string; value: string; rule: string }[];
  /** Headers past the bound of one message, as serve drops them. */
  headersDropped?: { count: number; rules: string[] };
  logs: { text: string; rule: string }[];
  quarantine?: string;
}

/** The SMTP reply the MTA gives for a decision: "452 4.2.2 Quota exceeded". */
export function replyOf(decision: Decision | undefined): string | null {
  if (decision === undefined || (decision.action !== "reject" && decision.action !== "tempfail")) return null;
  return [decision.code, decision.enhancedCode, decision.text]
    .filter((p) => p !== undefined && p !== "")
    .join(" ");
}

function verdictOf(decision: Decision | undefined): Verdict {
  return decision?.action ?? "continue";
}

function refuses(decision: Decision | undefined): boolean {
  return decision?.action === "reject" || decision?.action === "tempfail";
}

export async function dryRun(ruleset: Ruleset, lookups: Lookups, input: DryRunInput): Promise<DryRunReport> {
  const tx = newTransaction((name) => {
    const key = name.length === 3 && name.startsWith("{") ? (name[1] as string) : name;
    return input.macros?.[name] ?? input.macros?.[key] ?? input.macros?.[`{${key}}`];
  });
  const added = new AddedHeaders();
  const report: DryRunReport = {
    recipients: [],
    stages: [],
    result: { decision: "accept", reply: null },
    headersAdded: added.kept,
    logs: [],
  };
  let quarantine: string | undefined;

  const run = async (
    stage: Stage,
    extra: { rcpt?: string; header?: string; detail?: string } = {},
  ): Promise<StageOutcome> => {
    const lookupsSeen: LookupRecord[] = [];
    const outcome = await ruleset.evaluate(stage, tx, lookups, {
      lookup: (r) => lookupsSeen.push(r),
      everyRule: true,
    });
    const entry: StageReport = {
      stage,
      ...extra,
      decision: verdictOf(outcome.decision),
      reply: replyOf(outcome.decision),
      rules: outcome.rules,
      lookups: lookupsSeen,
      shadow: outcome.shadowDecisions.map((d) => ({ rule: d.rule, decision: d.action, reply: replyOf(d) })),
    };
    if (outcome.decision) entry.rule = outcome.decision.rule;
    report.stages.push(entry);
    for (const effect of outcome.effects) collect(effect);
    if (outcome.decision?.action === "quarantine") quarantine ??= outcome.decision.reason;
    return outcome;
  };
  const collect = (effect: Effect) => {
    if (effect.kind === "log") report.logs.push({ text: effect.text, rule: effect.rule });
    else if (!added.add({ name: effect.name, value: effect.value, rule: effect.rule }))
      report.headersDropped = { count: added.dropped, rules: [...added.droppedBy] };
  };
  /** Ends the transaction: every recipient not yet decided gets `verdict`. */
  const finish = (decision: Verdict, reply: string | null, rule?: string) => {
    const decided = new Set(report.recipients.map((r) => r.rcpt));
    for (const rcpt of input.rcpts) {
      if (decided.has(rcpt)) continue;
      report.recipients.push(
        rule === undefined ? { rcpt, decision, reply } : { rcpt, decision, reply, rule },
      );
    }
    return report;
  };
  const refused = (outcome: StageOutcome) => {
    const decision = outcome.decision as Decision;
    report.result = { decision: decision.action as "reject" | "tempfail", reply: replyOf(decision) };
    // The whole transaction is refused: so is every recipient still undecided.
    const decided = new Set(report.recipients.map((r) => r.rcpt));
    report.recipients = report.recipients.map((r) =>
      r.decision === "continue" || r.decision === "accept"
        ? { ...r, decision: decision.action, reply: replyOf(decision), rule: decision.rule }
        : r,
    );
    for (const rcpt of input.rcpts) {
      if (!decided.has(rcpt))
        report.recipients.push({
          rcpt,
          decision: decision.action,
          reply: replyOf(decision),
          rule: decision.rule,
        });
    }
    return report;
  };
  const accepted = () => {
    report.result = { decision: quarantine !== undefined ? "quarantine" : "accept", reply: null };
    if (quarantine !== undefined) report.quarantine = quarantine;
    return finish("continue", null);
  };

  // connect
  tx.client = {
    ip: input.clientIp,
    name: input.clientName ?? `[${input.clientIp}]`,
    port: input.clientPort ?? 0,
  };
  let outcome = await run("connect", { detail: `${tx.client.ip} ${tx.client.name}` });
  if (refuses(outcome.decision)) return refused(outcome);
  if (outcome.decision?.action === "accept") return accepted();

  // helo
  tx.helo = input.helo ?? input.clientName ?? "";
  outcome = await run("helo", { detail: tx.helo });
  if (refuses(outcome.decision)) return refused(outcome);
  if (outcome.decision?.action === "accept") return accepted();

  // mail
  resetMessage(tx);
  tx.from = bareAddress(input.from);
  tx.authUser = input.authUser ?? "";
  tx.declaredSize = declaredSize(input.mailArgs ?? []);
  outcome = await run("mail", { detail: `<${tx.from}>${tx.authUser ? ` auth=${tx.authUser}` : ""}` });
  if (refuses(outcome.decision)) return refused(outcome);
  if (outcome.decision?.action === "accept") return accepted();
  if (outcome.decision?.action === "discard") {
    report.result = { decision: "discard", reply: null };
    return finish("continue", null);
  }

  // rcpt, one by one; a refusal refuses that recipient only
  let messageDecided: Decision | undefined;
  for (const raw of input.rcpts) {
    if (messageDecided !== undefined) break;
    tx.rcpt = bareAddress(raw);
    outcome = await run("rcpt", { rcpt: raw });
    const decision = outcome.decision;
    const entry = { rcpt: raw, decision: verdictOf(decision), reply: replyOf(decision) };
    report.recipients.push(decision ? { ...entry, rule: decision.rule } : entry);
    if (!refuses(decision)) tx.rcpts.push(tx.rcpt);
    if (decision?.action === "accept" || decision?.action === "discard") messageDecided = decision;
  }
  tx.rcpt = "";
  if (messageDecided?.action === "accept") return accepted();
  if (messageDecided?.action === "discard") {
    report.result = { decision: "discard", reply: null };
    return finish("continue", null);
  }
  if (tx.rcpts.length === 0) {
    // Every recipient refused: the transaction fails; a single temporary refusal makes it temporary.
    const refusals = report.recipients.filter((r) => r.decision === "reject" || r.decision === "tempfail");
    const temporary = refusals.find((r) => r.decision === "tempfail");
    const chosen = temporary ?? refusals[0];
    report.result = {
      decision: chosen?.decision === "tempfail" ? "tempfail" : "reject",
      reply: chosen?.reply ?? null,
    };
    return report;
  }

  // data, headers, end of headers, body, end of message
  const content: [Stage, () => void, { header?: string }?][] = [["data", () => {}]];
  for (const header of input.headers) {
    content.push([
      "header",
      () => {
        tx.header = header;
        const key = header.name.toLowerCase();
        if (!tx.headers.has(key)) tx.headers.set(key, header.value);
      },
      { header: `${header.name}: ${header.value}` },
    ]);
  }
  content.push(["eoh", () => {}], ["body", () => (tx.bodyBytes = input.body.length)], ["eom", () => {}]);
  for (const [stage, prepare, extra] of content) {
    prepare();
    outcome = await run(stage, extra);
    if (refuses(outcome.decision)) return refused(outcome);
    if (outcome.decision?.action === "accept") return accepted();
    if (outcome.decision?.action === "discard") {
      report.result = { decision: "discard", reply: null };
      return finish("continue", null);
    }
  }
  return accepted();
}
