/**
 * Runtime test support: a ruleset compiled from rules.yaml text by the real loader and compiler,
 * and an in-memory Lookups that records every call, answers synchronously or with promises, and
 * fails on demand.
 */

import { formatDiagnostic, SourceFile } from "../../src/common/diagnostics.js";
import type { Stage } from "../../src/common/stages.js";
import { parseConfig } from "../../src/config/load.js";
import { compileConfig } from "../../src/dsl/compile.js";
import {
  type DnsblAnswer,
  LookupError,
  type Lookups,
  type MaybePromise,
  type QuotaStatus,
  type StateLookups,
} from "../../src/runtime/lookups.js";
import type { Tracer } from "../../src/runtime/model.js";
import type { Ruleset, StageOutcome } from "../../src/runtime/ruleset.js";
import { newTransaction, type Transaction } from "../../src/runtime/transaction.js";
import { SOURCE_CATALOG } from "../../src/sources/catalog.js";
import { ListTable } from "../../src/sources/list.js";

/** Compiles rules.yaml text; throws with the diagnostics when it is not valid. */
export function rulesetOf(yaml: string): Ruleset {
  const parsed = parseConfig(new SourceFile("rules.yaml", yaml), { sourceTypes: SOURCE_CATALOG });
  if (parsed.config === undefined) throw new Error(parsed.diagnostics.map(formatDiagnostic).join("\n"));
  const compiled = compileConfig(parsed.config);
  if (compiled.ruleset === undefined) throw new Error(compiled.diagnostics.map(formatDiagnostic).join("\n"));
  return compiled.ruleset;
}

/** The sources most tests use; each test adds only its rules. */
export const SOURCES = `
sources:
  mailboxes:
    type: maildir
    path: "/var/mail/{user}/Maildir"
  directory:
    type: ldap
    url: "ldap://127.0.0.1:389"
    base: "dc=mail"
    tables:
      local_domains: "(sendmailMTAClassValue={key})"
      addresses: "(mailLocalAddress={key})"
  spamhaus:
    type: dnsbl
    zone: zen.spamhaus.org
  trusted:
    type: list
    items: ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7", "Example.ORG", "Postmaster@Example.ORG"]
`;

/** `rules:` with one entry per argument, each a text-form rule written as a quoted YAML scalar. */
export function rules(...texts: string[]): string {
  return `rules:\n${texts.map((t) => `  - ${JSON.stringify(t)}`).join("\n")}\n`;
}

export interface Call {
  method: "has" | "get" | "quota" | "dnsbl";
  source: string;
  table?: string;
  key: string;
}

/**
 * In-memory Lookups. Tables are keyed "source" or "source.table" and compare keys exactly (real
 * sources normalise case themselves), except list sources given as items, which use the real
 * ListTable.
 */
export class FakeLookups implements Lookups {
  readonly calls: Call[] = [];
  readonly tables = new Map<string, Map<string, string>>();
  readonly lists = new Map<string, ListTable>();
  readonly quotas = new Map<string, QuotaStatus>();
  readonly listings = new Map<string, DnsblAnswer>();
  /** Sources whose every lookup fails. */
  readonly failing = new Set<string>();
  /** Answer with promises (as network sources do) instead of plain values. */
  async = false;
  /** rate() and greylist(), when a test binds a state. */
  state?: StateLookups;

  table(name: string, entries: Record<string, string> | string[]): this {
    const map = new Map(Array.isArray(entries) ? entries.map((k) => [k, "yes"]) : Object.entries(entries));
    this.tables.set(name, map);
    return this;
  }

  list(name: string, items: string[]): this {
    this.lists.set(name, new ListTable(items));
    return this;
  }

  mailbox(source: string, address: string, status: QuotaStatus): this {
    this.quotas.set(`${source} ${address}`, status);
    return this;
  }

  quota(source: string, address: string): MaybePromise<QuotaStatus | undefined> {
    return this.answer({ method: "quota", source, key: address }, () =>
      this.quotas.get(`${source} ${address}`),
    );
  }

  listed(source: string, key: string, answer: DnsblAnswer = { listed: true, code: "127.0.0.2" }): this {
    this.listings.set(`${source} ${key}`, answer);
    return this;
  }

  private answer<T>(call: Call, value: () => T): MaybePromise<T> {
    this.calls.push(call);
    const fail = this.failing.has(call.source);
    if (this.async) {
      return new Promise<T>((resolve, reject) =>
        setImmediate(() =>
          fail ? reject(new LookupError(call.source, "connection refused")) : resolve(value()),
        ),
      );
    }
    if (fail) throw new LookupError(call.source, "connection refused");
    return value();
  }

  private lookup(source: string, table: string | undefined, key: string): string | undefined {
    const list = this.lists.get(source);
    if (list !== undefined) return list.find(key);
    return this.tables.get(table === undefined ? source : `${source}.${table}`)?.get(key);
  }

  has(source: string, table: string | undefined, key: string): MaybePromise<boolean> {
    const call: Call =
      table === undefined ? { method: "has", source, key } : { method: "has", source, table, key };
    return this.answer(call, () => this.lookup(source, table, key) !== undefined);
  }

  get(source: string, table: string | undefined, key: string): MaybePromise<string | undefined> {
    const call: Call =
      table === undefined ? { method: "get", source, key } : { method: "get", source, table, key };
    return this.answer(call, () => this.lookup(source, table, key));
  }

  dnsbl(source: string, key: string): MaybePromise<DnsblAnswer> {
    return this.answer(
      { method: "dnsbl", source, key },
      () => this.listings.get(`${source} ${key}`) ?? { listed: false },
    );
  }

  zoneOf(source: string): string {
    return source === "spamhaus" ? "zen.spamhaus.org" : "";
  }
}

/** A transaction filled as the milter would have it at `stage`. */
export function transaction(fill: Partial<Omit<Transaction, "macro">> = {}): Transaction {
  const tx = newTransaction();
  Object.assign(
    tx,
    { client: { ip: "192.0.2.10", name: "mx.example.net", port: 25000 }, helo: "mx.example.net" },
    fill,
  );
  return tx;
}

/** Evaluates a stage and awaits it whether or not it was synchronous. */
/** Evaluates a stage with a tracer, so `outcome.rules` lists every rule evaluated (as dry-run sees it). */
export async function evaluate(
  ruleset: Ruleset,
  stage: Stage,
  tx: Transaction,
  lookups: Lookups,
  trace: Tracer = { lookup() {}, everyRule: true },
): Promise<StageOutcome> {
  return await ruleset.evaluate(stage, tx, lookups, trace);
}

/** "550 5.7.1 text" for a decision, as the MTA would send it. */
export function reply(outcome: StageOutcome): string | undefined {
  const d = outcome.decision;
  if (d === undefined) return undefined;
  if (d.action !== "reject" && d.action !== "tempfail") return d.action;
  return [d.code, d.enhancedCode, d.text].filter((p) => p !== undefined).join(" ");
}
