/**
 * The back-end quota HTTP service (`filterctl quota-server`), as a request handler over a
 * quota source (maildir or mbox):
 *
 *   GET /quota?u=USER[&size=N]              (also /cgi-bin/quota.cgi, the original CGI's path)
 *   200 text/plain  "OK user 1234 200000000 12 0\n"  or  "OVERQUOTA user …"
 *                   (STATUS user usage_bytes limit_bytes messages message_limit)
 *   200 application/json (when Accept names it)
 *                   {"user","over","usage","limit","count","count_limit"}
 *   404 "NOUSER user"            no such mailbox
 *   400                          missing or bad u (`/`, `\`, a leading dot, `..`, control
 *                                characters, white space, over 255 bytes) or bad size
 *   503                          the lookup failed or timed out (never a guessed OK/OVERQUOTA)
 *   404 other paths; 405 methods other than GET and HEAD.
 *
 * `over` is the quota semantics' test with `size` (default 1) as the incoming bytes.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { withDeadline } from "../common/deadline.js";
import { isOverQuota, type QuotaStatus } from "../runtime/lookups.js";
import { isSafePathComponent } from "./placeholders.js";
import type { QuotaSource, SourceLogger } from "./types.js";

export const QUOTA_PATHS: readonly string[] = ["/quota", "/cgi-bin/quota.cgi"];
/** Longest request target accepted (a user is at most 255 bytes, percent-encoded ×3). */
const MAX_TARGET = 2048;

export interface QuotaServiceOptions {
  source: QuotaSource;
  /** The source's name, for logs. */
  sourceName: string;
  /** Deadline of one lookup, ms. */
  timeoutMs: number;
  logger: SourceLogger;
}

type Reply = {
  status: number;
  text: string;
  json: Record<string, unknown>;
  headers?: Record<string, string>;
};

/** Why `user` is refused (400), or undefined when it may be looked up. */
export function badUserReason(user: string): string | undefined {
  if (user === "") return "empty user";
  if (Buffer.byteLength(user, "utf8") > 255) return "user longer than 255 bytes";
  if (user.includes("/") || user.includes("\\")) return "user contains a slash";
  if (user.startsWith(".")) return "user starts with a dot";
  if (user.includes("..")) return "user contains '..'";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are refused
  if (/[\x00-\x1f\x7f-\x9f]/.test(user)) return "user contains control characters";
  if (/\s/u.test(user)) return "user contains white space";
  // Anything else a file path would refuse is refused here too.
  if (!isSafePathComponent(user)) return "user is not a safe name";
  return undefined;
}

function wantsJson(request: IncomingMessage): boolean {
  const accept = request.headers.accept;
  return typeof accept === "string" && /\bapplication\/json\b/i.test(accept);
}

function send(request: IncomingMessage, response: ServerResponse, reply: Reply): void {
  const json = wantsJson(request);
  const body = json ? `${JSON.stringify(reply.json)}\n` : `${reply.text}\n`;
  response.writeHead(reply.status, {
    "content-type": json ? "application/json" : "text/plain; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
    ...reply.headers,
  });
  // Node sends no body for HEAD whatever is written.
  response.end(request.method === "HEAD" ? undefined : body);
}

function statusReply(user: string, status: QuotaStatus, incoming: number): Reply {
  const over = isOverQuota(status, incoming);
  return {
    status: 200,
    text: `${over ? "OVERQUOTA" : "OK"} ${user} ${status.usage} ${status.limit} ${status.count} ${status.countLimit}`,
    json: {
      user,
      over,
      usage: status.usage,
      limit: status.limit,
      count: status.count,
      count_limit: status.countLimit,
    },
  };
}

function errorReply(status: number, word: string, text: string, user?: string): Reply {
  return {
    status,
    text: user === undefined ? `${word} ${text}` : `${word} ${user}`,
    json: user === undefined ? { error: text } : { user, error: text },
  };
}

/** The source's answer within the deadline; a failure is a 503, its cause the log's `detail`. */
async function lookup(
  options: QuotaServiceOptions,
  response: ServerResponse,
  name: string,
  incoming: number,
): Promise<{ reply: Reply; detail?: string }> {
  const gone = new AbortController();
  const onClose = () => {
    if (!response.writableFinished) gone.abort(new Error("client went away"));
  };
  response.once("close", onClose);
  try {
    const status = await withDeadline((signal) => options.source.quota(name, signal), {
      ms: options.timeoutMs,
      onTimeout: () => {
        throw new Error(`no answer within ${options.timeoutMs} ms`);
      },
      signal: gone.signal,
    });
    if (status === undefined) return { reply: errorReply(404, "NOUSER", "no such user", name) };
    return { reply: statusReply(name, status, incoming) };
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    return {
      reply: {
        status: 503,
        text: `ERROR ${name} lookup failed`,
        json: { user: name, error: "lookup failed" },
      },
      detail,
    };
  } finally {
    response.off("close", onClose);
  }
}

/** One request → one reply; never throws. */
export function createQuotaRequestHandler(options: QuotaServiceOptions) {
  const { logger } = options;
  return async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const started = Date.now();
    const target = request.url ?? "/";
    let user: string | undefined;
    let reply: Reply;
    let detail: string | undefined;
    try {
      if (target.length > MAX_TARGET) {
        reply = errorReply(414, "ERROR", "request target too long");
      } else {
        // The path is compared as sent: no normalisation ("/cgi-bin/../quota", "//host/quota" are 404).
        const question = target.indexOf("?");
        const path = question === -1 ? target : target.slice(0, question);
        const params = new URLSearchParams(question === -1 ? "" : target.slice(question + 1));
        if (!QUOTA_PATHS.includes(path)) {
          reply = errorReply(404, "ERROR", "no such path");
        } else if (request.method !== "GET" && request.method !== "HEAD") {
          reply = { ...errorReply(405, "ERROR", "only GET and HEAD"), headers: { allow: "GET, HEAD" } };
        } else {
          const users = params.getAll("u");
          const sizes = params.getAll("size");
          const size = sizes[0];
          if (users.length !== 1) {
            reply = errorReply(400, "ERROR", users.length === 0 ? "missing u=USER" : "more than one u=");
          } else if (sizes.length > 1 || (size !== undefined && !/^\d{1,15}$/.test(size))) {
            reply = errorReply(400, "ERROR", "size must be a number of bytes");
          } else {
            const requested = users[0] as string;
            const bad = badUserReason(requested);
            if (bad !== undefined) {
              reply = errorReply(400, "ERROR", bad);
              detail = `${bad}: ${JSON.stringify(requested.slice(0, 100))}`;
            } else {
              user = requested;
              ({ reply, detail } = await lookup(
                options,
                response,
                requested,
                size === undefined ? 1 : Number(size),
              ));
            }
          }
        }
      }
    } catch (error) {
      reply = errorReply(400, "ERROR", "bad request");
      detail = error instanceof Error ? error.message : String(error);
    }
    send(request, response, reply);
    const fields: Record<string, unknown> = {
      method: request.method,
      path: target.split("?")[0]?.slice(0, 200),
      status: reply.status,
      ms: Date.now() - started,
    };
    if (user !== undefined) fields.user = user;
    if (reply.status === 200) Object.assign(fields, reply.json);
    if (detail !== undefined) fields.detail = detail;
    if (reply.status >= 500) logger.warn(fields, "quota request failed");
    else logger.info(fields, "quota request");
  };
}
