/**
 * One SMTP transaction run through the rules, stage by stage, with the live sources: what
 * `filterctl dry-run` shows. It drives the same transaction engine as `serve`
 * (transaction-engine.ts) from the command line's input; this walk mirrors what the MTA would
 * do with each answer, and reports every stage.
 */
import type { Stage } from "../common/stages.js";
import type { Lookups, MaybePromise } from "../runtime/lookups.js";
import type { Decision, DecisionAction, LookupRecord } from "../runtime/model.js";
import type { Ruleset, RuleTrace } from "../runtime/ruleset.js";
import { refuses, type StageRun, TransactionEngine } from "./transaction-engine.js";

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

/** How the transaction ends. */
type End =
  | { kind: "refused"; decision: Decision }
  | { kind: "accepted" }
  | { kind: "discarded" }
  /** Every recipient was refused. */
  | { kind: "no-recipient" };

/** What the MTA does after a stage's decision: go on (undefined), or end the transaction. */
function endOf(decision: Decision | undefined, discardEnds: boolean): End | undefined {
  if (decision === undefined) return undefined;
  if (refuses(decision)) return { kind: "refused", decision };
  if (decision.action === "accept") return { kind: "accepted" };
  if (discardEnds && decision.action === "discard") return { kind: "discarded" };
  return undefined;
}

/**
 * The body's length as the MTA sends it to a milter: every line ending a CRLF, so a message file
 * saved with bare LFs has the size it has on the wire.
 */
export function crlfLength(body: Buffer): number {
  let bareLf = 0;
  for (let at = body.indexOf(10); at !== -1; at = body.indexOf(10, at + 1)) {
    if (at === 0 || body[at - 1] !== 13) bareLf++;
  }
  return body.length + bareLf;
}

/** The MTA's macros by name, `{name}` and `name` alike. */
function macroLookup(macros: Record<string, string> | undefined): (name: string) => string | undefined {
  return (name) => {
    const key = name.length === 3 && name.startsWith("{") ? (name[1] as string) : name;
    return macros?.[name] ?? macros?.[key] ?? macros?.[`{${key}}`];
  };
}

export function dryRun(ruleset: Ruleset, lookups: Lookups, input: DryRunInput): Promise<DryRunReport> {
  return new DryRun(ruleset, lookups, input).run();
}

type StageExtra = { rcpt?: string; header?: string; detail?: string };

class DryRun {
  private readonly engine: TransactionEngine;
  private readonly report: DryRunReport = {
    recipients: [],
    stages: [],
    result: { decision: "accept", reply: null },
    headersAdded: [],
    logs: [],
  };

  constructor(
    ruleset: Ruleset,
    lookups: Lookups,
    private readonly input: DryRunInput,
  ) {
    this.engine = new TransactionEngine({ ruleset, lookups }, { everyRule: true });
  }

  async run(): Promise<DryRunReport> {
    const end = (await this.envelope()) ?? (await this.recipients()) ?? (await this.content());
    const added = this.engine.addedHeaders;
    this.report.headersAdded = added.kept;
    if (added.dropped > 0) this.report.headersDropped = { count: added.dropped, rules: [...added.droppedBy] };
    return this.ended(end ?? { kind: "accepted" });
  }

  /** Runs one stage and reports it; answers its decision. */
  private async stage(run: MaybePromise<StageRun>, extra: StageExtra = {}): Promise<Decision | undefined> {
    const { stage, outcome, lookups } = await run;
    const entry: StageReport = {
      stage,
      ...extra,
      decision: verdictOf(outcome.decision),
      reply: replyOf(outcome.decision),
      rules: outcome.rules,
      lookups: [...lookups],
      shadow: outcome.shadowDecisions.map((d) => ({ rule: d.rule, decision: d.action, reply: replyOf(d) })),
    };
    if (outcome.decision) entry.rule = outcome.decision.rule;
    this.report.stages.push(entry);
    for (const effect of outcome.effects) {
      if (effect.kind === "log") this.report.logs.push({ text: effect.text, rule: effect.rule });
    }
    return outcome.decision;
  }

  /** Connect, HELO and MAIL. */
  private async envelope(): Promise<End | undefined> {
    const { input, engine } = this;
    const client = {
      ip: input.clientIp,
      name: input.clientName ?? `[${input.clientIp}]`,
      port: input.clientPort ?? 0,
    };
    const connect = engine.connect(client, macroLookup(input.macros));
    let end = endOf(await this.stage(connect, { detail: `${client.ip} ${client.name}` }), false);
    if (end !== undefined) return end;
    const helo = input.helo ?? input.clientName ?? "";
    end = endOf(await this.stage(engine.helo(helo), { detail: helo }), false);
    if (end !== undefined) return end;
    const mail = engine.mail({
      sender: input.from,
      esmtpArgs: input.mailArgs ?? [],
      authUser: input.authUser ?? "",
    });
    const tx = engine.transaction;
    const detail = `<${tx.from}>${tx.authUser ? ` auth=${tx.authUser}` : ""}`;
    return endOf(await this.stage(mail, { detail }), true);
  }

  /** RCPT, one by one; a refusal refuses that recipient only. */
  private async recipients(): Promise<End | undefined> {
    for (const raw of this.input.rcpts) {
      const decision = await this.stage(this.engine.rcpt(raw), { rcpt: raw });
      const entry = { rcpt: raw, decision: verdictOf(decision), reply: replyOf(decision) };
      this.report.recipients.push(decision ? { ...entry, rule: decision.rule } : entry);
      // An accept here is this recipient's (acceptsRecipientOnly): the others and the message go on.
      if (decision?.action === "discard") return { kind: "discarded" };
    }
    return this.engine.transaction.rcpts.length === 0 ? { kind: "no-recipient" } : undefined;
  }

  /** DATA, the headers, end of headers, the body, end of message. */
  private async content(): Promise<End | undefined> {
    const { engine, input } = this;
    const steps: [() => MaybePromise<StageRun>, StageExtra?][] = [[() => engine.data()]];
    for (const { name, value } of input.headers) {
      steps.push([() => engine.header(name, value), { header: `${name}: ${value}` }]);
    }
    steps.push([() => engine.eoh()], [() => engine.body(crlfLength(input.body))], [() => engine.eom()]);
    for (const [step, extra] of steps) {
      const end = endOf(await this.stage(step(), extra), true);
      if (end !== undefined) return end;
    }
    return undefined;
  }

  private ended(end: End): DryRunReport {
    const report = this.report;
    switch (end.kind) {
      case "refused":
        return this.refused(end.decision);
      case "accepted": {
        const quarantine = this.engine.quarantine;
        report.result = { decision: quarantine !== undefined ? "quarantine" : "accept", reply: null };
        if (quarantine !== undefined) report.quarantine = quarantine;
        return this.undecided("continue", null);
      }
      case "discarded":
        report.result = { decision: "discard", reply: null };
        return this.undecided("continue", null);
      case "no-recipient": {
        // The transaction fails; a single temporary refusal makes it temporary.
        const refusals = report.recipients.filter(
          (r) => r.decision === "reject" || r.decision === "tempfail",
        );
        const chosen = refusals.find((r) => r.decision === "tempfail") ?? refusals[0];
        report.result = {
          decision: chosen?.decision === "tempfail" ? "tempfail" : "reject",
          reply: chosen?.reply ?? null,
        };
        return report;
      }
    }
  }

  /** Every recipient not yet decided gets `decision`. */
  private undecided(decision: Verdict, reply: string | null, rule?: string): DryRunReport {
    const decided = new Set(this.report.recipients.map((r) => r.rcpt));
    for (const rcpt of this.input.rcpts) {
      if (decided.has(rcpt)) continue;
      this.report.recipients.push(
        rule === undefined ? { rcpt, decision, reply } : { rcpt, decision, reply, rule },
      );
    }
    return this.report;
  }

  /** The whole transaction is refused: so is every recipient it had let through, and every one left. */
  private refused(decision: Decision): DryRunReport {
    const report = this.report;
    const reply = replyOf(decision);
    report.result = { decision: decision.action as "reject" | "tempfail", reply };
    report.recipients = report.recipients.map((r) =>
      r.decision === "continue" || r.decision === "accept"
        ? { ...r, decision: decision.action, reply, rule: decision.rule }
        : r,
    );
    return this.undecided(decision.action, reply, decision.rule);
  }
}
