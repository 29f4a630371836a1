/**
 * `filterctl replay`: journalled transactions run again through candidate rules by the same
 * transaction engine as serve and dry-run, the lookups answered from the journal (a lookup it
 * lacks, or every one with --live, asked of the live sources), and the transactions whose outcome
 * changed grouped by change.
 *
 * An outcome is what each event decided (continue, or the action, its codes and its rule), so a
 * change names the event: `continue → reject 550 5.7.1 by rule strict (at mail)`. The replay walks
 * the events as the MTA would: a refusal or an accept before RCPT ends the transaction, a refused
 * recipient is not given the message, the message is only replayed when the journal has it (the
 * transaction reached end of message). What the original transaction never reached (recipients
 * after a refusal at MAIL, the message after every recipient was refused) cannot be replayed.
 */
import { STAGES, type Stage } from "../../common/stages.js";
import {
  type DnsblAnswer,
  LookupError,
  type Lookups,
  type MaybePromise,
  type QuotaStatus,
  type StateLookups,
} from "../../runtime/lookups.js";
import type { Ruleset } from "../../runtime/ruleset.js";
import { StateError } from "../../runtime/state.js";
import { headerLineBytes } from "../../runtime/transaction.js";
import { acceptsRecipientOnly, refuses, type StageRun, TransactionEngine } from "../transaction-engine.js";
import {
  JOURNAL_VERSION,
  type JournalDecision,
  type JournalLookup,
  type JournalRecord,
  journalDecision,
} from "./record.js";

/** A journal line that is not a record: reported, skipped. */
export interface SkippedLine {
  file: string;
  line: number;
  message: string;
}

export interface JournalLine {
  file: string;
  line: number;
  record: JournalRecord;
}

/** Why `value` is not a journal record, or undefined when it is one. */
function notARecord(value: unknown): string | undefined {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return "not a JSON object";
  const r = value as Partial<JournalRecord>;
  if (r.v !== JOURNAL_VERSION)
    return `not a version ${JOURNAL_VERSION} journal record ('v' is ${JSON.stringify(r.v)})`;
  if (typeof r.client?.ip !== "string") return "'client.ip' is missing";
  if (!Array.isArray(r.rcpts) || !Array.isArray(r.lookups) || !Array.isArray(r.stages))
    return "'rcpts', 'lookups' and 'stages' must be lists";
  return undefined;
}

/** One line of a journal file: its record, a skipped line, or undefined when it is blank. */
export function parseJournalLine(
  file: string,
  line: number,
  raw: string,
): JournalLine | SkippedLine | undefined {
  if (raw.trim() === "") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (error) {
    return { file, line, message: `not JSON: ${(error as Error).message}` };
  }
  const why = notARecord(value);
  return why === undefined ? { file, line, record: value as JournalRecord } : { file, line, message: why };
}

/** The records of one journal file's text; malformed lines are listed, not fatal. */
export function parseJournal(file: string, text: string): { lines: JournalLine[]; skipped: SkippedLine[] } {
  const lines: JournalLine[] = [];
  const skipped: SkippedLine[] = [];
  text.split("\n").forEach((raw, index) => {
    const parsed = parseJournalLine(file, index + 1, raw);
    if (parsed === undefined) return;
    if ("record" in parsed) lines.push(parsed);
    else skipped.push(parsed);
  });
  return { lines, skipped };
}

function lookupKey(
  kind: string,
  source: string | undefined,
  table: string | undefined,
  key: string,
  extra = "",
): string {
  return `${kind}\0${source ?? ""}\0${table ?? ""}\0${key}\0${extra}`;
}

/**
 * Lookups answered from one record's journalled answers (a failure answered as the failure it
 * was); what the record lacks is asked of `live`, or fails when there is none.
 */
export class JournalLookups implements Lookups {
  private readonly answers = new Map<string, JournalLookup>();
  /** How many lookups the journal could not answer. */
  missed = 0;

  constructor(
    record: JournalRecord,
    private readonly live: Lookups | undefined,
  ) {
    for (const l of record.lookups) {
      const extra = l.kind === "rate" ? String(l.window_ms ?? "") : "";
      const key = lookupKey(l.kind, l.source, l.table, l.key, extra);
      if (!this.answers.has(key)) this.answers.set(key, l);
    }
  }

  private answer<T>(
    kind: JournalLookup["kind"],
    source: string | undefined,
    table: string | undefined,
    key: string,
    extra = "",
  ) {
    const found = this.answers.get(lookupKey(kind, source, table, key, extra));
    if (found?.error !== undefined) {
      if (kind === "rate" || kind === "greylist") throw new StateError(found.error);
      throw new LookupError(source ?? "", found.error);
    }
    return found === undefined ? undefined : { value: found.answer as T };
  }

  private liveOr<T>(ask: (live: Lookups) => MaybePromise<T>, source: string): MaybePromise<T> {
    this.missed++;
    if (this.live === undefined)
      throw new LookupError(source, "not in the journal, and no live source to ask");
    return ask(this.live);
  }

  has(source: string, table: string | undefined, key: string): MaybePromise<boolean> {
    const found = this.answer<boolean>("has", source, table, key);
    if (found !== undefined) return found.value === true;
    // A value looked up (TABLE[X]) says whether the key is there too.
    const got = this.answer<string | null>("get", source, table, key);
    if (got !== undefined) return got.value !== null;
    return this.liveOr((live) => live.has(source, table, key), source);
  }

  get(source: string, table: string | undefined, key: string): MaybePromise<string | undefined> {
    const found = this.answer<string | null>("get", source, table, key);
    if (found !== undefined) return found.value ?? undefined;
    return this.liveOr((live) => live.get(source, table, key), source);
  }

  quota(source: string, address: string): MaybePromise<QuotaStatus | undefined> {
    const found = this.answer<QuotaStatus | null>("quota", source, undefined, address);
    if (found !== undefined) return found.value ?? undefined;
    return this.liveOr((live) => live.quota(source, address), source);
  }

  dnsbl(source: string, key: string): MaybePromise<DnsblAnswer> {
    const found = this.answer<DnsblAnswer>("dnsbl", source, undefined, key);
    if (found !== undefined) return found.value;
    return this.liveOr((live) => live.dnsbl(source, key), source);
  }

  zoneOf(source: string): string {
    return this.live?.zoneOf(source) ?? source;
  }

  get state(): StateLookups {
    return {
      rate: (key, windowMs) => {
        const found = this.answer<number>("rate", undefined, undefined, key, String(windowMs));
        if (found !== undefined) return found.value;
        return this.liveState((state) => state.rate(key, windowMs));
      },
      greylist: (key) => {
        const found = this.answer<boolean>("greylist", undefined, undefined, key);
        if (found !== undefined) return found.value;
        return this.liveState((state) => state.greylist(key));
      },
    };
  }

  private liveState<T>(ask: (state: StateLookups) => MaybePromise<T>): MaybePromise<T> {
    this.missed++;
    const state = this.live?.state;
    if (state === undefined) throw new StateError("not in the journal, and no live state to ask");
    return ask(state);
  }
}

/** What each event decided, by event (`mail`, `rcpt bob@example.org`, `header 3`); continue is absent. */
export type Outcomes = Map<string, JournalDecision & { stage: Stage }>;

function eventKey(stage: Stage, rcpt?: string, n?: number): string {
  if (stage === "rcpt") return `rcpt ${rcpt ?? ""}`;
  if (stage === "header") return `header ${n ?? 0}`;
  return stage;
}

/** The outcomes the journal recorded. */
export function recordedOutcomes(record: JournalRecord): Outcomes {
  const outcomes: Outcomes = new Map();
  for (const s of record.stages) {
    if (s.decision !== undefined)
      outcomes.set(eventKey(s.stage, s.rcpt, s.n), { ...s.decision, stage: s.stage });
  }
  return outcomes;
}

/** Whether the MTA goes on after what `run` decided (a refused recipient does not end the transaction). */
function goesOn(run: StageRun): boolean {
  const decision = run.outcome.decision;
  if (decision === undefined || run.stage === "rcpt") return true;
  if (refuses(decision) || decision.action === "discard") return false;
  return decision.action !== "accept" || acceptsRecipientOnly(run.stage, decision);
}

/** Runs one journalled transaction through `ruleset`; answers what each event decided. */
export async function replayRecord(
  ruleset: Ruleset,
  lookups: Lookups,
  record: JournalRecord,
): Promise<Outcomes> {
  const engine = new TransactionEngine({ ruleset, lookups });
  const outcomes: Outcomes = new Map();
  let headerEvents = 0;
  const note = async (pending: MaybePromise<StageRun>): Promise<boolean> => {
    const run = await pending;
    const decision = run.outcome.decision;
    const n = run.stage === "header" ? headerEvents++ : undefined;
    if (decision !== undefined)
      outcomes.set(eventKey(run.stage, engine.transaction.rcpt, n), {
        ...journalDecision(decision),
        stage: run.stage,
      });
    return goesOn(run);
  };
  const macros = record.macros ?? {};
  if (!(await note(engine.connect({ ...record.client }, (name) => macros[name])))) return outcomes;
  if (record.helo !== undefined && !(await note(engine.helo(record.helo)))) return outcomes;
  if (record.from === undefined) return outcomes;
  const mail = { sender: record.from, authUser: record.auth ?? "", esmtpArgs: [] as string[] };
  if (record.size_declared !== undefined) mail.esmtpArgs.push(`SIZE=${record.size_declared}`);
  if (!(await note(engine.mail(mail)))) return outcomes;
  for (const rcpt of record.rcpts) await note(engine.rcpt(rcpt));
  if (record.end !== "eom" || engine.transaction.rcpts.length === 0) return outcomes;
  if (!(await note(engine.data()))) return outcomes;
  let headerBytes = 0;
  for (const [name, value] of record.headers ?? []) {
    headerBytes += headerLineBytes(name, value);
    if (!(await note(engine.header(name, value)))) return outcomes;
  }
  if (!(await note(engine.eoh()))) return outcomes;
  // The body as long as makes the message the size it had (headers no rule read are not journalled).
  const body = Math.max((record.size ?? 0) - headerBytes - 2, 0);
  if (!(await note(engine.body(body)))) return outcomes;
  await note(engine.eom());
  return outcomes;
}

/** "continue", or "reject 550 5.7.1 by rule strict". */
export function outcomeLabel(decision: JournalDecision | undefined): string {
  if (decision === undefined) return "continue";
  const codes = (decision.reply ?? "")
    .split(" ")
    .slice(0, 2)
    .filter((word) => /^\d/.test(word));
  const by = decision.rule === "" ? " (event deadline)" : ` by rule ${decision.rule}`;
  return [decision.action, ...codes].join(" ") + by;
}

/**
 * How the outcome changed, at the first stage (in SMTP order) where it did: later events follow
 * from that one (a transaction now refused at MAIL no longer reaches its recipients), so they are
 * not listed. `continue → reject 550 5.7.1 by rule strict (at mail)`; several recipients that
 * changed at rcpt give one entry per distinct change.
 */
export function changesBetween(before: Outcomes, after: Outcomes): string[] {
  const differing: { stage: Stage; change: string }[] = [];
  for (const key of new Set([...before.keys(), ...after.keys()])) {
    const was = outcomeLabel(before.get(key));
    const now = outcomeLabel(after.get(key));
    const stage = before.get(key)?.stage ?? after.get(key)?.stage;
    if (was !== now && stage !== undefined)
      differing.push({ stage, change: `${was} → ${now} (at ${stage})` });
  }
  if (differing.length === 0) return [];
  const first = Math.min(...differing.map((d) => STAGES.indexOf(d.stage)));
  return [...new Set(differing.filter((d) => STAGES.indexOf(d.stage) === first).map((d) => d.change))].sort();
}

export interface ReplayExample {
  time: string;
  client: string;
  from: string | null;
  rcpts: string[];
  queue_id?: string;
  /** Where it is in the journal. */
  at: string;
}

export interface ReplayGroup {
  change: string;
  count: number;
  examples: ReplayExample[];
}

export interface ReplayReport {
  groups: ReplayGroup[];
  totals: { replayed: number; changed: number; unchanged: number; skipped: number };
  skipped: SkippedLine[];
  /** Lookups the journal did not have, asked live. */
  askedLive: number;
}

/** Examples shown per change. */
export const EXAMPLES_PER_GROUP = 3;

function exampleOf(line: JournalLine): ReplayExample {
  const r = line.record;
  const example: ReplayExample = {
    time: r.time,
    client:
      r.client.name && r.client.name !== `[${r.client.ip}]`
        ? `${r.client.ip} (${r.client.name})`
        : r.client.ip,
    from: r.from ?? null,
    rcpts: r.rcpts,
    at: `${line.file}:${line.line}`,
  };
  if (r.queue_id !== undefined) example.queue_id = r.queue_id;
  return example;
}

/**
 * Replays every line; `live` answers what the journal lacks (and everything, when `allLive`).
 * Groups come most frequent first.
 */
/**
 * `lines` may be read as the replay goes (a journal of several hundred MB is not held whole);
 * `options.skipped` is read once they are all read, so a reader may add to it meanwhile.
 */
export async function replayJournal(
  ruleset: Ruleset,
  lines: Iterable<JournalLine> | AsyncIterable<JournalLine>,
  options: { live?: Lookups; allLive?: boolean; skipped?: SkippedLine[] } = {},
): Promise<ReplayReport> {
  const groups = new Map<string, ReplayGroup>();
  let replayed = 0;
  let changed = 0;
  let askedLive = 0;
  for await (const line of lines) {
    replayed++;
    const journal = new JournalLookups(line.record, options.live);
    const lookups = options.allLive === true && options.live !== undefined ? options.live : journal;
    const after = await replayRecord(ruleset, lookups, line.record);
    askedLive += journal.missed;
    const changes = changesBetween(recordedOutcomes(line.record), after);
    if (changes.length === 0) continue;
    changed++;
    const change = changes.join("; ");
    const group = groups.get(change) ?? { change, count: 0, examples: [] };
    groups.set(change, group);
    group.count++;
    if (group.examples.length < EXAMPLES_PER_GROUP) group.examples.push(exampleOf(line));
  }
  const skipped = options.skipped ?? [];
  return {
    groups: [...groups.values()].sort((a, b) => b.count - a.count || a.change.localeCompare(b.change)),
    totals: { replayed, changed, unchanged: replayed - changed, skipped: skipped.length },
    skipped,
    askedLive,
  };
}
