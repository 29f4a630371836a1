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

/** Beyond this many, a warning says "and N more": a file with thousands of rules gets a readable line. */
const NAMED_AT_MOST = 5;

interface Skipped {
  /** The first few skipped rules, `'name' (stages)`. */
  named: string[];
  count: number;
}

function skippedText({ named, count }: Skipped): string {
  if (count === 1) return `rule ${named[0]} never runs`;
  const more = count - named.length;
  return more > 0
    ? `rules ${named.join(", ")} and ${more} more never run`
    : `rules ${named.join(", ")} never run`;
}

/** The rules at later stages other than the one at `self`. */
function skippedBesides(skips: readonly (string | undefined)[], later: number, self: number): Skipped {
  const count = later - (skips[self] === undefined ? 0 : 1);
  const named: string[] = [];
  for (let i = 0; i < skips.length && named.length < NAMED_AT_MOST; i++) {
    const text = skips[i];
    if (i !== self && text !== undefined) named.push(text);
  }
  return { named, count };
}

export function checkAcceptAtMail(session: CheckSession, rules: readonly Rule[]): void {
  // Computed once: per accepting rule it would make the check quadratic in the number of rules.
  const skips = rules.map((r) => skipped(r));
  const later = skips.filter((s) => s !== undefined).length;
  for (const [index, rule] of rules.entries()) {
    // A shadow rule's accept changes nothing the MTA is told.
    if (rule.shadow || !rule.stages.some((s) => s.stage === "mail")) continue;
    const accepts = acceptsOf(rule);
    if (accepts.length === 0) continue;
    // Every rule at a later stage is skipped, wherever the file has it: the stages come in SMTP order.
    const others = skippedBesides(skips, later, index);
    if (others.count === 0) continue;
    for (const accept of accepts) {
      session.report(
        accept.span,
        "warning",
        `accept at mail accepts the whole message, so ${skippedText(others)} for it`,
        "move it to 'on rcpt:' to accept one recipient, or add its condition to the rules it should skip",
      );
    }
  }
}
