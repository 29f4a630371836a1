/**
 * The bound on headers added to one message: a rule at the `header` stage runs once per header
 * the client sent, and must not turn 50,000 headers into 50,000 modifications.
 */
import { describe, expect, it } from "vitest";
import { dryRun } from "../../src/engine/dry-run.js";
import { AddedHeaders, MAX_ADDED_HEADERS } from "../../src/runtime/added-headers.js";
import { FakeLookups, rules, rulesetOf } from "./helpers.js";

describe("AddedHeaders", () => {
  it("keeps the first 100 headers and counts the rest by rule", () => {
    const added = new AddedHeaders();
    for (let i = 0; i < 150; i++) added.add({ name: "X-A", value: String(i), rule: "a" });
    for (let i = 0; i < 10; i++) added.add({ name: "X-B", value: String(i), rule: "b" });
    expect(MAX_ADDED_HEADERS).toBe(100);
    expect(added.kept).toHaveLength(100);
    expect(added.kept.at(-1)).toEqual({ name: "X-A", value: "99", rule: "a" });
    expect(added.dropped).toBe(60);
    expect([...added.droppedBy]).toEqual(["a", "b"]);
  });

  it("drops nothing under the bound", () => {
    const added = new AddedHeaders();
    for (let i = 0; i < 100; i++) expect(added.add({ name: "X", value: "", rule: "r" })).toBe(true);
    expect(added.add({ name: "X", value: "", rule: "r" })).toBe(false);
    expect(added.dropped).toBe(1);
  });
});

describe("dry-run shows the bound as serve applies it", () => {
  it("adds 100 of 500 headers and reports the rest as dropped", async () => {
    const headers = Array.from({ length: 500 }, (_, i) => ({ name: `X-In-${i}`, value: "v" }));
    const report = await dryRun(
      rulesetOf(rules('on header: add header "X-Seen" "{header.name}"')),
      new FakeLookups(),
      {
        clientIp: "192.0.2.10",
        from: "sender@example.net",
        rcpts: ["a@example.org"],
        headers,
        body: Buffer.from("body\r\n"),
      },
    );
    expect(report.headersAdded).toHaveLength(100);
    expect(report.headersAdded[99]).toEqual({ name: "X-Seen", value: "X-In-99", rule: "rule-1" });
    expect(report.headersDropped).toEqual({ count: 400, rules: ["rule-1"] });
  });
});
