/**
 * http: a quota service asked over HTTP (filterctl quota-server, or the original CGI).
 * In rules: quota(rcpt, NAME).
 */
import type { LocatedText, SourceBuildContext } from "../../config/types.js";
import { urlPartAt, VALUE_PARTS } from "../../config/url-template.js";
import type { SourceDescriptor } from "../descriptor.js";
import type { HttpSourceConfig } from "../http.js";

declare module "../../config/types.js" {
  interface SourceConfigs {
    http: HttpSourceConfig;
  }
}

/**
 * Placeholders only in the path and query of a URL: in its scheme, userinfo, host or port a
 * recipient address would choose the server asked. False when one is elsewhere.
 */
function checkUrlParts(ctx: SourceBuildContext, located: LocatedText): boolean {
  let ok = true;
  for (const match of located.text.matchAll(/\{(user|domain|address|key)\}/g)) {
    const part = urlPartAt(located.text, match.index);
    if (VALUE_PARTS.includes(part)) continue;
    ok = false;
    ctx.error(
      located.offsetAt(match.index),
      `'url' of source '${ctx.name}' has placeholder '${match[0]}' in its ${part}: only the path and query may hold placeholders`,
      "a recipient address must not choose the server asked",
    );
  }
  return ok;
}

export const http: SourceDescriptor<HttpSourceConfig> = {
  type: "http",
  kind: "quota",
  label: "http",
  ttlMs: { positive: 10_000, negative: 10_000 },
  schema: {
    summary: "http (quota service)",
    typeDescription: "http: ask an HTTP quota service.",
    definition: {
      description: "An HTTP quota service (filterctl quota-server, or the original CGI).",
      required: ["url"],
      properties: {
        url: {
          description:
            "URL asked for each lookup; {user}, {domain}, {address} are URL-encoded and may stand only in the path and query, e.g. http://10.0.0.5:8025/quota?u={user}.",
          type: "string",
          pattern:
            "^([Hh][Tt][Tt][Pp][Ss]?|[^\\s:/?#]*\\{(user|domain|address|key)\\}[^\\s:/?#]*)://[^\\s/?#]+",
          patternErrorMessage:
            "An http:// or https:// URL with a host, e.g. http://10.0.0.5:8025/quota?u={user}.",
        },
      },
    },
    messages: {
      "#/definitions/httpSource/properties/url": (what) =>
        `${what} must be an http:// or https:// URL like http://10.0.0.5:8025/quota?u={user}`,
    },
  },
  build(raw, base, ctx) {
    const url = String(raw.url);
    const located = ctx.placeholders(["url"], "'url'");
    // With a placeholder in the authority the URL may not parse; the placeholder is the error.
    if (!checkUrlParts(ctx, located)) return { ...base, type: "http", url };
    try {
      new URL(url.replace(/\{[^{}]*\}/g, "x"));
    } catch {
      ctx.error(["url"], `'url' of source '${ctx.name}' is not a valid URL`);
    }
    return { ...base, type: "http", url };
  },
  // Loaded with the first source of this type: a configuration without one never loads undici.
  create: async (config, ctx) => (await import("../http.js")).createHttpSource(config, ctx),
};
