/**
 * One line of the journal (`serve --journal`): a finished transaction as `filterctl replay` needs
 * it to run the transaction again through other rules. The envelope, the headers and macros the
 * rules read, every lookup with its answer, and what each event decided. Field names are
 * snake_case: the file is read by people and tools as much as by replay.
 */
import type { Stage } from "../../common/stages.js";
import type { Decision, DecisionAction } from "../../runtime/model.js";

export const JOURNAL_VERSION = 1;

/** How the transaction ended: end of message, abandoned (RSET, new MAIL, connection lost), or a connection without MAIL. */
export type JournalEnd = "eom" | "abort" | "connection";

/** A lookup a rule made, and what it answered. */
export interface JournalLookup {
  kind: "has" | "get" | "quota" | "dnsbl" | "rate" | "greylist";
  /** The source (absent for rate and greylist: the state). */
  source?: string;
  /** An LDAP source's table. */
  table?: string;
  key: string;
  /** rate(): the window, in ms. */
  window_ms?: number;
  /**
   * has: found (boolean); get: the value (string, null when absent); quota: the status
   * ({usage, limit, count, countLimit}, null for no such mailbox); dnsbl: {listed, codes?,
   * reason?, off?}; rate: the count; greylist: whether to defer. Absent when `error` is set.
   */
  answer?: unknown;
  /** Why the lookup failed. */
  error?: string;
}

/** A decision as the journal keeps it. */
export interface JournalDecision {
  action: DecisionAction;
  /** "550 5.7.1 text" for reject and tempfail. */
  reply?: string;
  /** The deciding rule; "" for the event deadline's decision. */
  rule: string;
}

/** What one event decided; events that decided nothing and had no shadow decision are left out. */
export interface JournalStage {
  stage: Stage;
  /** rcpt: the recipient. */
  rcpt?: string;
  /** header: which header event of the message (0-based). */
  n?: number;
  decision?: JournalDecision;
  /** What shadow rules would have decided. */
  shadow?: JournalDecision[];
  /** The rules missed the event deadline (ms): `decision` is the deadline's. */
  late_ms?: number;
}

export interface JournalRecord {
  v: typeof JOURNAL_VERSION;
  /** When the transaction started (MAIL FROM; the connection for one without MAIL), ISO 8601. */
  time: string;
  end: JournalEnd;
  queue_id?: string;
  client: { ip: string; name: string; port: number };
  /** Absent when the client sent no HELO/EHLO before the transaction ended. */
  helo?: string;
  /** The SASL login, when there was one. */
  auth?: string;
  /** The envelope sender ("" for <>); absent when there was no MAIL FROM. */
  from?: string;
  /** SIZE= of MAIL FROM, when given. */
  size_declared?: number;
  /** Every recipient the client gave, in order, refused ones included. */
  rcpts: string[];
  /** The message's size at end of message (header lines, blank line, body). */
  size?: number;
  /** Headers a rule read (`header("Name")`, or every header when rules run at the header stage). */
  headers?: [string, string][];
  /** Macros a rule read. */
  macros?: Record<string, string>;
  lookups: JournalLookup[];
  stages: JournalStage[];
}

/** Where finished transactions go: the writer (writer.ts), or a test's list. */
export interface JournalSink {
  write(record: JournalRecord): void;
}

export function journalDecision(decision: Decision): JournalDecision {
  const entry: JournalDecision = { action: decision.action, rule: decision.rule };
  const reply = journalReply(decision);
  if (reply !== undefined) entry.reply = reply;
  return entry;
}

/** "550 5.7.1 text" for a reject or tempfail; undefined for other decisions. */
export function journalReply(decision: Decision): string | undefined {
  if (decision.action !== "reject" && decision.action !== "tempfail") return undefined;
  return [decision.code, decision.enhancedCode, decision.text]
    .filter((p) => p !== undefined && p !== "")
    .join(" ");
}
