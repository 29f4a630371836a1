/**
 * The compiler builds a different closure per shape (short `and`/`or` chains as nested pairs,
 * long ones as a loop; `X == "literal"` with and without a normaliser; a one-statement rule
 * without the statement loop): each shape must answer as the language says, with lookups
 * answering at once or with promises, traced (dry-run) or not (serve).
 */
import { describe, expect, it } from "vitest";
import type { Tracer } from "../../src/runtime/model.js";
import { FakeLookups, reply, rules, rulesetOf, SOURCES, transaction } from "./helpers.js";

const TRACERS: [string, Tracer | undefined][] = [
  ["untraced", undefined],
  ["traced", { lookup() {}, everyRule: false }],
];

/** Operand i of a chain: a lookup of "t" (listed) or "f" (not listed), so the fake counts them. */
function operand(value: boolean): string {
  return `"${value ? "t" : "f"}" in directory.local_domains`;
}

/** Truth patterns for a chain of n: all true, all false, and the odd one at each place. */
function patterns(n: number): boolean[][] {
  const out = [Array(n).fill(true), Array(n).fill(false)];
  for (let i = 0; i < n; i++) {
    out.push(Array.from({ length: n }, (_, k) => k === i));
    out.push(Array.from({ length: n }, (_, k) => k !== i));
  }
  return out;
}

describe("and/or chains of every length, short-circuiting", () => {
  for (const op of ["and", "or"] as const) {
    for (const n of [2, 3, 8, 9, 12]) {
      it(`${n} operands joined by ${op}`, async () => {
        for (const values of patterns(n)) {
          const condition = values.map(operand).join(` ${op} `);
          const ruleset = rulesetOf(`${SOURCES}${rules(`on helo: if ${condition} then reject else accept`)}`);
          // `and` stops at the first false operand, `or` at the first true one.
          const settles = op === "or";
          const stop = values.indexOf(settles);
          const expected = stop === -1 ? !settles : settles;
          for (const async of [false, true]) {
            for (const [, trace] of TRACERS) {
              const fake = new FakeLookups().table("directory.local_domains", ["t"]);
              fake.async = async;
              const outcome = await ruleset.evaluate("helo", transaction(), fake, trace);
              expect(reply(outcome), `${condition} (async ${async})`).toBe(
                expected ? "550 5.7.1 Rejected by policy" : "accept",
              );
              expect(fake.calls).toHaveLength(stop === -1 ? n : stop + 1);
            }
          }
        }
      });
    }
  }

  it("a failed lookup in the middle of a chain makes the condition false (on_error continue)", async () => {
    const ruleset = rulesetOf(
      `${SOURCES.replace("type: ldap", "type: ldap\n    on_error: continue")}${rules(
        `on helo: if ${operand(true)} and helo in directory.addresses and ${operand(true)} then reject else accept`,
      )}`,
    );
    for (const async of [false, true]) {
      const failing = new FakeLookups().table("directory.local_domains", ["t"]);
      failing.async = async;
      failing.failing.add("directory");
      expect(reply(await ruleset.evaluate("helo", transaction(), failing))).toBe("accept");
    }
  });
});

describe("comparisons with a literal", () => {
  const ruleset = rulesetOf(
    rules(
      'on mail: if from == "Bob@Example.ORG" then reject 550 5.7.1 "equal"',
      'on mail: if from != "carol@example.org" then reject 550 5.7.1 "not carol"',
      'on mail: if "CAROL@example.org" == from then reject 550 5.7.1 "carol, literal first"',
      'on helo: if helo == "Mx.Example" then reject 550 5.7.1 "exact"',
      'on helo: if helo != "other" then reject 550 5.7.1 "not other"',
      'on helo: if client.port >= 25000 then reject 550 5.7.1 "high port"',
    ),
  );

  it("normalises the address on both sides (a literal once, when compiled)", async () => {
    const mail = (from: string) => ruleset.evaluate("mail", transaction({ from }), new FakeLookups());
    expect(reply(await mail("bob@example.org"))).toBe("550 5.7.1 equal");
    expect(reply(await mail("BOB@EXAMPLE.org"))).toBe("550 5.7.1 equal");
    expect(reply(await mail("dave@example.org"))).toBe("550 5.7.1 not carol");
    expect(reply(await mail("Carol@Example.org"))).toBe("550 5.7.1 carol, literal first");
  });

  it("compares texts without a kind exactly, and numbers by value", async () => {
    const helo = (name: string, port = 25) =>
      ruleset.evaluate(
        "helo",
        transaction({ helo: name, client: { ip: "192.0.2.1", name: "", port } }),
        new FakeLookups(),
      );
    expect(reply(await helo("Mx.Example"))).toBe("550 5.7.1 exact");
    expect(reply(await helo("mx.example"))).toBe("550 5.7.1 not other");
    expect(reply(await helo("other"))).toBeUndefined();
    expect(reply(await helo("other", 25000))).toBe("550 5.7.1 high port");
  });
});

describe("quota() of an address read directly or found by a lookup", () => {
  const ruleset = rulesetOf(
    `${SOURCES}${rules(
      'on rcpt: if quota(rcpt, mailboxes) over then tempfail 452 4.2.2 "full: {rcpt}"',
      'on rcpt: if quota(directory.addresses[rcpt], mailboxes) over then tempfail 452 4.2.2 "alias full: {quota.usage}"',
    )}`,
  );
  const full = { usage: 200, limit: 200, count: 1, countLimit: 0 };

  for (const async of [false, true]) {
    it(`answers the same whether the lookups answer at once or later (async ${async})`, async () => {
      const fake = () => {
        const lookups = new FakeLookups()
          .table("directory.addresses", { "alias@example.org": "box@example.org" })
          .mailbox("mailboxes", "full@example.org", full)
          .mailbox("mailboxes", "box@example.org", { ...full, usage: 300 });
        lookups.async = async;
        return lookups;
      };
      const rcpt = async (address: string) =>
        reply(await ruleset.evaluate("rcpt", transaction({ rcpt: address }), fake()));
      expect(await rcpt("full@example.org")).toBe("452 4.2.2 full: full@example.org");
      expect(await rcpt("alias@example.org")).toBe("452 4.2.2 alias full: 300");
      expect(await rcpt("other@example.org")).toBeUndefined();
    });
  }
});

describe("texts with no, one or several placeholders, at either end", () => {
  it("joins the fixed texts and the values in order", async () => {
    const texts = [
      ["plain", "plain"],
      ["{helo}", "mx.example"],
      ["at {helo}", "at mx.example"],
      ["{helo} first", "mx.example first"],
      ["{helo}{client.ip}", "mx.example192.0.2.10"],
      ["a {helo} b {client.ip} c {helo} d", "a mx.example b 192.0.2.10 c mx.example d"],
    ];
    for (const [text, expected] of texts) {
      const ruleset = rulesetOf(rules(`on helo: reject 550 5.7.1 "${text}"`));
      const outcome = await ruleset.evaluate("helo", transaction({ helo: "mx.example" }), new FakeLookups());
      expect(reply(outcome)).toBe(`550 5.7.1 ${expected}`);
      expect(Object.keys(outcome.decision ?? {})).toEqual([
        "action",
        "code",
        "enhancedCode",
        "text",
        "rule",
        "shadow",
      ]);
    }
  });
});
