/**
 * The second milestone's expressions (SPEC "More of the language"): arithmetic, lower(),
 * length(), count(), rcpts in conditions, and a DNSBL's answers (`NAME[X]`, `{NAME.codes}`),
 * through the real loader and compiler, against in-memory Lookups answering synchronously and
 * with promises.
 */
import { describe, expect, it } from "vitest";
import type { QuotaStatus } from "../../src/runtime/lookups.js";
import { evaluate, FakeLookups, reply, rules, rulesetOf, SOURCES, transaction } from "./helpers.js";

const MODES = [
  ["sync", false],
  ["async", true],
] as const;

function quotaStatus(usage: number, limit: number): QuotaStatus {
  return { usage, limit, count: 0, countLimit: 0 };
}

describe("arithmetic", () => {
  const ruleset = rulesetOf(
    `${SOURCES}${rules(
      'on rcpt: if size + quota(rcpt, mailboxes).usage > 1GB then tempfail 452 4.2.2 "full"',
      'on rcpt: if quota(rcpt, mailboxes).limit - quota(rcpt, mailboxes).usage < 2 * size then log "tight"',
    )}`,
  );
  const run = async (async: boolean, declaredSize: number, usage: number, limit = 2_000_000_000) => {
    const fake = new FakeLookups().mailbox("mailboxes", "u@example.org", quotaStatus(usage, limit));
    fake.async = async;
    return evaluate(ruleset, "rcpt", transaction({ rcpt: "u@example.org", declaredSize }), fake);
  };

  for (const [mode, async] of MODES) {
    it(`adds a size to a lookup's size, and subtracts and multiplies (${mode})`, async () => {
      expect(reply(await run(async, 10_000_000, 995_000_000))).toBe("452 4.2.2 full");
      const fits = await run(async, 4_000_000, 995_000_000);
      expect(fits.decision).toBeUndefined();
      expect(fits.effects).toEqual([]);
      // 1 MB - 900 kB = 100 kB left; twice 60 kB does not fit.
      const tight = await run(async, 60_000, 900_000, 1_000_000);
      expect(tight.effects.map((e) => e.kind === "log" && e.text)).toEqual(["tight"]);
    });
  }

  it("binds * tighter than + and -, and reads - left to right", () => {
    const ruleset = rulesetOf(
      rules(
        'on mail: if 1 + 2 * 3 == 7 then log "precedence"',
        'on mail: if 10 - 4 - 3 == 3 then log "left to right"',
        'on mail: if (1 + 2) * 3 == 9 then log "parentheses"',
        'on mail: if 5m + 30s == 330s and 2 * 1m == 120s then log "durations"',
        'on mail: if 1MB - 2MB < 0B then log "negative"',
        'on mail: if size * 2 == 2 * size and 3 * size == 21B then log "commutes"',
      ),
    );
    const outcome = ruleset.evaluate(
      "mail",
      transaction({ from: "a@example.org", declaredSize: 7 }),
      new FakeLookups(),
    );
    expect(outcome).not.toBeInstanceOf(Promise);
    expect((outcome as Awaited<typeof outcome>).effects.map((e) => e.kind === "log" && e.text)).toEqual([
      "precedence",
      "left to right",
      "parentheses",
      "durations",
      "negative",
      "commutes",
    ]);
  });

  it("holds results beyond Number.MAX_SAFE_INTEGER there (no Infinity, no NaN)", () => {
    // 400 digits: Infinity as a double, and so is any product with it.
    const huge = "9".repeat(400);
    const ruleset = rulesetOf(
      rules(
        `on mail: if size * ${huge} * ${huge} > 1TB then log "saturated"`,
        `on mail: if size * ${huge} * ${huge} - size * ${huge} * ${huge} == 0B then log "equal"`,
        `on mail: if 0 - ${huge} * ${huge} < 0 then log "negative"`,
      ),
    );
    const outcome = ruleset.evaluate("mail", transaction({ declaredSize: 10 }), new FakeLookups());
    expect((outcome as Awaited<typeof outcome>).effects.map((e) => e.kind === "log" && e.text)).toEqual([
      "saturated",
      "equal",
      "negative",
    ]);
  });
});

describe("lower(), length(), count()", () => {
  it("lower-cases text, counts characters as code points, counts a list's items", () => {
    const ruleset = rulesetOf(
      rules(
        'on eoh: if lower(header("Subject")) matches /^viagra/ then log "lower"',
        'on eoh: if length(header("Subject")) == 9 then log "length"',
        'on eoh: if length(header("X-Emoji")) == 3 then log "code points"',
        'on eoh: if count(["a", "b", 192.0.2.1]) == 3 then log "literal"',
        'on eoh: if length(header("Absent")) == 0 and lower(header("Absent")) == "" then log "absent"',
      ),
    );
    const tx = transaction({
      headers: new Map([
        ["subject", "VIAGRA 4U"],
        ["x-emoji", "é😀a"],
      ]),
    });
    const outcome = ruleset.evaluate("eoh", tx, new FakeLookups());
    expect((outcome as Awaited<typeof outcome>).effects.map((e) => e.kind === "log" && e.text)).toEqual([
      "lower",
      "length",
      "code points",
      "literal",
      "absent",
    ]);
  });
});

describe("rcpts in conditions", () => {
  const ruleset = rulesetOf(
    rules(
      'on data: if "Postmaster@Example.ORG" in rcpts then log "postmaster"',
      'on data: if "\\"bob\\"@example.org" in rcpts then log "bob"',
      'on data: if from in rcpts then log "to self"',
      'on data: if from not in rcpts then log "not to self"',
      'on data: if count(rcpts) > 2 then reject 550 5.7.1 "Too many recipients ({rcpts})"',
    ),
  );
  const logs = async (from: string, rcpts: string[]) => {
    const outcome = await evaluate(ruleset, "data", transaction({ from, rcpts }), new FakeLookups());
    return { logs: outcome.effects.map((e) => e.kind === "log" && e.text), reply: reply(outcome) };
  };

  it("compares addresses as addresses compare elsewhere: case-insensitive, quotes normalised", async () => {
    expect(await logs("Bob@Example.org", ["postmaster@example.org", "BOB@example.ORG"])).toEqual({
      logs: ["postmaster", "bob", "to self"],
      reply: undefined,
    });
    expect((await logs("carol@example.org", ["bob@example.org"])).logs).toEqual(["bob", "not to self"]);
  });

  it("an empty address is in no list, and not 'not in' one either (the null sender)", async () => {
    expect((await logs("", ["bob@example.org"])).logs).toEqual(["bob"]);
  });

  it("counts the recipients", async () => {
    const three = await logs("a@example.org", ["x@example.org", "y@example.org", "Z@Example.org"]);
    expect(three.reply).toBe("550 5.7.1 Too many recipients (x@example.org, y@example.org, Z@Example.org)");
  });

  it("with local_part: sensitive, the local part of X keeps its case", async () => {
    const sensitive = rulesetOf(
      `defaults:\n  local_part: sensitive\n${rules('on data: if "Bob@Example.ORG" in rcpts then log "yes"')}`,
    );
    const run = async (rcpt: string) =>
      (await evaluate(sensitive, "data", transaction({ rcpts: [rcpt] }), new FakeLookups())).effects.length;
    expect(await run("Bob@example.org")).toBe(1);
    expect(await run("bob@example.org")).toBe(0);
  });
});

describe("DNSBL answers: NAME[X] and {NAME.codes}", () => {
  const ruleset = rulesetOf(
    `${SOURCES}${rules(
      'on connect: if 127.0.0.4 in spamhaus[client.ip] then reject 554 5.7.1 "{client.ip} in {spamhaus.zone} ({spamhaus.codes}): {spamhaus.reason}"',
      'on connect: if count(spamhaus[client.ip]) > 0 then log "listed: {spamhaus.codes}"',
      'on connect: if count(spamhaus[client.ip]) == 0 then log "clean [{spamhaus.codes}]"',
    )}`,
  );
  const listed = {
    listed: true,
    code: "127.0.0.4",
    codes: ["127.0.0.4", "127.0.0.10"],
    reason: "https://www.spamhaus.org/query/ip/192.0.2.10",
  };

  for (const [mode, async] of MODES) {
    it(`is the list of A records the list answered, as IPs (${mode})`, async () => {
      const fake = new FakeLookups().listed("spamhaus", "192.0.2.10", listed);
      fake.async = async;
      expect(reply(await evaluate(ruleset, "connect", transaction(), fake))).toBe(
        "554 5.7.1 192.0.2.10 in zen.spamhaus.org (127.0.0.4, 127.0.0.10): https://www.spamhaus.org/query/ip/192.0.2.10",
      );
      const other = new FakeLookups().listed("spamhaus", "192.0.2.10", {
        listed: true,
        code: "127.0.0.2",
        codes: ["127.0.0.2", "127.0.0.3"],
      });
      other.async = async;
      const outcome = await evaluate(ruleset, "connect", transaction(), other);
      expect(outcome.decision).toBeUndefined();
      expect(outcome.effects.map((e) => e.kind === "log" && e.text)).toEqual([
        "listed: 127.0.0.2, 127.0.0.3",
      ]);
    });
  }

  it("is empty when X is not listed, or the list is off", async () => {
    for (const answer of [{ listed: false }, { listed: false, off: "dead" }]) {
      const fake = new FakeLookups().listed("spamhaus", "192.0.2.10", answer);
      const outcome = await evaluate(ruleset, "connect", transaction(), fake);
      expect(outcome.effects.map((e) => e.kind === "log" && e.text)).toEqual(["clean []"]);
    }
  });

  it("is empty, with no query made, when the key is empty", async () => {
    const empty = rulesetOf(
      `${SOURCES}${rules('on mail: if count(spamhaus[from.domain]) == 0 then log "none"')}`,
    );
    const fake = new FakeLookups();
    const outcome = await evaluate(empty, "mail", transaction({ from: "" }), fake);
    expect(outcome.effects.map((e) => e.kind === "log" && e.text)).toEqual(["none"]);
    expect(fake.calls).toEqual([]);
  });

  it("takes the one code of a Lookups that gives only `code`", async () => {
    const fake = new FakeLookups().listed("spamhaus", "192.0.2.10", { listed: true, code: "127.0.0.4" });
    expect(reply(await evaluate(ruleset, "connect", transaction(), fake))).toBe(
      "554 5.7.1 192.0.2.10 in zen.spamhaus.org (127.0.0.4): ",
    );
  });

  it("X in NAME fills {NAME.codes} too", async () => {
    const inList = rulesetOf(
      `${SOURCES}${rules('on connect: if client.ip in spamhaus then reject 554 5.7.1 "{spamhaus.codes}"')}`,
    );
    const fake = new FakeLookups().listed("spamhaus", "192.0.2.10", listed);
    expect(reply(await evaluate(inList, "connect", transaction(), fake))).toBe(
      "554 5.7.1 127.0.0.4, 127.0.0.10",
    );
  });

  it("a failed lookup takes the source's on_error (a DNSBL's default: continue)", async () => {
    const fake = new FakeLookups();
    fake.failing.add("spamhaus");
    const outcome = await evaluate(ruleset, "connect", transaction(), fake);
    expect(outcome.decision).toBeUndefined();
    expect(outcome.rules.flatMap((r) => r.errors ?? [])).toHaveLength(3);
  });

  it("shows every A record in the trace", async () => {
    const fake = new FakeLookups().listed("spamhaus", "192.0.2.10", listed);
    const records: string[] = [];
    await evaluate(ruleset, "connect", transaction(), fake, {
      lookup: (r) => records.push(`${r.what} ${r.key}: ${r.result}`),
      everyRule: true,
    });
    expect(records[0]).toBe(
      "spamhaus[] 192.0.2.10: listed (127.0.0.4, 127.0.0.10): https://www.spamhaus.org/query/ip/192.0.2.10",
    );
  });
});
