import { SourceFile } from "../../src/common/diagnostics.js";
import { GREYLIST_DEFAULTS } from "../../src/config/build.js";
import type { Config, LocatedText, RuleSource, SourceConfig } from "../../src/config/types.js";
import { SOURCE_CATALOG } from "../../src/sources/catalog.js";

/** A LocatedText for text that starts at `start` in a file where it appears verbatim. */
export function located(text: string, start = 0): LocatedText {
  return { text, offsetAt: (i: number) => start + i };
}

const base = { timeoutMs: 2000, onError: "tempfail" as const, offset: 0 };

export const SAMPLE_SOURCES: SourceConfig[] = [
  { ...base, name: "mailboxes", type: "maildir", kind: "quota", path: "/var/mail/{user}/Maildir" },
  {
    ...base,
    name: "directory",
    type: "ldap",
    kind: "table",
    url: "ldap://127.0.0.1",
    base: "dc=mail",
    startTls: false,
    tables: new Map([
      ["local_domains", located("(sendmailMTAClassValue={key})")],
      ["addresses", located("(mailLocalAddress={key})")],
    ]),
  },
  {
    ...base,
    onError: "continue",
    name: "spamhaus",
    type: "dnsbl",
    kind: "dnsbl",
    zone: "zen.spamhaus.org",
    health: { intervalMs: 300_000, window: 50, maxListedRatio: 0.9, requirePositiveProbe: true },
  },
  {
    ...base,
    name: "trusted",
    type: "list",
    kind: "table",
    items: ["192.0.2.0/24", "postmaster@example.org"],
  },
];

/**
 * A Config whose rules are written one per line in a synthetic file, so diagnostics carry
 * real line:column positions (line = rule index + 1).
 */
export function configOf(rules: string[], sources: SourceConfig[] = SAMPLE_SOURCES): Config {
  const text = rules.join("\n");
  const file = new SourceFile("rules.yaml", text);
  let offset = 0;
  const ruleSources: RuleSource[] = rules.map((body, index) => {
    const source: RuleSource = { form: "text", index, offset, body: located(body, offset) };
    offset += body.length + 1;
    return source;
  });
  return {
    file,
    listenMode: 0o660,
    maxConnections: 4096,
    workers: 1,
    maxBufferedInput: 64 * 1024 * 1024,
    shutdownTimeoutMs: 30_000,
    eventTimeoutMs: 10_000,
    defaults: {
      onError: "tempfail",
      errorReply: "451 4.3.0 Temporary lookup failure, try again later",
      timeoutMs: 2000,
      localPart: "insensitive",
    },
    dns: {},
    sourceTypes: new Map(SOURCE_CATALOG.map((t) => [t.type, t])),
    sources: new Map(sources.map((s) => [s.name, s])),
    rules: ruleSources,
    state: { type: "memory", onError: "continue", timeoutMs: 200 },
    greylist: { ...GREYLIST_DEFAULTS },
    offsetOf: () => 0,
  };
}
