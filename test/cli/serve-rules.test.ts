import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
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
    const ready = await running.waitForLine((l) => String(l.msg).startsWith("ready"));
    expect(ready.postfix).toBe(`smtpd_milters = inet:127.0.0.1:${port}`);
    expect(String(ready.try)).toContain(`filterctl dry-run --config ${config}`);
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
    expect(running.lines().filter((l) => String(l.msg).includes("out of order"))).toEqual([]);
    process.kill(running.child.pid as number, "SIGTERM");
    expect(await running.exit).toBe(0);
  });
});

describe("the event deadline", () => {
  it("answers with the sources' on_error when the rules miss event_timeout, and logs it", async () => {
    // A quota service that never answers, with a lookup timeout far beyond the event deadline.
    const stalled = createServer(() => {});
    await new Promise<void>((r) => stalled.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(stalled.address() as AddressInfo).port}/quota?u={user}`;
    const dir = mkdtempSync(join(tmpdir(), "filterctl-deadline-"));
    const config = join(dir, "rules.yaml");
    const write = (onError: string) =>
      writeFileSync(
        config,
        `event_timeout: 300ms
defaults:
  error_reply: "451 4.3.0 Temporary lookup failure, try again later"
sources:
  backend:
    type: http
    url: "${url}"
    timeout: 20s
    on_error: ${onError}
rules:
  - on rcpt: if quota(rcpt) over then tempfail 452 4.2.2
`,
      );
    write("tempfail");
    const port = await freePort();
    running = startCli(["serve", "--config", config, "--listen", `inet:${port}@127.0.0.1`]);
    await running.waitForLine((l) => l.msg === "milter listening");
    try {
      const client = await MilterClient.connect(`inet:${port}@127.0.0.1`);
      await client.negotiate();
      await client.connectInfo({ hostname: "c.example", family: "inet", port: 1, address: "192.0.2.9" });
      await client.mail("<a@example.org>");
      let started = Date.now();
      expect(await client.rcpt("<b@example.org>")).toEqual({
        type: "replycode",
        text: "451 4.3.0 Temporary lookup failure, try again later",
      });
      expect(Date.now() - started).toBeLessThan(2000);
      client.quit();
      const line = await running.waitForLine((l) => String(l.msg).includes("missed the event deadline"));
      expect(line).toMatchObject({ stage: "rcpt", timeoutMs: 300, reply: "tempfail 451" });

      write("continue");
      await running.waitForLine((l) => l.generation === 2 && String(l.msg).startsWith("reloaded"));
      const second = await MilterClient.connect(`inet:${port}@127.0.0.1`);
      await second.negotiate();
      await second.connectInfo({ hostname: "c.example", family: "inet", port: 1, address: "192.0.2.9" });
      await second.mail("<a@example.org>");
      started = Date.now();
      expect(await second.rcpt("<b@example.org>")).toEqual({ type: "continue" });
      expect(Date.now() - started).toBeLessThan(2000);
      second.quit();
    } finally {
      stalled.closeAllConnections();
      stalled.close();
    }
    expect(running.lines().filter((l) => String(l.msg).includes("out of order"))).toEqual([]);
    process.kill(running.child.pid as number, "SIGTERM");
    expect(await running.exit).toBe(0);
  });
});
