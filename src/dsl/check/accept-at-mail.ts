/**
 * `accept` at mail accepts the whole message: the MTA stops asking the milter about it, so every
 * rule at rcpt and later never runs for that message. A postmaster who meant "this sender is
 * fine" often did not mean "skip the quota check" (issue 10): say which rules it skips, and that
 * accept at rcpt accepts one recipient only.
 */
import { STAGE_ORDER, type Stage } from "../../common/stages.js";
import type { Action, Rule } from "../ast.js";
import type { CheckSession } from "./scope.js";

/** The accept actions of a rule, wherever its statements put them. */
function acceptsOf(rule: Rule): Action[] {
  const actions = rule.statements.flatMap((s) =>
    s.kind === "action" ? [s.action] : s.else === undefined ? [s.then] : [s.then, s.else],
  );
  return actions.filter((a) => a.verb === "accept");
}

/** `'mailbox-full' (rcpt)`, `'scan' (data, eom)`: a rule and its stages after mail. */
function skipped(rule: Rule): string | undefined {
  const after: Stage[] = rule.stages.map((s) => s.stage).filter((s) => STAGE_ORDER[s] > STAGE_ORDER.mail);
  return after.length === 0 ? undefined : `'${rule.name}' (${after.join(", ")})`;
}

export function checkAcceptAtMail(session: CheckSession, rules: readonly Rule[]): void {
  for (const rule of rules) {
    // A shadow rule's accept changes nothing the MTA is told.
    if (rule.shadow || !rule.stages.some((s) => s.stage === "mail")) continue;
    const accepts = acceptsOf(rule);
    if (accepts.length === 0) continue;
    // Every rule at a later stage is skipped, wherever the file has it: the stages come in SMTP order.
    const others = rules.filter((r) => r !== rule).flatMap((r) => skipped(r) ?? []);
    if (others.length === 0) continue;
    const names =
      others.length === 1 ? `rule ${others[0]} never runs` : `rules ${others.join(", ")} never run`;
    for (const accept of accepts) {
      session.report(
        accept.span,
        "warning",
        `accept at mail accepts the whole message, so ${names} for it`,
        "move it to 'on rcpt:' to accept one recipient, or add its condition to the rules it should skip",
      );
    }
  }
}
