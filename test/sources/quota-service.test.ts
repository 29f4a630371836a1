import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { QuotaStatus } from "../../src/runtime/lookups.js";
import { createQuotaRequestHandler } from "../../src/sources/quota-service.js";
import type { QuotaSource } from "../../src/sources/types.js";

interface Line {
  fields: Record<string, unknown>;
  message: string;
}

let server: Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((done) => server?.close(done));
  server = undefined;
});

async function serve(quota: QuotaSource["quota"], timeoutMs: number) {
  const lines: Line[] = [];
  const log = (fields: object, message: string) => lines.push({ fields: fields as Line["fields"], message });
  const source: QuotaSource = { kind: "quota", quota, close: async () => {} };
  const handler = createQuotaRequestHandler({
    source,
    sourceName: "mailboxes",
    timeoutMs,
    logger: { info: log, warn: log, error: log },
  });
  server = createServer((request, response) => void handler(request, response));
  await new Promise<void>((done) => server?.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  return { lines, url: `http://127.0.0.1:${port}/quota?u=alice` };
}

describe("the quota service's lookup deadline", () => {
  it("answers 503 at the deadline when the source never answers, saying why in the log", async () => {
    const seen: AbortSignal[] = [];
    const { lines, url } = await serve((_address, signal) => {
      seen.push(signal);
      return new Promise<QuotaStatus | undefined>(() => {});
    }, 100);
    const started = Date.now();
    const response = await fetch(url);
    expect(response.status).toBe(503);
    expect(await response.text()).toBe("ERROR alice lookup failed\n");
    expect(Date.now() - started).toBeLessThan(2000);
    expect(lines.at(-1)).toMatchObject({
      message: "quota request failed",
      fields: { status: 503, user: "alice", detail: "no answer within 100 ms" },
    });
    // The source was told to stop.
    expect(seen[0]?.aborted).toBe(true);
  });

  it("answers the source's status in time", async () => {
    const { url } = await serve(async () => ({ usage: 10, limit: 100, count: 1, countLimit: 0 }), 1000);
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("OK alice 10 100 1 0\n");
  });
});
