/**
 * Sources answered from a test file's data (`filterctl test`): the runtime's Lookups, so the
 * compiled rules ask them exactly as they ask the live registry. Keys are read the way the live
 * sources read them: table entries match through the list matcher (CIDRs, addresses folded as
 * `local_part` says, domains folded), quota addresses are normalised (and lose a `+detail` when
 * the source sets `recipient_delimiter`), DNSBL keys are IPs in one spelling or folded domains.
 * A source not stubbed goes to `live` (the registry), or fails when there is none (`--offline`).
 */
import { type LocalPartMode, normalizeAddress, splitAddress, withoutDetail } from "../common/address.js";
import { canonicalIp } from "../common/ip.js";
import { ListMatcher } from "../common/list-matcher.js";
import {
  type DnsblAnswer,
  LookupError,
  type Lookups,
  type MaybePromise,
  type QuotaStatus,
  type StateLookups,
} from "../runtime/lookups.js";

/** One stubbed table: its entries, and the value `TABLE[X]` answers for each (the entry itself when none). */
export interface TableStub {
  kind: "table";
  entries: readonly string[];
  values?: ReadonlyMap<string, string>;
}

export interface QuotaStub {
  kind: "quota";
  /** By address as written in the test file. */
  mailboxes: ReadonlyMap<string, QuotaStatus>;
  recipientDelimiter?: string;
}

export interface DnsblStub {
  kind: "dnsbl";
  zone: string;
  /** Listed key → its answers (A records). */
  listed: ReadonlyMap<string, readonly string[]>;
}

export type SourceStub = TableStub | QuotaStub | DnsblStub;

/** Stubs by source name; a table of an LDAP source is `SOURCE.TABLE`. */
export type Stubs = ReadonlyMap<string, SourceStub>;

function dnsblKey(key: string): string {
  return key.includes(":") || /^\d+(\.\d+){3}$/.test(key)
    ? canonicalIp(key)
    : key.toLowerCase().replace(/\.$/, "");
}

interface Prepared {
  tables: Map<string, { matcher: ListMatcher; values?: ReadonlyMap<string, string> }>;
  quotas: Map<string, { byAddress: Map<string, QuotaStatus>; delimiter?: string }>;
  dnsbls: Map<string, { zone: string; listed: Map<string, string[]> }>;
}

function prepare(stubs: Stubs, localPart: LocalPartMode): Prepared {
  const prepared: Prepared = { tables: new Map(), quotas: new Map(), dnsbls: new Map() };
  for (const [name, stub] of stubs) {
    if (stub.kind === "table") {
      const table: { matcher: ListMatcher; values?: ReadonlyMap<string, string> } = {
        matcher: new ListMatcher(stub.entries, { localPart }),
      };
      if (stub.values !== undefined) table.values = stub.values;
      prepared.tables.set(name, table);
    } else if (stub.kind === "quota") {
      const byAddress = new Map<string, QuotaStatus>();
      for (const [address, status] of stub.mailboxes)
        byAddress.set(normalizeAddress(address, localPart), status);
      const quota: { byAddress: Map<string, QuotaStatus>; delimiter?: string } = { byAddress };
      if (stub.recipientDelimiter !== undefined) quota.delimiter = stub.recipientDelimiter;
      prepared.quotas.set(name, quota);
    } else {
      const listed = new Map<string, string[]>();
      for (const [key, codes] of stub.listed) listed.set(dnsblKey(key), [...codes].sort());
      prepared.dnsbls.set(name, { zone: stub.zone, listed });
    }
  }
  return prepared;
}

export class StubLookups implements Lookups {
  private readonly stubs: Prepared;
  /** What was asked offline without a stub, since the last takeMissing(). */
  private readonly missing = new Set<string>();
  state?: StateLookups;

  constructor(
    stubs: Stubs,
    /** The live sources for whatever is not stubbed. */
    private readonly live: Lookups | undefined,
    private readonly localPart: LocalPartMode = "insensitive",
    /** Offline: the only sources `live` may be asked (lists); undefined: any. */
    private readonly liveOnly?: ReadonlySet<string>,
  ) {
    this.stubs = prepare(stubs, localPart);
  }

  private liveOr(source: string, table?: string): Lookups {
    if (this.live !== undefined && (this.liveOnly === undefined || this.liveOnly.has(source)))
      return this.live;
    const name = table === undefined ? source : `${source}.${table}`;
    this.missing.add(name);
    throw new LookupError(
      source,
      `'${name}' is not stubbed in the test file and --offline forbids asking it`,
    );
  }

  /** The sources and tables asked offline without a stub since the last call. */
  takeMissing(): string[] {
    const names = [...this.missing];
    this.missing.clear();
    return names;
  }

  private table(source: string, table: string | undefined) {
    return this.stubs.tables.get(table === undefined ? source : `${source}.${table}`);
  }

  has(source: string, table: string | undefined, key: string): MaybePromise<boolean> {
    const stub = this.table(source, table);
    if (stub === undefined) return this.liveOr(source, table).has(source, table, key);
    return stub.matcher.find(key) !== undefined;
  }

  get(source: string, table: string | undefined, key: string): MaybePromise<string | undefined> {
    const stub = this.table(source, table);
    if (stub === undefined) return this.liveOr(source, table).get(source, table, key);
    const entry = stub.matcher.find(key);
    return entry === undefined ? undefined : (stub.values?.get(entry) ?? entry);
  }

  quota(source: string, address: string): MaybePromise<QuotaStatus | undefined> {
    const stub = this.stubs.quotas.get(source);
    if (stub === undefined) return this.liveOr(source).quota(source, address);
    const key = normalizeAddress(address, this.localPart);
    const found = stub.byAddress.get(key);
    if (found !== undefined || stub.delimiter === undefined) return found;
    const { local, domain } = splitAddress(key);
    if (domain === undefined) return undefined;
    return stub.byAddress.get(`${withoutDetail(local, stub.delimiter)}@${domain}`);
  }

  dnsbl(source: string, key: string): MaybePromise<DnsblAnswer> {
    const stub = this.stubs.dnsbls.get(source);
    if (stub === undefined) return this.liveOr(source).dnsbl(source, key);
    const codes = stub.listed.get(dnsblKey(key));
    if (codes === undefined) return { listed: false };
    const answer: DnsblAnswer = { listed: true, codes };
    if (codes[0] !== undefined) answer.code = codes[0];
    return answer;
  }

  zoneOf(source: string): string {
    return this.stubs.dnsbls.get(source)?.zone ?? this.live?.zoneOf(source) ?? "";
  }
}
