/**
 * The back-end's quota service over HTTP: the seed's one-line text protocol
 * (`OK user 1234 200000000 12 0`) or JSON. 404 means "no such mailbox" (never over quota);
 * 5xx, timeouts, oversized or malformed answers are lookup errors (the rule's on_error applies).
 */
import { Agent, request } from "undici";
import type { SourceConfigBase } from "../config/types.js";
import type { QuotaStatus } from "../runtime/lookups.js";
import { urlFiller, valuesFor } from "./placeholders.js";
import type { QuotaSource, SourceContext } from "./types.js";

/** A quota answer is one short line; anything longer is not one. */
export interface HttpSourceConfig extends SourceConfigBase {
  type: "http";
  url: string;
}

export const MAX_RESPONSE_BYTES = 4096;

const TEXT_ANSWER = /^(OK|OVERQUOTA) (\S{1,255}) (\d{1,16}) (\d{1,16}) (\d{1,16}) (\d{1,16})$/;

export class QuotaAnswerError extends Error {}

/** Parses the text or JSON answer strictly; anything else is an error. */
export function parseQuotaAnswer(body: string, contentType: string | undefined): QuotaStatus {
  const trimmed = body.replace(/\r?\n$/, "");
  if (/^application\/json\b/i.test(contentType ?? "") || trimmed.startsWith("{")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      throw new QuotaAnswerError("quota service answered malformed JSON");
    }
    const record = parsed as Record<string, unknown>;
    const fields = ["usage", "limit", "count", "count_limit"] as const;
    for (const field of fields) {
      const value = record?.[field];
      if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
        throw new QuotaAnswerError(`quota service JSON has no valid '${field}'`);
      }
    }
    return {
      usage: record.usage as number,
      limit: record.limit as number,
      count: record.count as number,
      countLimit: record.count_limit as number,
    };
  }
  if (trimmed.includes("\n")) throw new QuotaAnswerError("quota service answered more than one line");
  const match = TEXT_ANSWER.exec(trimmed);
  if (match === null)
    throw new QuotaAnswerError(
      `quota service answered something else than a quota line: ${JSON.stringify(trimmed.slice(0, 80))}`,
    );
  return {
    usage: Number(match[3]),
    limit: Number(match[4]),
    count: Number(match[5]),
    countLimit: Number(match[6]),
  };
}

export function createHttpSource(config: HttpSourceConfig, _ctx: SourceContext): QuotaSource {
  // One keep-alive pool per source (so per origin): lookups reuse connections.
  const agent = new Agent({
    keepAliveTimeout: 30_000,
    connections: 32,
    headersTimeout: config.timeoutMs,
    bodyTimeout: config.timeoutMs,
  });
  const fillUrl = urlFiller(config.url);
  return {
    kind: "quota",
    async quota(address: string, signal: AbortSignal): Promise<QuotaStatus | undefined> {
      const url = fillUrl(valuesFor(address, config.recipientDelimiter));
      // A value that would change which resource is asked names no mailbox: the service is not asked.
      if (url === undefined) return undefined;
      const response = await request(url, {
        method: "GET",
        dispatcher: agent,
        signal,
        headers: { accept: "text/plain, application/json;q=0.9" },
      });
      if (response.statusCode === 404) {
        await response.body.dump();
        return undefined;
      }
      if (response.statusCode !== 200) {
        await response.body.dump();
        throw new QuotaAnswerError(`quota service answered HTTP ${response.statusCode}`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of response.body) {
        size += (chunk as Buffer).length;
        if (size > MAX_RESPONSE_BYTES) {
          response.body.destroy();
          throw new QuotaAnswerError(`quota service answer longer than ${MAX_RESPONSE_BYTES} bytes`);
        }
        chunks.push(chunk as Buffer);
      }
      const contentType = response.headers["content-type"];
      return parseQuotaAnswer(
        Buffer.concat(chunks).toString("utf8"),
        Array.isArray(contentType) ? contentType[0] : contentType,
      );
    },
    async close() {
      await agent.close();
    },
  };
}
