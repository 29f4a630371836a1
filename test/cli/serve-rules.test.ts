import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MilterClient } from "../../src/milter/index.js";
import { freePort, type RunningCli, startCli } from "./run.js";

let running: RunningCli | undefined;
afterEach(() => {
  if (running?.child.exitCode === null) process.kill(-(running.child.pid as number), "SIGKILL");
  running = undefined;
});

const RULES = `
sources:
  directory:
    type: list
    items: ["example.org", "alice@example.org"]
rules:
  - name: verify-from
    on: mail
    if: from.domain in directory and from not in directory
    then: 'reject 550 5.7.1 "Reject: your From address {from} does not exist."'
`;

describe("filterctl serve with rules", () => {
  it("logs each decision with the rule, the reply and the lookups it made", async () => {
    const dir = mkdtempSync(join(tmpdir(), "filterctl-serve-"));
    const config = join(dir, "rules.yaml");
    writeFileSync(config, RULES);
    const port = await freePort();
    running = startCli(["serve", "--config", config, "--listen", `inet:${port}@127.0.0.1`]);
    await running.waitForLine((l) => l.msg === "milter listening");
    const client = await MilterClient.connect(`inet:${port}@127.0.0.1`);
    await client.negotiate();
    await client.connectInfo({ hostname: "c.example", family: "inet", port: 1, address: "192.0.2.9" });
    expect(await client.mail("<forged@example.org>")).toEqual({
      type: "replycode",
      text: "550 5.7.1 Reject: your From address forged@example.org does not exist.",
    });
    client.abort();
    expect(await client.mail("<alice@example.org>")).toEqual({ type: "continue" });
    client.quit();
    const decision = await running.waitForLine((l) => l.msg === "decision");
    expect(decision).toMatchObject({
      stage: "mail",
      decision: "reject",
      rule: "verify-from",
      client: "192.0.2.9",
      from: "forged@example.org",
      generation: 1,
      reply: "550 5.7.1 Reject: your From address forged@example.org does not exist.",
    });
    const lookups = decision.lookups as { source: string; key: string; result: string; ms: number }[];
    expect(lookups.map((l) => [l.source, l.key, l.result])).toEqual([
      ["directory", "example.org", "found"],
      ["directory", "forged@example.org", "not found"],
    ]);
    expect(lookups.every((l) => typeof l.ms === "number" && l.ms >= 0)).toBe(true);
    // The accepted sender produced no decision line.
    expect(running.lines().filter((l) => l.msg === "decision")).toHaveLength(1);
    process.kill(running.child.pid as number, "SIGTERM");
    expect(await running.exit).toBe(0);
  });
});
