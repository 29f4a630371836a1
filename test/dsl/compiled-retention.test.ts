/**
 * What compiled rules keep alive: their closures, not the syntax trees, the check result or the
 * compiler. Closures made in one function share one context, so an arrow that uses `this` (or
 * a node) anywhere in a compiler method would keep all of it alive for as long as `serve` runs
 * the rules: half of what 10,000 loaded rules held.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { childrenOf, type Expr, type Rule } from "../../src/dsl/ast.js";
import { compileConfig } from "../../src/dsl/compile.js";
import { evaluate, FakeLookups, reply, transaction } from "../runtime/helpers.js";
import { configOf } from "./helpers.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const RULES = [
  'on connect: if not (client.ip in trusted) and client.ip in spamhaus then reject 554 5.7.1 "{client.ip} listed"',
  'on mail: if from.local == from.domain or size > 10MB then tempfail 452 4.3.1 "later"',
  'on mail: if from matches /^spam[0-9]+@/i then reject 550 5.7.1 "no"',
  'on rcpt: if quota(rcpt, mailboxes).percent >= 90 and rcpt.domain in directory.local_domains then tempfail 452 4.2.2 "{rcpt} is {quota.percent}% full"',
  'on rcpt: if quota(rcpt, mailboxes) over then reject 552 5.2.2 "full"',
  'on eoh: if header("Subject") == "x" then quarantine "held"',
];

/** The first argument of the first call in a rule's first condition (quota()'s address). */
function firstCallArgument(rule: Rule | undefined): Expr {
  const statement = rule?.statements[0];
  const pending: Expr[] = statement?.kind === "if" ? [statement.condition] : [];
  for (let expr = pending.pop(); expr !== undefined; expr = pending.pop()) {
    if (expr.kind === "call" && expr.args[0] !== undefined) return expr.args[0];
    pending.push(...childrenOf(expr));
  }
  throw new Error("no call");
}

/** Compiles, and answers weak references to what must not outlive the compilation. */
function compileAndForget() {
  const out = compileConfig(configOf(RULES), { syntax: true });
  expect(out.diagnostics.filter((d) => d.severity === "error").map((d) => d.message)).toEqual([]);
  const ruleset = out.ruleset;
  const rules = out.rules;
  if (ruleset === undefined || rules === undefined) throw new Error("no ruleset or no syntax trees");
  const firstRule = rules[0];
  const firstStatement = firstRule?.statements[0];
  const quotaAddress = firstCallArgument(rules[4]);
  const weak = [firstRule, firstStatement, rules[3], rules[5], quotaAddress].map(
    (node) => new WeakRef(node as object),
  );
  return { ruleset, weak };
}

describe("compiled rules", () => {
  it("keep neither the syntax trees nor the check result once compiled", async () => {
    const { ruleset, weak } = compileAndForget();
    gc();
    // WeakRefs are cleared only after the job that read them: let it end, and collect again.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    expect(weak.map((w) => w.deref() === undefined)).toEqual([true, true, true, true, true]);
    // And the rules still run: a listed client, a sender matching the regex, a full mailbox.
    expect(ruleset.rules).toHaveLength(RULES.length);
    const lookups = new FakeLookups().listed("spamhaus", "203.0.113.7");
    lookups.mailbox("mailboxes", "bob@example.org", { usage: 95, limit: 100, count: 1, countLimit: 0 });
    lookups.table("directory.local_domains", ["example.org"]);
    const tx = transaction({ client: { ip: "203.0.113.7", name: "x.example", port: 1 } });
    expect(reply(await evaluate(ruleset, "connect", tx, lookups))).toBe("554 5.7.1 203.0.113.7 listed");
    tx.from = "spam12@example.com";
    expect(reply(await evaluate(ruleset, "mail", tx, lookups))).toBe("550 5.7.1 no");
    tx.rcpt = "bob@example.org";
    expect(reply(await evaluate(ruleset, "rcpt", tx, lookups))).toBe("452 4.2.2 bob@example.org is 95% full");
  });
});
