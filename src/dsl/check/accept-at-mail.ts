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

const afterMail = (stage: Stage) => STAGE_ORDER[stage] > STAGE_ORDER.mail;

/** `'mailbox-full' (rcpt)`, `'scan' (data, eom)`: a rule and its stages after mail. */
function skipped(rule: Rule): string {
  const after: Stage[] = rule.stages.map((s) => s.stage).filter(afterMail);
  return `'${rule.name}' (${after.join(", ")})`;
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

/** The rules at later stages: how many, and the first few (one more than named, for `self`). */
interface Later {
  count: number;
  first: Rule[];
}

/** The rules at later stages other than `self`; the text of a rule only for those named. */
function skippedBesides(later: Later, self: Rule): Skipped {
  const isLater = self.stages.some((s) => afterMail(s.stage));
  const named = later.first
    .filter((rule) => rule !== self)
    .slice(0, NAMED_AT_MOST)
    .map(skipped);
  return { named, count: later.count - (isLater ? 1 : 0) };
}

/**
 * Fed the rules in file order (add), reports at the end (report). Counted as they come: per
 * accepting rule, a walk of the others would make the check quadratic in the number of rules.
 */
export class AcceptAtMail {
  private readonly later: Later = { count: 0, first: [] };
  /** Enforced rules at mail with an accept, and their accepts. */
  private readonly accepting: { rule: Rule; accepts: Action[] }[] = [];

  add(rule: Rule): void {
    if (rule.stages.some((s) => afterMail(s.stage))) {
      this.later.count++;
      if (this.later.first.length <= NAMED_AT_MOST) this.later.first.push(rule);
    }
    // A shadow rule's accept changes nothing the MTA is told.
    if (rule.shadow || !rule.stages.some((s) => s.stage === "mail")) return;
    const accepts = acceptsOf(rule);
    if (accepts.length > 0) this.accepting.push({ rule, accepts });
  }

  report(session: CheckSession): void {
    for (const { rule, accepts } of this.accepting) {
      // Every rule at a later stage is skipped, wherever the file has it: the stages come in SMTP order.
      const others = skippedBesides(this.later, rule);
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
}
