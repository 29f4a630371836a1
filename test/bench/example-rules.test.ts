/**
 * `npm run bench` serves examples/rules.yaml with its sources moved to private servers
 * (bench/table.ts exampleRules). The example changes with the product: this keeps the rewritten
 * file valid, its rules the example's, and its lists on the LDAP source, so the bench's third row
 * measures the example and not a file that no longer loads.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { exampleRules } from "../../bench/table.js";
import { runCli } from "../cli/run.js";

const EXAMPLE = new URL("../../examples/rules.yaml", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "filterctl-bench-example-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface RuleDoc {
  name?: string;
  if?: string;
}

describe("the bench's examples/rules.yaml", () => {
  const text = exampleRules(dir, "ldap://127.0.0.1:3899", "127.0.0.1:5399", EXAMPLE);
  const doc = parse(text) as { sources: Record<string, { type: string }>; rules: (RuleDoc | string)[] };
  const original = parse(readFileSync(EXAMPLE, "utf8")) as { rules: (RuleDoc | string)[] };

  it("validates without errors or warnings", () => {
    const path = join(dir, "example.yaml");
    writeFileSync(path, text);
    const result = runCli(["validate", "--config", path]);
    expect(result.stderr).toBe("");
    expect(result.stdout).toMatch(/OK: 7 rules .* 0 errors, 0 warnings/);
    expect(result.status).toBe(0);
  });

  it("keeps every rule of the example, its lists moved to the LDAP source", () => {
    expect(doc.rules).toHaveLength(original.rules.length);
    const names = (rules: (RuleDoc | string)[]) => rules.map((r) => (typeof r === "string" ? r : r.name));
    expect(names(doc.rules)).toEqual(names(original.rules));
    const named = (name: string) =>
      doc.rules.find((r) => typeof r !== "string" && r.name === name) as RuleDoc;
    expect(named("verify-from").if).toBe(
      'auth.user == "" and from.domain in directory.local_domains and from not in directory.addresses',
    );
    expect(named("mailbox-full").if).toBe(
      "rcpt.domain in directory.local_domains and quota(rcpt, mailboxes) over",
    );
    expect(doc.sources.directory?.type).toBe("ldap");
    expect(doc.sources.local_domains).toBeUndefined();
    expect(doc.sources.spamhaus).toMatchObject({ type: "dnsbl", zone: "bl.test" });
  });
});
