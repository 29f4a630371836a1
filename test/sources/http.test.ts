import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HttpSourceConfig } from "../../src/sources/http.js";
import { createHttpSource, MAX_RESPONSE_BYTES, parseQuotaAnswer } from "../../src/sources/http.js";

/** An independent quota service speaking the seed's protocol, plus misbehaving routes. */
let server: Server;
let base: string;
const seen: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const user = url.searchParams.get("u") ?? "";
    seen.push(user);
    switch (url.pathname) {
      case "/quota":
        if (user === "nobody") {
          res.writeHead(404).end(`NOUSER ${user}\n`);
        } else if (user === "full") {
          res
            .writeHead(200, { "content-type": "text/plain" })
            .end("OVERQUOTA full 210000000 200000000 812 0\n");
        } else if (user === "json") {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ user, over: false, usage: 5, limit: 100, count: 1, count_limit: 10 }));
        } else {
          res.writeHead(200, { "content-type": "text/plain" }).end(`OK ${user} 1234 200000000 12 0\n`);
        }
        return;
      case "/error":
        res.writeHead(503).end("busy");
        return;
      case "/garbage":
        res.writeHead(200).end("<html>hello</html>");
        return;
      case "/huge":
        res.writeHead(200).end(`OK u 1 2 3 4${" ".repeat(MAX_RESPONSE_BYTES * 4)}`);
        return;
      case "/stall":
        return; // never answers
      default:
        res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const ctx = { configPath: "rules.yaml", logger: { info() {}, warn() {}, error() {} } };
function source(path: string, extra: Partial<HttpSourceConfig> = {}) {
  return createHttpSource(
    {
      name: "backend",
      type: "http",
      kind: "quota",
      url: `${base}${path}`,
      timeoutMs: 300,
      onError: "tempfail",
      offset: 0,
      ...extra,
    },
    ctx,
  );
}
const signal = () => AbortSignal.timeout(2000);

describe("http quota source", () => {
  it("reads the text protocol", async () => {
    const s = source("/quota?u={user}");
    expect(await s.quota("alice@example.org", signal())).toEqual({
      usage: 1234,
      limit: 200000000,
      count: 12,
      countLimit: 0,
    });
    expect(await s.quota("full@example.org", signal())).toEqual({
      usage: 210000000,
      limit: 200000000,
      count: 812,
      countLimit: 0,
    });
    await s.close();
  });

  it("reads the JSON form", async () => {
    const s = source("/quota?u={user}");
    expect(await s.quota("json@example.org", signal())).toEqual({
      usage: 5,
      limit: 100,
      count: 1,
      countLimit: 10,
    });
    await s.close();
  });

  it("treats 404 as no such mailbox", async () => {
    const s = source("/quota?u={user}");
    expect(await s.quota("nobody@example.org", signal())).toBeUndefined();
    await s.close();
  });

  it("URL-encodes values and strips +detail with a delimiter", async () => {
    const s = source("/quota?u={user}", { recipientDelimiter: "+" });
    await s.quota("we&ird=x+tag@example.org", signal());
    expect(seen.at(-1)).toBe("we&ird=x");
    await s.close();
  });

  it.each([
    ["/error?u={user}", /HTTP 503/],
    ["/garbage?u={user}", /something else than a quota line/],
    ["/huge?u={user}", /longer than 4096 bytes/],
  ])("%s is a lookup error, never a quota", async (path, message) => {
    const s = source(path);
    await expect(s.quota("a@b", signal())).rejects.toThrow(message);
    await s.close();
  });

  it("gives up on a stalled service at the deadline", async () => {
    const s = source("/stall?u={user}");
    const started = Date.now();
    await expect(s.quota("a@b", AbortSignal.timeout(200))).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(1500);
    await s.close();
  });

  it("fails cleanly when nothing listens", async () => {
    const s = createHttpSource(
      {
        name: "b",
        type: "http",
        kind: "quota",
        url: "http://127.0.0.1:1/quota?u={user}",
        timeoutMs: 300,
        onError: "tempfail",
        offset: 0,
      },
      ctx,
    );
    await expect(s.quota("a@b", signal())).rejects.toThrow();
    await s.close();
  });
});

describe("parsing quota answers strictly", () => {
  it.each([
    "OK user 12",
    "OK user -1 2 3 4",
    "FINE user 1 2 3 4",
    "OK user 1 2 3 4\nOK user 1 2 3 4",
    "OK user 1 2 3 99999999999999999",
    '{"usage": "12", "limit": 1, "count": 1, "count_limit": 0}',
    '{"usage": 1.5, "limit": 1, "count": 1, "count_limit": 0}',
    "{not json",
  ])("refuses %j", (body) => {
    expect(() => parseQuotaAnswer(body, undefined)).toThrow();
  });
});
