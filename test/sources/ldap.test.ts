/**
 * The LDAP source against a real, private slapd (test/support/slapd.ts): lookups, binding,
 * RFC 4515 escaping (with control searches proving an unescaped value WOULD match), TLS, and
 * faults (a killed, a frozen and an absent server).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, EqualityFilter } from "ldapts";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { normalizeAddress } from "../../src/common/address.js";
import type { LocatedText } from "../../src/config/types.js";
import { CachedLookup, LookupTimeout } from "../../src/sources/cache.js";
import type { LdapSourceConfig } from "../../src/sources/ldap.js";
import {
  createLdapSource,
  LdapLookupError,
  type LdapSourceOptions,
  lookupFilter,
} from "../../src/sources/ldap.js";
import type { SourceContext, TableSource } from "../../src/sources/types.js";
import {
  ADDRESSES,
  BIND_DN,
  BIND_PASSWORD,
  DESCRIPTIONS,
  freePort,
  Slapd,
  SUFFIX,
} from "../support/slapd.js";

const located = (text: string): LocatedText => ({ text, offsetAt: (i) => i });

const TABLES: Record<string, string> = {
  local_domains: "(sendmailMTAClassValue={key})",
  addresses: "(mailLocalAddress={key})",
  mailboxes: "(mailLocalAddress={user}@{domain})",
  either: "(|(cn=nobody)(mailLocalAddress={key}))",
  filed: "(&(objectClass=filterctlMailEntry)(mailLocalAddress={key}))",
  jorg_by_cn: "(&(mailLocalAddress=jörg@example.org)(cn={key}))",
};

interface LogLine {
  level: string;
  fields: object;
  message: string;
}

let workDir: string;
let configPath: string;
const PASSWORD_ENV = "FILTERCTL_TEST_LDAP_PASSWORD";

function context(lines: LogLine[] = []): SourceContext {
  const push = (level: string) => (fields: object, message: string) => lines.push({ level, fields, message });
  return { configPath, logger: { info: push("info"), warn: push("warn"), error: push("error") } };
}

function config(url: string, overrides: Partial<LdapSourceConfig> = {}): LdapSourceConfig {
  return {
    type: "ldap",
    kind: "table",
    name: "directory",
    offset: 0,
    timeoutMs: 2000,
    onError: "tempfail",
    url,
    bindDn: BIND_DN,
    passwordFile: "ldap.secret",
    base: SUFFIX,
    startTls: false,
    tables: new Map(Object.entries(TABLES).map(([name, filter]) => [name, located(filter)])),
    ...overrides,
  };
}

const opened: TableSource[] = [];
async function open(
  cfg: LdapSourceConfig,
  lines: LogLine[] = [],
  options: LdapSourceOptions = {},
): Promise<TableSource> {
  const source = await createLdapSource(cfg, context(lines), options);
  opened.push(source);
  return source;
}

const deadline = (ms = 5000) => AbortSignal.timeout(ms);

/** The outcome of a lookup, for tables of expectations. */
async function outcome(work: Promise<unknown>): Promise<unknown> {
  try {
    return await work;
  } catch (error) {
    return error instanceof Error ? `error: ${error.message}` : error;
  }
}

async function until(what: string, ms: number, probe: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await probe().catch(() => false)) return Date.now() - started;
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), "filterctl-ldap-test-"));
  configPath = join(workDir, "rules.yaml");
  await writeFile(join(workDir, "ldap.secret"), `${BIND_PASSWORD}\n`, { mode: 0o600 });
  process.on("unhandledRejection", onUnhandled);
});

afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()));
  process.off("unhandledRejection", onUnhandled);
  expect(unhandled).toEqual([]);
  await rm(workDir, { recursive: true, force: true });
});

describe("LDAP source against a private slapd", () => {
  let slapd: Slapd;
  let source: TableSource;
  const lines: LogLine[] = [];

  beforeAll(async () => {
    slapd = await Slapd.start();
    source = await open(config(slapd.url), lines);
  });
  afterAll(async () => {
    await slapd?.destroy();
  });

  it("finds our domains and only them", async () => {
    expect(await source.has("local_domains", "example.org", deadline())).toBe(true);
    expect(await source.has("local_domains", "example.net", deadline())).toBe(true);
    expect(await source.has("local_domains", "example.com", deadline())).toBe(false);
    expect(await source.has("local_domains", "org", deadline())).toBe(false);
    expect(await source.get("local_domains", "example.net", deadline())).toBe(
      "cn=local-domains,ou=sendmail,dc=mail",
    );
    expect(await source.get("local_domains", "example.com", deadline())).toBeUndefined();
  });

  it("finds existing addresses and not others", async () => {
    for (const address of ["alice@example.org", "bob@example.org", "postmaster@example.org"]) {
      expect(await source.has("addresses", address, deadline()), address).toBe(true);
    }
    for (const address of ["carol@example.org", "alice@example.net", "alice", "alice@example.org.evil"]) {
      expect(await source.has("addresses", address, deadline()), address).toBe(false);
      expect(await source.get("addresses", address, deadline()), address).toBeUndefined();
    }
    expect(await source.get("addresses", "bob@example.org", deadline())).toBe(
      "cn=mailbox-2,ou=people,dc=mail",
    );
  });

  it("get answers result_attribute ('' when the entry has none)", async () => {
    const described = await open(config(slapd.url, { resultAttribute: "Description" }));
    expect(await described.get("addresses", "alice@example.org", deadline())).toBe(
      DESCRIPTIONS["alice@example.org"],
    );
    expect(await described.get("addresses", "POSTMASTER@example.org", deadline())).toBe(
      DESCRIPTIONS["postmaster@example.org"],
    );
    expect(await described.get("addresses", "bob@example.org", deadline())).toBe("");
    expect(await described.get("addresses", "carol@example.org", deadline())).toBeUndefined();
    expect(await described.get("local_domains", "example.org", deadline())).toBe("our domains");
  });

  it("matches case-insensitively", async () => {
    expect(await source.has("local_domains", "EXAMPLE.Org", deadline())).toBe(true);
    expect(await source.has("addresses", "Alice@EXAMPLE.ORG", deadline())).toBe(true);
    expect(await source.has("addresses", "BOB@example.org", deadline())).toBe(true);
  });

  it("sends non-ASCII values as UTF-8 (ldapts alone would mangle escaped bytes)", async () => {
    expect(ADDRESSES).toContain("jörg@example.org");
    expect(await source.has("addresses", "jörg@example.org", deadline())).toBe(true);
    expect(await source.has("addresses", "jorg@example.org", deadline())).toBe(false);
    // A non-ASCII literal in the filter template itself.
    expect(await source.has("jorg_by_cn", "mailbox-4", deadline())).toBe(true);
    expect(await source.has("jorg_by_cn", "mailbox-1", deadline())).toBe(false);
  });

  it("strips +detail for {user} when recipient_delimiter is '+'", async () => {
    const plus = await open(config(slapd.url, { recipientDelimiter: "+" }));
    expect(await plus.has("mailboxes", "alice+lists@example.org", deadline())).toBe(true);
    expect(await plus.has("mailboxes", "bob+a+b@EXAMPLE.org", deadline())).toBe(true);
    expect(await plus.has("mailboxes", "carol+x@example.org", deadline())).toBe(false);
    // Without the delimiter the detail stays part of the address.
    expect(await source.has("mailboxes", "alice+lists@example.org", deadline())).toBe(false);
    expect(await source.has("mailboxes", "alice@example.org", deadline())).toBe(true);
  });

  it("binds with password_file (relative, trailing newline stripped) and with password_env", async () => {
    // `source` uses password_file: ldap.secret next to rules.yaml.
    expect(await source.has("addresses", "alice@example.org", deadline())).toBe(true);
    process.env[PASSWORD_ENV] = BIND_PASSWORD;
    try {
      const fromEnv = await open(config(slapd.url, { passwordFile: undefined, passwordEnv: PASSWORD_ENV }));
      expect(await fromEnv.has("addresses", "alice@example.org", deadline())).toBe(true);
    } finally {
      delete process.env[PASSWORD_ENV];
    }
    await expect(
      createLdapSource(config(slapd.url, { passwordFile: undefined, passwordEnv: PASSWORD_ENV }), context()),
    ).rejects.toThrow(`environment variable ${PASSWORD_ENV} (password_env) is not set`);
    await expect(
      createLdapSource(config(slapd.url, { passwordFile: "missing.secret" }), context()),
    ).rejects.toThrow(/password_file .*missing\.secret: no such file$/);
  });

  it("a wrong password is a lookup error that never shows the password", async () => {
    const wrong = "not-the-Password-42";
    await writeFile(join(workDir, "wrong.secret"), `${wrong}\n`);
    const log: LogLine[] = [];
    const bad = await open(config(slapd.url, { passwordFile: "wrong.secret" }), log);
    const error = await bad.has("addresses", "alice@example.org", deadline()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LdapLookupError);
    expect((error as LdapLookupError).resultCode).toBe(49);
    expect((error as Error).message).toMatch(
      /bind to ldap:\/\/127\.0\.0\.1:\d+ as cn=postmaster.* failed: .*\(LDAP result 49\)/,
    );
    // Immediately after, the backoff answers at once, still without the password.
    const second = await bad.has("addresses", "alice@example.org", deadline()).catch((e: unknown) => e);
    expect((second as Error).message).toMatch(/unavailable .*next attempt in \d+ ms/);
    for (const text of [(error as Error).message, (second as Error).message, JSON.stringify(log)]) {
      expect(text).not.toContain(wrong);
      expect(text).not.toContain(BIND_PASSWORD);
    }
    expect(log.some((l) => l.level === "warn")).toBe(true);
  });

  it("anonymous binds but may not read: an error, never 'absent'", async () => {
    const anonymous = await open(config(slapd.url, { bindDn: undefined, passwordFile: undefined }));
    const error = await anonymous.has("addresses", "alice@example.org", deadline()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LdapLookupError);
    expect((error as LdapLookupError).resultCode).toBe(32); // slapd hides the base: noSuchObject
    await expect(anonymous.get("addresses", "nobody@example.org", deadline())).rejects.toThrow(
      LdapLookupError,
    );
  });

  describe("filter injection", () => {
    let raw: Client;
    /** What the server finds for the template with the key pasted in UNESCAPED (the bug we prevent). */
    async function rawCount(table: string, key: string): Promise<number> {
      const filter = (TABLES[table] as string).replace("{key}", key);
      const { searchEntries } = await raw.search(SUFFIX, { scope: "sub", filter, attributes: ["1.1"] });
      return searchEntries.length;
    }
    beforeAll(async () => {
      raw = new Client({ url: slapd.url, timeout: 5000 });
      await raw.bind(BIND_DN, BIND_PASSWORD);
    });
    afterAll(async () => {
      await raw.unbind();
    });

    it("control: the schema has SUBSTR, so unescaped keys WOULD match existing entries", async () => {
      expect(await rawCount("addresses", "*@example.org")).toBeGreaterThanOrEqual(3);
      expect(await rawCount("addresses", "a*")).toBe(1);
      expect(await rawCount("addresses", "*")).toBe(ADDRESSES.length);
      expect(await rawCount("local_domains", "*.org")).toBe(1);
      expect(await rawCount("either", "x)(mailLocalAddress=*")).toBe(ADDRESSES.length);
      expect(await rawCount("filed", "*")).toBe(ADDRESSES.length);
    });

    const KEYS = [
      "*@example.org",
      "a*",
      "*",
      "**",
      "alice@example.org*",
      "*alice@example.org",
      "x)(mailLocalAddress=*",
      "alice@example.org)(|(mailLocalAddress=*",
      "*)(|(cn=*",
      "\\2a",
      "\\2a@example.org",
      "alice@example.org\\",
      "alice@example.org\u0000",
      "\u0000",
      "(mailLocalAddress=*)",
      ")",
      "(",
      "\\",
    ];

    it.each(KEYS)("key %j matches nothing in any table", async (key) => {
      for (const table of ["addresses", "local_domains", "either", "filed", "mailboxes"]) {
        expect(await source.has(table, key, deadline()), `${table} ${JSON.stringify(key)}`).toBe(false);
        expect(await source.get(table, key, deadline()), `${table} ${JSON.stringify(key)}`).toBeUndefined();
      }
      expect(await source.has("local_domains", `${key}.org`, deadline())).toBe(false);
    });

    it("the server receives the whole key as one literal assertion value", () => {
      for (const key of KEYS) {
        const filter = lookupFilter(TABLES.addresses as string, key);
        expect(filter).toBeInstanceOf(EqualityFilter);
        expect((filter as EqualityFilter).attribute).toBe("mailLocalAddress");
        // An address key arrives normalised (its domain folded), but whole and literal.
        const sent = key.includes("@") ? normalizeAddress(key, "sensitive") : key;
        expect((filter as EqualityFilter).value).toEqual(Buffer.from(sent, "utf8"));
      }
    });
  });

  it("uses one connection for concurrent lookups", async () => {
    const log: LogLine[] = [];
    const shared = await open(config(slapd.url), log);
    const keys = Array.from({ length: 100 }, (_, i) =>
      i % 2 === 0 ? "alice@example.org" : `u${i}@example.org`,
    );
    const answers = await Promise.all(keys.map((k) => shared.has("addresses", k, deadline())));
    expect(answers).toEqual(keys.map((k) => k === "alice@example.org"));
    expect(log.filter((l) => /connected/.test(l.message))).toHaveLength(1);
  });

  it("through CachedLookup (as the registry wraps it): 100 identical lookups make one search", async () => {
    const cache = new CachedLookup<boolean>(
      { positiveTtlMs: 0, negativeTtlMs: 0, timeoutMs: 2000, maxEntries: 10 },
      (found) => !found,
    );
    let searches = 0;
    const answers = await Promise.all(
      Array.from({ length: 100 }, () =>
        cache.lookup("addresses\u0000alice@example.org", (signal) => {
          searches++;
          return source.has("addresses", "alice@example.org", signal);
        }),
      ),
    );
    expect(answers.every((found) => found === true)).toBe(true);
    expect(searches).toBe(1);
    expect(cache.counters.coalesced).toBe(99);
  });

  it("answers false for an empty key without asking, and errors for unknown tables", async () => {
    expect(await source.has("addresses", "", deadline())).toBe(false);
    expect(await source.get("addresses", "", deadline())).toBeUndefined();
    await expect(source.has("nope", "alice@example.org", deadline())).rejects.toThrow("no table 'nope'");
    await expect(source.has(undefined, "alice@example.org", deadline())).rejects.toThrow(
      /must name one of its tables/,
    );
  });

  it("refuses a table whose filter does not parse, at creation", async () => {
    const tables = new Map([["broken", located("(mailLocalAddress={key}")]]);
    await expect(createLdapSource(config(slapd.url, { tables }), context())).rejects.toThrow(
      /table 'broken' has an invalid LDAP filter/,
    );
  });

  it("close() unbinds; later lookups fail", async () => {
    const closing = await createLdapSource(config(slapd.url), context());
    expect(await closing.has("addresses", "alice@example.org", deadline())).toBe(true);
    const started = Date.now();
    await closing.close();
    expect(Date.now() - started).toBeLessThan(1000);
    await expect(closing.has("addresses", "alice@example.org", deadline())).rejects.toThrow(/closed/);
  });
});

describe("LDAP source faults", () => {
  let slapd: Slapd;
  beforeAll(async () => {
    slapd = await Slapd.start();
  });
  beforeEach(async () => {
    // A failed fault test must not leave the next one without a server.
    slapd.thaw();
    if (!slapd.isRunning) await slapd.restart();
  });
  afterAll(async () => {
    await slapd?.destroy();
  });

  it("slapd killed: errors while it is down, then the same source recovers", async () => {
    const log: LogLine[] = [];
    const source = await open(config(slapd.url, { timeoutMs: 3000 }), log);
    expect(await source.has("addresses", "alice@example.org", deadline())).toBe(true);

    // Lookups in flight when slapd dies fail at once (connection closed), not at their timeout.
    await slapd.freeze();
    const inFlight = Array.from({ length: 10 }, (_, i) =>
      outcome(source.has("addresses", `user${i}@example.org`, deadline(8000))),
    );
    await new Promise((r) => setTimeout(r, 100));
    const killedAt = Date.now();
    await slapd.kill();
    const dropped = await Promise.all(inFlight);
    const droppedMs = Date.now() - killedAt;
    for (const result of dropped) {
      expect(result).toMatch(/^error: .*search in 'addresses' failed: .*(closed|ECONNRESET|socket)/i);
    }
    expect(droppedMs).toBeLessThan(1000);

    const failures: { at: number; ms: number; message: string }[] = [];
    while (Date.now() - killedAt < 1500) {
      const started = Date.now();
      const result = await outcome(source.has("addresses", "alice@example.org", deadline()));
      expect(typeof result === "string" && result.startsWith("error: ")).toBe(true);
      failures.push({ at: started - killedAt, ms: Date.now() - started, message: String(result) });
      await new Promise((r) => setTimeout(r, 20));
    }
    // Every lookup failed quickly (well under the 3 s timeout): refused connections, then the
    // backoff answering at once.
    const slowest = Math.max(...failures.map((f) => f.ms));
    expect(slowest).toBeLessThan(1000);
    expect(failures.some((f) => /ECONNREFUSED/.test(f.message))).toBe(true);
    expect(failures.some((f) => /next attempt in/.test(f.message))).toBe(true);

    const restartAt = Date.now();
    await slapd.restart();
    const restartMs = Date.now() - restartAt;
    const recovered = await until("recovery after restart", 8000, () =>
      source.has("addresses", "alice@example.org", deadline()),
    );
    console.log(
      `[ldap] killed: 10 in-flight lookups failed ${droppedMs} ms after SIGKILL; then ${failures.length} lookups ` +
        `failed in 1.5 s (slowest ${slowest} ms, ${failures.filter((f) => /next attempt/.test(f.message)).length} ` +
        `by backoff); slapd restarted in ${restartMs} ms; the source answered ${recovered} ms later`,
    );
    expect(await source.has("addresses", "carol@example.org", deadline())).toBe(false);
    expect(log.some((l) => l.level === "warn")).toBe(true);
    expect(log.some((l) => /connected again/.test(l.message))).toBe(true);
    console.log(`[ldap] log while killed: ${log.map((l) => `${l.level}: ${l.message}`).join(" || ")}`);
  });

  it("slapd frozen beyond the timeout: the lookup rejects by its deadline, then recovers after SIGCONT", async () => {
    const source = await open(config(slapd.url, { timeoutMs: 500 }));
    expect(await source.has("addresses", "alice@example.org", deadline())).toBe(true);
    await slapd.freeze();
    try {
      let started = Date.now();
      await expect(source.has("addresses", "alice@example.org", deadline(1500))).rejects.toThrow(
        LdapLookupError,
      );
      const first = Date.now() - started;
      expect(first).toBeLessThan(2000);
      // While frozen, lookups keep failing within their deadline (backoff, or a new attempt timing out).
      const during: number[] = [];
      for (let i = 0; i < 5; i++) {
        started = Date.now();
        await expect(source.has("addresses", "alice@example.org", deadline(1500))).rejects.toThrow();
        during.push(Date.now() - started);
      }
      expect(Math.max(...during)).toBeLessThan(2000);
      console.log(
        `[ldap] frozen: first lookup rejected after ${first} ms (timeout 500 ms); then ${during.join(", ")} ms`,
      );
    } finally {
      slapd.thaw();
    }
    const thawedAt = Date.now();
    const recovered = await until("recovery after SIGCONT", 8000, () =>
      source.has("addresses", "alice@example.org", deadline()),
    );
    console.log(`[ldap] thawed: recovered after ${recovered} ms (${Date.now() - thawedAt} ms)`);
  });

  it("the AbortSignal wins over a longer timeout", async () => {
    const source = await open(config(slapd.url, { timeoutMs: 10_000 }));
    expect(await source.has("addresses", "alice@example.org", deadline())).toBe(true);
    await slapd.freeze();
    try {
      const started = Date.now();
      await expect(source.has("addresses", "bob@example.org", deadline(300))).rejects.toThrow(/aborted/);
      const elapsed = Date.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(1500);
      // An already-aborted signal rejects at once.
      const gone = AbortSignal.abort();
      await expect(source.has("addresses", "bob@example.org", gone)).rejects.toThrow(/aborted/);
    } finally {
      slapd.thaw();
    }
    expect(await source.has("addresses", "bob@example.org", deadline())).toBe(true);
  });

  it("through CachedLookup: a frozen server's lookup ends at the registry's deadline", async () => {
    const source = await open(config(slapd.url, { timeoutMs: 5000 }));
    expect(await source.has("addresses", "alice@example.org", deadline())).toBe(true);
    const cache = new CachedLookup<boolean>(
      { positiveTtlMs: 0, negativeTtlMs: 0, timeoutMs: 300, maxEntries: 10 },
      (found) => !found,
    );
    await slapd.freeze();
    try {
      const started = Date.now();
      await expect(
        cache.lookup("bob", (signal) => source.has("addresses", "bob@example.org", signal)),
      ).rejects.toBeInstanceOf(LookupTimeout);
      expect(Date.now() - started).toBeLessThan(1000);
      // The registry aborts the source's lookup after a grace period: it must end quietly then.
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      slapd.thaw();
    }
    expect(await source.has("addresses", "bob@example.org", deadline())).toBe(true);
  });

  it("a closed port is an error, never a crash or an unhandled rejection", async () => {
    const port = await freePort();
    const source = await open(config(`ldap://127.0.0.1:${port}`, { timeoutMs: 5000 }));
    const started = Date.now();
    await expect(source.has("addresses", "alice@example.org", deadline())).rejects.toThrow(
      new RegExp(
        `^ldap source 'directory': cannot connect to ldap://127\\.0\\.0\\.1:${port}: connect ECONNREFUSED`,
      ),
    );
    await expect(source.get("local_domains", "example.org", deadline())).rejects.toThrow(/unavailable/);
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => source.has("addresses", "bob@example.org", deadline())),
    );
    expect(results.every((r) => r.status === "rejected")).toBe(true);
    expect(Date.now() - started).toBeLessThan(2000);
    await new Promise((r) => setTimeout(r, 300));
    await expect(source.has("addresses", "alice@example.org", deadline())).rejects.toThrow(LdapLookupError);
  });
});

describe("LDAP source over TLS", () => {
  let slapd: Slapd;
  beforeAll(async () => {
    slapd = await Slapd.start({ tls: true });
  });
  afterAll(async () => {
    await slapd?.destroy();
  });

  it("ldaps:// with the server's CA", async () => {
    const source = await open(config(slapd.ldapsUrl), [], { tls: { ca: slapd.certificate } });
    expect(await source.has("addresses", "alice@example.org", deadline())).toBe(true);
    expect(await source.has("addresses", "*", deadline())).toBe(false);
  });

  it("start_tls: true on ldap://", async () => {
    const source = await open(config(slapd.url, { startTls: true }), [], { tls: { ca: slapd.certificate } });
    expect(await source.has("local_domains", "example.net", deadline())).toBe(true);
  });

  it("an untrusted certificate is a lookup error (ldaps:// and StartTLS)", async () => {
    const ldaps = await open(config(slapd.ldapsUrl));
    await expect(ldaps.has("addresses", "alice@example.org", deadline())).rejects.toThrow(/self[- ]signed/i);
    const startTls = await open(config(slapd.url, { startTls: true }));
    await expect(startTls.has("addresses", "alice@example.org", deadline())).rejects.toThrow(
      /StartTLS with ldap:\/\/127\.0\.0\.1:\d+ failed: .*self[- ]signed/i,
    );
  });
});
