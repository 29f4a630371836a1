/**
 * Issue 10, shared state: two `filterctl serve` processes (two MX hosts) on one private
 * redis-server, driven by the milter client as their MTAs. A rate of N across both is enforced at
 * N; a triplet greylisted by one passes the other after the delay; Redis killed mid-run makes the
 * rules take state.on_error (logged, counted in /metrics, no crash); Redis back is used again
 * without a restart.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MilterClient } from "../../src/milter/index.js";
import { RedisServer } from "../support/redis.js";
import { ServeProcess } from "../support/serve-process.js";
import { freePort } from "./processes.js";

const RATE_LIMIT = 4;

function rulesYaml(redisUrl: string): string {
  return `state:
  type: redis
  url: "${redisUrl}"
  timeout: 300ms
  on_error: tempfail
greylist:
  delay: 1s
  retry_window: 1h
defaults:
  error_reply: "451 4.3.0 State unavailable, try again later"
rules:
  - name: sender-rate
    on: rcpt
    if: rcpt.domain == "rate.example" and rate(from, 1h) > ${RATE_LIMIT}
    then: tempfail 450 4.7.1 "Sending rate exceeded"
  - name: grey
    on: rcpt
    if: rcpt.domain == "grey.example" and greylist(client.net, from, rcpt)
    then: tempfail 451 4.7.1 "Greylisted, try again later"
`;
}

type Reply = Awaited<ReturnType<MilterClient["rcpt"]>>;

/** One SMTP transaction up to RCPT on `serve`, as an MTA would; the RCPT reply. */
async function rcptReply(
  serve: ServeProcess,
  from: string,
  rcpt: string,
  clientIp = "192.0.2.10",
): Promise<Reply> {
  const client = await MilterClient.connect(serve.listen, 5000);
  try {
    await client.negotiate();
    await client.connectInfo({
      hostname: "mx.client.example",
      family: "inet",
      port: 40000,
      address: clientIp,
    });
    await client.helo("mx.client.example");
    await client.mail(`<${from}>`);
    return await client.rcpt(`<${rcpt}>`);
  } finally {
    client.quit();
  }
}

const code = (reply: Reply) => (reply?.type === "replycode" ? Number(reply.text.slice(0, 3)) : reply?.type);

async function metricValue(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(name));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

describe("two serve processes sharing one Redis", () => {
  let redis: RedisServer;
  let dir: string;
  let a: ServeProcess;
  let b: ServeProcess;
  let metricsA: number;

  beforeAll(async () => {
    redis = await RedisServer.start();
    dir = await mkdtemp(join(tmpdir(), "filterctl-state-e2e-"));
    const config = join(dir, "rules.yaml");
    await writeFile(config, rulesYaml(redis.url));
    metricsA = await freePort();
    a = await ServeProcess.start({ config, args: ["--metrics", `127.0.0.1:${metricsA}`] });
    b = await ServeProcess.start({ config });
  }, 60_000);

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await redis?.kill();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it("enforces a rate of N across both servers at N", async () => {
    const replies: (string | number | undefined)[] = [];
    for (let i = 0; i < RATE_LIMIT + 3; i++) {
      const serve = i % 2 === 0 ? a : b;
      replies.push(code(await rcptReply(serve, "bulk@sender.example", `user${i}@rate.example`)));
    }
    expect(replies.slice(0, RATE_LIMIT)).toEqual(Array(RATE_LIMIT).fill("continue"));
    expect(replies.slice(RATE_LIMIT)).toEqual([450, 450, 450]);
    // Another sender has its own count.
    expect(code(await rcptReply(b, "other@sender.example", "user@rate.example"))).toBe("continue");
  });

  it("passes on one server a triplet the other greylisted, once the delay is over", async () => {
    const first = await rcptReply(a, "news@list.example", "bob@grey.example", "198.51.100.7");
    expect(code(first)).toBe(451);
    // Before the delay, the other server defers it too; a neighbour in the same /24 is the same triplet.
    expect(code(await rcptReply(b, "news@list.example", "bob@grey.example", "198.51.100.8"))).toBe(451);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(code(await rcptReply(b, "news@list.example", "bob@grey.example", "198.51.100.7"))).toBe(
      "continue",
    );
    expect(code(await rcptReply(a, "news@list.example", "bob@grey.example", "198.51.100.7"))).toBe(
      "continue",
    );
  });

  it("takes state.on_error while Redis is down, counts it, and uses Redis again when it is back", async () => {
    const before = await metricValue(metricsA, "filterctl_state_errors_total");
    await redis.kill();
    const down = await rcptReply(a, "someone@sender.example", "user@rate.example");
    expect(down?.type === "replycode" ? down.text : down).toBe(
      "451 4.3.0 State unavailable, try again later",
    );
    expect(code(await rcptReply(b, "someone@sender.example", "user@grey.example"))).toBe(451);
    expect(await metricValue(metricsA, "filterctl_state_errors_total")).toBeGreaterThan(before);
    await a.waitForLine((line) => String(line.msg).startsWith("redis state is down"), 5000);
    // A rule that needs no state is not held up by it.
    expect(code(await rcptReply(a, "someone@sender.example", "user@plain.example"))).toBe("continue");

    await redis.launch();
    await a.waitForLine((line) => line.msg === "redis state is back", 10_000);
    await b.waitForLine((line) => line.msg === "redis state is back", 10_000);
    // A fresh server: counting starts again, on both hosts together.
    expect(code(await rcptReply(a, "again@sender.example", "u1@rate.example"))).toBe("continue");
    expect(code(await rcptReply(b, "again@sender.example", "u2@rate.example"))).toBe("continue");
    expect(a.exitStatus).toBeUndefined();
    expect(b.exitStatus).toBeUndefined();
  });
});
