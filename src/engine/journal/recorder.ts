/**
 * What the transaction engine keeps of one connection's transactions for the journal, when
 * `serve --journal` is on (without it the engine has no recorder and its lookups are not
 * wrapped). Lookups are seen through RecordingLookups, headers through a Map that notes the names
 * read, macros through a function that notes them; the engine tells the recorder each event and
 * when a transaction ends.
 */
import type { Stage } from "../../common/stages.js";
import type { Lookups, MaybePromise, StateLookups } from "../../runtime/lookups.js";
import type { StageOutcome } from "../../runtime/ruleset.js";
import type { Transaction } from "../../runtime/transaction.js";
import {
  JOURNAL_VERSION,
  type JournalEnd,
  type JournalLookup,
  type JournalRecord,
  type JournalSink,
  type JournalStage,
  journalDecision,
} from "./record.js";

/** Bounds of one record: a message with thousands of headers must not make a huge line. */
const MAX_HEADERS = 100;
const MAX_HEADER_VALUE = 2000;
const MAX_LOOKUPS = 500;

/** tx.headers that notes which names the rules read (header("Name")). */
export class ReadingHeaders extends Map<string, string> {
  readonly read = new Set<string>();

  override get(key: string): string | undefined {
    this.read.add(key);
    return super.get(key);
  }
}

/** The answer as plain data: a DnsblAnswer or QuotaStatus copied, undefined as null. */
function plain(answer: unknown): unknown {
  if (answer === undefined) return null;
  return typeof answer === "object" && answer !== null ? { ...answer } : answer;
}

/** Lookups that note every answer (and failure) in `into`, then hand it on unchanged. */
export class RecordingLookups implements Lookups {
  private stateFor: StateLookups | undefined;
  private stateWrapped: StateLookups | undefined;

  constructor(
    readonly inner: Lookups,
    private readonly into: (lookup: JournalLookup) => void,
  ) {}

  private noted<T>(lookup: JournalLookup, ask: () => MaybePromise<T>): MaybePromise<T> {
    const fail = (error: unknown): never => {
      lookup.error = error instanceof Error ? error.message : String(error);
      this.into(lookup);
      throw error;
    };
    let answer: MaybePromise<T>;
    try {
      answer = ask();
    } catch (error) {
      return fail(error);
    }
    const note = (value: T): T => {
      lookup.answer = plain(value);
      this.into(lookup);
      return value;
    };
    return answer instanceof Promise ? answer.then(note, fail) : note(answer);
  }

  has(source: string, table: string | undefined, key: string): MaybePromise<boolean> {
    return this.noted(entry("has", source, table, key), () => this.inner.has(source, table, key));
  }

  get(source: string, table: string | undefined, key: string): MaybePromise<string | undefined> {
    return this.noted(entry("get", source, table, key), () => this.inner.get(source, table, key));
  }

  quota(source: string, address: string) {
    return this.noted(entry("quota", source, undefined, address), () => this.inner.quota(source, address));
  }

  dnsbl(source: string, key: string) {
    return this.noted(entry("dnsbl", source, undefined, key), () => this.inner.dnsbl(source, key));
  }

  zoneOf(source: string): string {
    return this.inner.zoneOf(source);
  }

  get state(): StateLookups | undefined {
    const inner = this.inner.state;
    if (inner === undefined) return undefined;
    if (inner !== this.stateFor) {
      this.stateFor = inner;
      this.stateWrapped = {
        rate: (key, windowMs) =>
          this.noted({ kind: "rate", key, window_ms: windowMs }, () => inner.rate(key, windowMs)),
        greylist: (key) => this.noted({ kind: "greylist", key }, () => inner.greylist(key)),
      };
    }
    return this.stateWrapped;
  }
}

function entry(
  kind: JournalLookup["kind"],
  source: string,
  table: string | undefined,
  key: string,
): JournalLookup {
  const lookup: JournalLookup = { kind, source, key };
  if (table !== undefined) lookup.table = table;
  return lookup;
}

/** One connection's journal: the connection's part (client, HELO) and the current message's. */
export class TransactionRecorder {
  private client = { ip: "", name: "", port: 0 };
  private helo: string | undefined;
  private connectedAt = new Date();
  /** Lookups and events of connect and HELO: every message of the connection carries them. */
  private connectLookups: JournalLookup[] = [];
  /** The last HELO's (a new HELO replaces them). */
  private heloLookups: JournalLookup[] | undefined;
  private connectionStages: JournalStage[] = [];
  private message: JournalRecord | undefined;
  private headerEvents = 0;
  private allHeaders: [string, string][] = [];
  private readHeaders: ReadingHeaders | undefined;
  private macros: Record<string, string> = {};
  private rawMacro: (name: string) => string | undefined = () => undefined;
  /** Whether the connection has something not yet written (it started, or a message did). */
  private pending = false;
  private wrapped: RecordingLookups | undefined;

  constructor(private readonly sink: JournalSink) {}

  /** The rules' lookups, seen through the recorder. */
  lookups(inner: Lookups): Lookups {
    if (this.wrapped?.inner !== inner) this.wrapped = new RecordingLookups(inner, (l) => this.lookup(l));
    return this.wrapped;
  }

  private lookup(lookup: JournalLookup): void {
    const list = this.message?.lookups ?? this.heloLookups ?? this.connectLookups;
    if (list.length < MAX_LOOKUPS) list.push(lookup);
  }

  /** The macro function the transaction gets: it notes the macros rules read. */
  connect(client: Transaction["client"], macro: (name: string) => string | undefined) {
    this.close();
    this.client = { ...client };
    this.helo = undefined;
    this.connectedAt = new Date();
    this.connectLookups = [];
    this.heloLookups = undefined;
    this.connectionStages = [];
    this.macros = {};
    this.rawMacro = macro;
    this.pending = true;
    return (name: string): string | undefined => {
      const value = macro(name);
      if (value !== undefined) this.macros[name] = value;
      return value;
    };
  }

  heloSeen(name: string): void {
    this.helo = name;
    this.heloLookups = [];
    this.connectionStages = this.connectionStages.filter((s) => s.stage === "connect");
  }

  /** MAIL FROM: a message starts. Answers the header map the transaction gets. */
  mail(tx: Transaction): ReadingHeaders {
    this.message = {
      v: JOURNAL_VERSION,
      time: new Date().toISOString(),
      end: "abort",
      client: this.client,
      from: tx.from,
      rcpts: [],
      lookups: [],
      stages: [],
    };
    if (tx.declaredSize > 0) this.message.size_declared = tx.declaredSize;
    this.headerEvents = 0;
    this.allHeaders = [];
    this.readHeaders = new ReadingHeaders();
    return this.readHeaders;
  }

  rcpt(recipient: string): void {
    this.message?.rcpts.push(recipient);
  }

  header(name: string, value: string): void {
    if (this.allHeaders.length < MAX_HEADERS) this.allHeaders.push([name, value.slice(0, MAX_HEADER_VALUE)]);
  }

  /** What an event decided (nothing is kept of an event that decided nothing). */
  stage(stage: Stage, tx: Transaction, outcome: StageOutcome, lateMs?: number): void {
    const n = stage === "header" ? this.headerEvents++ : undefined;
    if (outcome.decision === undefined && outcome.shadowDecisions.length === 0) return;
    const event: JournalStage = { stage };
    if (stage === "rcpt") event.rcpt = tx.rcpt;
    if (n !== undefined) event.n = n;
    if (outcome.decision !== undefined) event.decision = journalDecision(outcome.decision);
    if (outcome.shadowDecisions.length > 0) event.shadow = outcome.shadowDecisions.map(journalDecision);
    if (lateMs !== undefined) event.late_ms = lateMs;
    (this.message?.stages ?? this.connectionStages).push(event);
  }

  /**
   * The transaction ended: written, with `headerStageRules` saying whether every header was read
   * (rules at the header stage see them all).
   */
  end(end: JournalEnd, tx: Transaction, headerStageRules: boolean): void {
    const message = this.message;
    if (message === undefined) return;
    this.message = undefined;
    this.pending = false;
    message.end = end;
    if (end === "eom") message.size = tx.messageBytes;
    if (tx.authUser !== "") message.auth = tx.authUser;
    const read = this.readHeaders?.read ?? new Set<string>();
    const headers = headerStageRules
      ? this.allHeaders
      : this.allHeaders.filter(([name]) => read.has(name.toLowerCase()));
    if (headers.length > 0) message.headers = headers;
    this.write(message);
  }

  /** The connection ends: a message in progress was abandoned; a connection without one is written alone. */
  close(tx?: Transaction, headerStageRules = false): void {
    if (this.message !== undefined && tx !== undefined) this.end("abort", tx, headerStageRules);
    if (!this.pending) return;
    this.pending = false;
    this.write({
      v: JOURNAL_VERSION,
      time: this.connectedAt.toISOString(),
      end: "connection",
      client: this.client,
      rcpts: [],
      lookups: [],
      stages: [],
    });
  }

  private write(record: JournalRecord): void {
    if (this.helo !== undefined) record.helo = this.helo;
    record.lookups = [...this.connectLookups, ...(this.heloLookups ?? []), ...record.lookups];
    record.stages = [...this.connectionStages, ...record.stages];
    if (Object.keys(this.macros).length > 0) record.macros = { ...this.macros };
    const queueId = this.rawMacro("i");
    if (queueId) record.queue_id = queueId;
    this.sink.write(record);
  }
}
