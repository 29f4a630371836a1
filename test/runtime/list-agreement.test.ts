/**
 * One list matcher (common/list-matcher): a rule's literal list and a `list` source with the same
 * entries answer alike for the same key, whatever its case or spelling.
 */
import { describe, expect, it } from "vitest";
import type { Stage } from "../../src/common/stages.js";
import type { Transaction } from "../../src/runtime/transaction.js";
import { evaluate, FakeLookups, rules, rulesetOf, transaction } from "./helpers.js";

/** Answers [literal list matched, list source matched] for one subject and entries. */
async function both(
  stage: Stage,
  subject: string,
  entries: string[],
  tx: Partial<Transaction>,
): Promise<[boolean, boolean]> {
  const literal = entries.map((e) => JSON.stringify(e)).join(", ");
  const yaml = `sources:\n  listed:\n    type: list\n    items: ${JSON.stringify(entries)}\n${rules(
    `on ${stage}: if ${subject} in [${literal}] then log "literal"`,
    `on ${stage}: if ${subject} in listed then log "source"`,
  )}`;
  const fake = new FakeLookups().list("listed", entries);
  const outcome = await evaluate(rulesetOf(yaml), stage, transaction(tx), fake);
  const logs = outcome.effects.map((e) => (e.kind === "log" ? e.text : ""));
  return [logs.includes("literal"), logs.includes("source")];
}

describe("literal lists and list sources agree", () => {
  it('helo in ["MX.Example.org"] matches mx.example.org, as a list source does', async () => {
    expect(await both("helo", "helo", ["MX.Example.org"], { helo: "mx.example.org" })).toEqual([true, true]);
    expect(await both("helo", "helo", ["mx.example.org"], { helo: "MX.EXAMPLE.ORG." })).toEqual([true, true]);
    expect(await both("helo", "helo", ["MX.Example.org"], { helo: "mx.example.net" })).toEqual([
      false,
      false,
    ]);
  });

  it("CIDR ranges and IPs in any spelling", async () => {
    const client = (ip: string) => ({ client: { ip, name: "", port: 0 } });
    const entries = ["192.0.2.0/24", "2001:DB8::/32", "198.51.100.7"];
    for (const ip of ["192.0.2.9", "::ffff:192.0.2.9", "2001:db8:0::1", "198.51.100.7"])
      expect(await both("connect", "client.ip", entries, client(ip)), ip).toEqual([true, true]);
    for (const ip of ["192.0.3.1", "2001:db9::1"])
      expect(await both("connect", "client.ip", entries, client(ip)), ip).toEqual([false, false]);
  });

  it("addresses: case and needless quotes do not matter; a domain entry is not an address", async () => {
    const entries = ["Postmaster@Example.ORG", "example.net"];
    for (const from of ['"postmaster"@example.org', "POSTMASTER@example.org."])
      expect(await both("mail", "from", entries, { from }), from).toEqual([true, true]);
    expect(await both("mail", "from", entries, { from: "bob@example.net" })).toEqual([false, false]);
    expect(await both("mail", "from.domain", entries, { from: "bob@Example.NET" })).toEqual([true, true]);
  });
});
