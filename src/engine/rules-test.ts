/**
 * One case of a `filterctl test` file run through the rules: the case is a dry-run's input, run by
 * dry-run.ts (so by the one transaction engine serve uses), with the sources the test stubs; the
 * report is then held against the case's expectations. A difference is a line saying what was
 * expected and what came.
 */
import type { Ruleset } from "../runtime/ruleset.js";
import { type DryRunInput, type DryRunReport, dryRun, type StageReport } from "./dry-run.js";
import { matchesReply } from "./reply-match.js";
import type { TestCase } from "./rules-test-file.js";
import type { StubLookups } from "./rules-test-stubs.js";

export interface CaseResult {
  name: string;
  ok: boolean;
  /** What differed: "rcpt bob@example.org: expected tempfail 452, got continue". */
  failures: string[];
  ms: number;
  /** What the rules did, stage by stage (what dry-run --json prints). */
  report?: DryRunReport;
}

/** The headers and body of the case's message file, read by whoever reads files. */
export interface CaseContent {
  headers: { name: string; value: string }[];
  body: Buffer;
}

function inputOf(testCase: TestCase, content: CaseContent): DryRunInput {
  const input: DryRunInput = {
    clientIp: testCase.client.ip,
    from: testCase.from,
    mailArgs: testCase.size === undefined ? [] : [`SIZE=${testCase.size}`],
    rcpts: testCase.rcpt,
    headers: [...content.headers, ...testCase.headers],
    body: content.body,
  };
  if (testCase.client.name !== undefined) input.clientName = testCase.client.name;
  if (testCase.client.port !== undefined) input.clientPort = testCase.client.port;
  if (testCase.helo !== undefined) input.helo = testCase.helo;
  if (testCase.auth !== undefined) {
    input.authUser = testCase.auth;
    input.macros = { "{auth_authen}": testCase.auth };
  }
  return input;
}

/** A stage's or a recipient's answer in the words expectations use: "tempfail 452 4.2.2 Mailbox …". */
function said(decision: string, reply: string | null): string {
  return reply === null ? decision : `${decision} ${reply}`;
}

function by(rule: string | undefined): string {
  return rule === undefined ? "" : ` (rule ${rule})`;
}

/**
 * The rule that decided what happened to the message: the one that refused, discarded,
 * quarantined or accepted it, or, when every recipient was refused, the one whose refusal is the
 * transaction's reply. Undefined when no rule decided (the message was just let through).
 */
export function decidedBy(report: DryRunReport): string | undefined {
  const { decision, reply } = report.result;
  const envelope = report.stages.filter((s) => s.stage !== "rcpt" && s.decision !== "continue");
  if (decision === "reject" || decision === "tempfail") {
    const refusing = envelope.find((s) => s.decision === decision);
    if (refusing !== undefined) return refusing.rule;
    return report.recipients.find((r) => r.decision === decision && r.reply === reply)?.rule;
  }
  if (decision === "discard") return report.stages.find((s) => s.decision === "discard")?.rule;
  return envelope.find((s) => s.decision === decision)?.rule;
}

function checkStages(testCase: TestCase, report: DryRunReport, failures: string[]): void {
  for (const [stage, expected] of testCase.expect.stages) {
    const got: StageReport | undefined = report.stages.find((s) => s.stage === stage);
    if (got === undefined) {
      failures.push(
        `${stage}: expected ${expected.value.text}, got nothing (the transaction ended before ${stage})`,
      );
      continue;
    }
    const answer = said(got.decision, got.reply);
    if (!matchesReply(expected.value, answer))
      failures.push(`${stage}: expected ${expected.value.text}, got ${answer}${by(got.rule)}`);
  }
  for (const [rcpt, expected] of testCase.expect.rcpt) {
    const got = report.stages.find((s) => s.stage === "rcpt" && s.rcpt === rcpt);
    if (got === undefined) {
      failures.push(
        `rcpt ${rcpt}: expected ${expected.value.text}, got nothing (the transaction ended before RCPT)`,
      );
      continue;
    }
    const answer = said(got.decision, got.reply);
    if (!matchesReply(expected.value, answer))
      failures.push(`rcpt ${rcpt}: expected ${expected.value.text}, got ${answer}${by(got.rule)}`);
  }
}

function checkMessage(testCase: TestCase, report: DryRunReport, failures: string[]): void {
  const { result, headersAdded, decidedBy: rule } = testCase.expect;
  const decider = decidedBy(report);
  if (result !== undefined) {
    const answer = said(report.result.decision, report.result.reply);
    if (!matchesReply(result.value, answer))
      failures.push(`result: expected ${result.value.text}, got ${answer}${by(decider)}`);
  }
  if (headersAdded !== undefined) {
    const got = report.headersAdded.map((h) => `${h.name}: ${h.value}`);
    const same = got.length === headersAdded.value.length && got.every((h, i) => h === headersAdded.value[i]);
    if (!same)
      failures.push(
        `headers_added: expected ${JSON.stringify(headersAdded.value)}, got ${JSON.stringify(got)}`,
      );
  }
  for (const [name, expected] of testCase.expect.shadow) {
    const would = report.stages.flatMap((stage) => stage.shadow).find((d) => d.rule === name);
    const answer = would === undefined ? "continue" : said(would.decision, would.reply);
    if (!matchesReply(expected.value, answer))
      failures.push(`shadow ${name}: expected ${expected.value.text}, got ${answer}`);
  }
  if (rule !== undefined && rule.value !== decider)
    failures.push(`decided_by: expected ${rule.value}, got ${decider === undefined ? "no rule" : decider}`);
}

/** Runs one case; `lookups` answers from the stubs (and the live sources, unless offline). */
export async function runCase(
  ruleset: Ruleset,
  lookups: StubLookups,
  testCase: TestCase,
  content: CaseContent = { headers: [], body: Buffer.alloc(0) },
): Promise<CaseResult> {
  const started = performance.now();
  const report = await dryRun(ruleset, lookups, inputOf(testCase, content));
  const failures: string[] = [];
  checkStages(testCase, report, failures);
  checkMessage(testCase, report, failures);
  for (const name of lookups.takeMissing())
    failures.push(`a rule asked '${name}', which the test file does not stub (--offline asks nothing live)`);
  const ms = performance.now() - started;
  return { name: testCase.name, ok: failures.length === 0, failures, ms, report };
}
