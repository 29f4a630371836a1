/**
 * DNSBL sources without a DNS server: query names, answer classification, and the health state
 * machine driven through an injected resolver (and fake timers where timing matters). The same
 * behaviour against a real rbldnsd is in dnsbl-rbldnsd.test.ts.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { DnsblSourceConfig } from "../../src/sources/dnsbl.js";
import {
  classifyAnswer,
  cleanReason,
  createDnsblSource,
  type DnsblResolver,
  type DnsblSourceOptions,
  dnsblQueryName,
  ip6Nibbles,
  parseCodes,
  reverseIp4,
} from "../../src/sources/dnsbl.js";
import type { DnsblHealth, SourceLogger } from "../../src/sources/types.js";

type Answer = string[] | string; // a string is an error code (ENOTFOUND, ESERVFAIL, ETIMEOUT...)

/** A resolver answering from a function of the name; records every query. */
class FakeResolver implements DnsblResolver {
  queries: string[] = [];
  txtQueries: string[] = [];
  txt = new Map<string, string[][]>();
  constructor(public answer: (name: string) => Answer) {}
  resolve4(name: string): Promise<string[]> {
    this.queries.push(name);
    const a = this.answer(name);
    if (typeof a === "string") return Promise.reject(Object.assign(new Error(a), { code: a }));
    return Promise.resolve(a);
  }
  resolveTxt(name: string): Promise<string[][]> {
    this.txtQueries.push(name);
    const t = this.txt.get(name);
    return t === undefined
      ? Promise.reject(Object.assign(new Error("ENODATA"), { code: "ENODATA" }))
      : Promise.resolve(t);
  }
  cancel(): void {}
}

const ZONE = "bl.example";
const V6_POSITIVE = `${ip6Nibbles("::ffff:7f00:2")}.${ZONE}`;
const V6_NEGATIVE = `${ip6Nibbles("::ffff:7f00:1")}.${ZONE}`;

/** An RFC 5782 IPv4 list: 127.0.0.2 listed, plus `listed` keys (query names). */
function healthyList(listed: Record<string, string[]> = {}): (name: string) => Answer {
  return (name) => {
    if (name === `2.0.0.127.${ZONE}` || name === V6_POSITIVE) return ["127.0.0.2"];
    return listed[name] ?? "ENOTFOUND";
  };
}
const everything = (): Answer => ["127.0.0.2"];
const silentDns = (): Answer => "ETIMEOUT";

function config(
  overrides: Partial<DnsblSourceConfig> = {},
  health: Partial<DnsblSourceConfig["health"]> = {},
) {
  return {
    name: "bl",
    type: "dnsbl",
    kind: "dnsbl",
    zone: ZONE,
    offset: 0,
    timeoutMs: 200,
    onError: "continue",
    health: { intervalMs: 300_000, window: 50, maxListedRatio: 0.9, requirePositiveProbe: true, ...health },
    ...overrides,
  } satisfies DnsblSourceConfig as DnsblSourceConfig;
}

interface Logged {
  level: string;
  fields: Record<string, unknown>;
  message: string;
}
function recordingLogger(): SourceLogger & { lines: Logged[] } {
  const lines: Logged[] = [];
  const at = (level: string) => (fields: object, message: string) =>
    lines.push({ level, fields: fields as Record<string, unknown>, message });
  return { lines, info: at("info"), warn: at("warn"), error: at("error") };
}

function makeList(resolver: FakeResolver, cfg = config(), options: Partial<DnsblSourceOptions> = {}) {
  const logger = recordingLogger();
  const clock = { now: 1_000_000 };
  const source = createDnsblSource(
    cfg,
    { configPath: "/etc/filterctl/rules.yaml", logger },
    { resolver, now: () => clock.now, random: () => 0.5, ...options },
  );
  const changes: { health: DnsblHealth; previous: DnsblHealth }[] = [];
  source.onStateChange = (health, previous) => changes.push({ health, previous });
  return { source, logger, clock, changes };
}

const signal = () => new AbortController().signal;

afterEach(() => {
  vi.useRealTimers();
});

describe("query names", () => {
  it("reverses IPv4 octets", () => {
    expect(reverseIp4("192.0.2.5")).toBe("5.2.0.192");
    expect(dnsblQueryName("192.0.2.5", "zen.spamhaus.org")).toEqual({
      family: "ip4",
      name: "5.2.0.192.zen.spamhaus.org",
      key: "192.0.2.5",
    });
  });

  it("writes IPv6 as 32 reversed nibbles", () => {
    expect(ip6Nibbles("::ffff:7f00:2")).toBe(
      "2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0",
    );
    const q = dnsblQueryName("2001:DB8::1", "bl.example");
    expect(q?.family).toBe("ip6");
    expect(q?.name).toBe("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example");
    expect(q?.name.split(".").length).toBe(32 + 2);
    expect(dnsblQueryName("2001:db8:0:0:1:0:0:1", "z")?.name).toBe(
      "1.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.z",
    );
    expect(dnsblQueryName("1:2:3:4:5:6:7:8", "z")?.name).toBe(
      "8.0.0.0.7.0.0.0.6.0.0.0.5.0.0.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.z",
    );
  });

  it("queries IPv4-mapped IPv6 addresses as IPv4, in either notation", () => {
    expect(dnsblQueryName("::ffff:192.0.2.1", "z")).toEqual({
      family: "ip4",
      name: "1.2.0.192.z",
      key: "192.0.2.1",
    });
    expect(dnsblQueryName("::FFFF:c000:201", "z")?.name).toBe("1.2.0.192.z");
    // Not mapped: the IPv4-compatible form and NAT64 stay IPv6.
    expect(dnsblQueryName("64:ff9b::192.0.2.1", "z")?.family).toBe("ip6");
  });

  it("unwraps what MTAs put around client addresses", () => {
    expect(dnsblQueryName("[192.0.2.7]", "z")?.name).toBe("7.2.0.192.z");
    expect(dnsblQueryName("IPv6:2001:db8::1", "z")?.family).toBe("ip6");
    expect(dnsblQueryName("[IPv6:::ffff:192.0.2.1]", "z")?.name).toBe("1.2.0.192.z");
    expect(dnsblQueryName("fe80::1%eth0", "z")?.name).toBe(
      "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.e.f.z",
    );
  });

  it("asks domains as <domain>.<zone>, lower-cased, without trailing dot, IDNs as A-labels", () => {
    expect(dnsblQueryName("Spammer.EXAMPLE.", "dbl.spamhaus.org")).toEqual({
      family: "domain",
      name: "spammer.example.dbl.spamhaus.org",
      key: "spammer.example",
    });
    expect(dnsblQueryName("bücher.example", "z")?.name).toBe("xn--bcher-kva.example.z");
    expect(dnsblQueryName("_dmarc.example.org", "z")?.name).toBe("_dmarc.example.org.z");
    expect(dnsblQueryName("a-b.example", "Z.Example.")?.name).toBe("a-b.example.z.example");
  });

  it.each([
    ["", "empty"],
    ["   ", "blank"],
    ["user@example.org", "an address"],
    ["exa mple.org", "a space"],
    ["example.org\r\nX", "CR/LF"],
    ["foo..example", "an empty label"],
    ["-foo.example", "a leading hyphen"],
    ["foo/../bar.example", "a slash"],
    ["localhost", "a single label"],
    ["1.2.3.999", "a number that is no IPv4 address"],
    ["01.2.3.4", "a zero-padded IPv4 address"],
    [`${"a".repeat(64)}.example`, "a label over 63 characters"],
    [`${"abcdefghi.".repeat(25)}example`, "a name over 253 characters"],
    ["*.example", "a wildcard"],
  ])("refuses %j (%s)", (key) => {
    expect(dnsblQueryName(key, "bl.example")).toBeUndefined();
  });
});

describe("answers", () => {
  const codes = parseCodes(["127.0.0.2-127.0.0.11", "127.0.0.30"]);

  it("parses codes: values, ranges and CIDR blocks", () => {
    expect(parseCodes(["127.0.0.4"])).toEqual([{ from: 0x7f000004, to: 0x7f000004 }]);
    expect(parseCodes(["127.0.0.2 - 127.0.0.11"])).toEqual([{ from: 0x7f000002, to: 0x7f00000b }]);
    expect(parseCodes(["127.0.1.0/24"])).toEqual([{ from: 0x7f000100, to: 0x7f0001ff }]);
    expect(() => parseCodes(["127.0.0.11-127.0.0.2"])).toThrow(/not an IPv4 address or range/);
    expect(() => parseCodes(["listed"])).toThrow();
  });

  it("counts every A record in 127/8 as listed when no codes are given", () => {
    expect(classifyAnswer(["127.0.0.2", "127.0.0.4", "127.0.0.10"], undefined)).toEqual({
      kind: "listed",
      codes: ["127.0.0.2", "127.0.0.4", "127.0.0.10"],
      other: [],
    });
    expect(classifyAnswer([], undefined)).toEqual({ kind: "not-listed", other: [] });
  });

  it("with codes, lists only the accepted records and ignores the others", () => {
    expect(classifyAnswer(["127.0.0.4", "127.0.0.50"], codes)).toEqual({
      kind: "listed",
      codes: ["127.0.0.4"],
      other: ["127.0.0.50"],
    });
    expect(classifyAnswer(["127.0.0.50"], codes)).toEqual({ kind: "not-listed", other: ["127.0.0.50"] });
    expect(classifyAnswer(["127.0.0.30"], codes).kind).toBe("listed");
  });

  it.each([
    ["198.51.100.7", /outside 127\.0\.0\.0\/8/],
    ["10.0.0.1", /outside 127/],
    ["127.255.255.254", /public or open resolver/],
    ["127.255.255.252", /typing error/],
    ["127.255.255.255", /too many queries/],
    ["127.255.255.1", /127\.255\.255\.0\/24/],
    ["127.0.1.255", /IP address was queried in a domain list/],
    ["127.0.0.1", /not a listing code/],
  ])("%s is an error, never a listing, even beside a listing", (value, meaning) => {
    const answer = classifyAnswer(["127.0.0.2", value], undefined);
    expect(answer.kind).toBe("error");
    if (answer.kind === "error") expect(answer.meaning).toMatch(meaning);
    // Codes covering the error set change nothing for the operators' error codes.
    expect(classifyAnswer([value], parseCodes(["127.0.0.0/8"])).kind).toBe(
      value === "127.0.0.1" ? "listed" : "error",
    );
  });

  it("cleans TXT reasons: chunks joined, control characters and non-ASCII removed, at most 200 characters", () => {
    expect(cleanReason([["Listed ", "by ", "us"]])).toBe("Listed by us");
    expect(cleanReason([["a\r\nb\tc\x00d"]])).toBe("a b c d");
    expect(cleanReason([["caf\u00e9 %s"]])).toBe("caf? %s");
    expect(cleanReason([["one"], ["two"]])).toBe("one; two");
    expect(cleanReason([[""], ["  "]])).toBeUndefined();
    const long = cleanReason([["x".repeat(150), "y".repeat(150)]]);
    expect(long?.length).toBe(200);
    expect(long?.endsWith("...")).toBe(true);
  });
});

describe("lookups", () => {
  it("answers listed with every A record (sorted, once each) and the TXT reason, fetched only after a hit", async () => {
    const r = new FakeResolver(
      healthyList({ [`5.2.0.192.${ZONE}`]: ["127.0.0.10", "127.0.0.4", "127.0.0.10", "127.0.0.9"] }),
    );
    r.txt.set(`5.2.0.192.${ZONE}`, [["XBL: ", "exploited\r\nhost"]]);
    const { source } = makeList(r);
    await source.probe();
    r.queries = [];
    expect(await source.lookup("192.0.2.5", signal())).toEqual({
      listed: true,
      code: "127.0.0.4",
      codes: ["127.0.0.4", "127.0.0.9", "127.0.0.10"],
      reason: "XBL: exploited host",
    });
    expect(await source.lookup("192.0.2.6", signal())).toEqual({ listed: false });
    expect(r.txtQueries).toEqual([`5.2.0.192.${ZONE}`]);
  });

  it("applies the codes filter", async () => {
    const r = new FakeResolver(
      healthyList({
        [`5.2.0.192.${ZONE}`]: ["127.0.0.10"],
        [`6.2.0.192.${ZONE}`]: ["127.0.0.4", "127.0.0.10"],
      }),
    );
    const { source } = makeList(r, config({ codes: ["127.0.0.2-127.0.0.9"] }));
    await source.probe();
    expect((await source.lookup("192.0.2.5", signal())).listed).toBe(false);
    // The records outside `codes` are not part of the listing.
    expect(await source.lookup("192.0.2.6", signal())).toMatchObject({
      listed: true,
      code: "127.0.0.4",
      codes: ["127.0.0.4"],
    });
  });

  it("makes no query for a key that cannot be asked", async () => {
    const r = new FakeResolver(everything);
    const { source } = makeList(r, config(), {});
    r.queries = [];
    expect(await source.lookup("evil.example\r\nRCPT TO:<x>", signal())).toEqual({ listed: false });
    expect(await source.lookup("", signal())).toEqual({ listed: false });
    expect(r.queries).toEqual([]);
  });

  it("answers not listed, without a query, until the first round completes", async () => {
    const r = new FakeResolver(healthyList({ [`5.2.0.192.${ZONE}`]: ["127.0.0.2"] }));
    const { source } = makeList(r);
    expect(source.health().state).toBe("unknown");
    expect(await source.lookup("192.0.2.5", signal())).toEqual({ listed: false });
    expect(r.queries).toEqual([]);
  });

  it("throws on SERVFAIL and timeouts (the rule applies on_error), and never answers listed", async () => {
    const answers: Record<string, Answer> = {};
    const r = new FakeResolver((name) => answers[name] ?? healthyList()(name));
    const { source } = makeList(r);
    await source.probe();
    answers[`5.2.0.192.${ZONE}`] = "ESERVFAIL";
    await expect(source.lookup("192.0.2.5", signal())).rejects.toThrow(/SERVFAIL/);
    answers[`6.2.0.192.${ZONE}`] = "ETIMEOUT";
    await expect(source.lookup("192.0.2.6", signal())).rejects.toThrow(/no answer within 200 ms/);
  });

  it("bounds a lookup by the source's timeout even when the resolver never answers", async () => {
    let hang = false;
    const r = new FakeResolver(healthyList());
    const original = r.resolve4.bind(r);
    r.resolve4 = (name) => (hang ? new Promise<string[]>(() => {}) : original(name));
    const { source } = makeList(r, config({ timeoutMs: 100 }));
    await source.probe();
    hang = true;
    const started = Date.now();
    await expect(source.lookup("192.0.2.5", signal())).rejects.toThrow(/no answer within 100 ms/);
    expect(Date.now() - started).toBeLessThan(1_000);
    // The registry's deadline (the AbortSignal) ends it too.
    const controller = new AbortController();
    const pending = source.lookup("192.0.2.6", controller.signal);
    controller.abort();
    await expect(pending).rejects.toThrow(/cancelled/);
  });

  it("treats an error-code answer as not listed and probes the list at once (rate-limited)", async () => {
    let blocked = false;
    const r = new FakeResolver((name) => (blocked ? ["127.255.255.254"] : healthyList()(name)));
    const { source, logger, clock } = makeList(r, config(), { extraRoundMinIntervalMs: 30_000 });
    source.start();
    await vi.waitFor(() => expect(source.health().state).toBe("healthy"));
    blocked = true;
    r.queries = [];
    expect(await source.lookup("192.0.2.5", signal())).toEqual({ listed: false });
    await vi.waitFor(() => expect(r.queries).toContain(`2.0.0.127.${ZONE}`));
    expect(logger.lines.some((l) => /answered 127\.255\.255\.254 for 192\.0\.2\.5/.test(l.message))).toBe(
      true,
    );
    // Within 30 s a second error answer does not probe again.
    await vi.waitFor(() =>
      expect(logger.lines.some((l) => /failed a probe round \(refused\)/.test(l.message))).toBe(true),
    );
    r.queries = [];
    clock.now += 10_000;
    expect(await source.lookup("192.0.2.6", signal())).toEqual({ listed: false });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(r.queries).toEqual([`6.2.0.192.${ZONE}`]);
    await source.close();
  });
});

describe("health probes", () => {
  it("probes 127.0.0.1, a documentation address and 127.0.0.2 for an IPv4 list, and TEST/INVALID until it knows the kind", async () => {
    const r = new FakeResolver(healthyList());
    const { source } = makeList(r, config(), { random: () => 0.99 });
    await source.probe();
    expect(r.queries.sort()).toEqual(
      [
        `1.0.0.127.${ZONE}`,
        `252.113.0.203.${ZONE}`,
        `2.0.0.127.${ZONE}`,
        `invalid.${ZONE}`,
        `test.${ZONE}`,
      ].sort(),
    );
    // Once used for IPv4 keys only, only the IPv4 test points are asked.
    await source.lookup("192.0.2.1", signal());
    r.queries = [];
    await source.probe();
    expect(r.queries.sort()).toEqual([`1.0.0.127.${ZONE}`, `2.0.0.127.${ZONE}`, `252.113.0.203.${ZONE}`]);
  });

  it("picks the documentation address at random in 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24", async () => {
    const seen = new Set<string>();
    for (const x of [0, 0.34, 0.67, 0.999]) {
      const r = new FakeResolver(healthyList());
      const { source } = makeList(r, config({}), { random: () => x, keyKinds: ["ip4"] });
      await source.probe();
      for (const q of r.queries) if (!/^[12]\.0\.0\.127\./.test(q)) seen.add(q.replace(`.${ZONE}`, ""));
    }
    expect([...seen].sort()).toEqual(["1.2.0.192", "171.113.0.203", "254.113.0.203", "87.100.51.198"].sort());
  });

  it.each([
    [
      "lists everything (ORDB 2008)",
      "lists-everything",
      everything,
      /answers 'listed' \(127\.0\.0\.2\) for 127\.0\.0\.1.*ORDB in 2008.*switched off.*Remove it from rules\.yaml/,
    ],
    [
      "answers nothing",
      "dead",
      silentDns,
      /does not answer \(no answer within 200 ms for .*asking 127\.0\.0\.1:5353\).*Check dns\.servers/,
    ],
    [
      "is empty (SORBS 2024)",
      "dead",
      (): Answer => "ENOTFOUND",
      /does not list its test point 127\.0\.0\.2 \(RFC 5782\), asking .*First check the resolver: dns\.servers.*Then remove the list from rules\.yaml.*require_positive_probe: false/,
    ],
    [
      "answers Spamhaus error codes",
      "refused",
      (): Answer => ["127.255.255.254"],
      /answers 127\.255\.255\.254 .*open resolver.*own recursive resolver/,
    ],
    [
      "answers outside 127/8 (parked domain)",
      "refused",
      (): Answer => ["198.51.100.7"],
      /answers 198\.51\.100\.7 .*outside 127\.0\.0\.0\/8.*parked/,
    ],
    [
      "answers 127.0.0.1 (URIBL refusing)",
      "refused",
      (): Answer => ["127.0.0.1"],
      /answers 127\.0\.0\.1 .*refuse queries/,
    ],
    ["answers SERVFAIL", "dead", (): Answer => "ESERVFAIL", /does not answer \(SERVFAIL/],
  ])("a list that %s is %s, with a sentence for the postmaster", async (_what, state, answer, detail) => {
    const r = new FakeResolver(answer);
    const logger = recordingLogger();
    const source = createDnsblSource(
      config(),
      { configPath: "x", dnsServers: ["127.0.0.1:5353"], logger },
      { resolver: r, keyKinds: ["ip4"] },
    );
    const health = await source.probe();
    expect(health.state).toBe(state);
    expect(health.detail).toMatch(detail);
    expect(logger.lines).toContainEqual({
      level: "warn",
      fields: { source: "bl", zone: ZONE, state, previous: "unknown" },
      message: health.detail,
    });
    // Off: even a key the list answers for is not listed, and no query is made.
    r.queries = [];
    expect(await source.lookup("192.0.2.5", signal())).toEqual({ listed: false });
    expect(r.queries).toEqual([]);
  });

  it("a must-not-be-listed documentation address listed means lists-everything", async () => {
    const r = new FakeResolver((name) => (name.startsWith("1.0.0.127.") ? "ENOTFOUND" : ["127.0.0.2"]));
    const { source } = makeList(r, config(), { keyKinds: ["ip4"], random: () => 0 });
    const health = await source.probe();
    expect(health.state).toBe("lists-everything");
    expect(health.detail).toMatch(/for 192\.0\.2\.1, which no list may list/);
  });

  it("require_positive_probe: false accepts a list without 127.0.0.2", async () => {
    const r = new FakeResolver(() => "ENOTFOUND");
    const { source } = makeList(r, config({}, { requirePositiveProbe: false }), { keyKinds: ["ip4"] });
    expect((await source.probe()).state).toBe("healthy");
  });

  it("recognises a domain list (DBL) that answers 127.0.1.255 to IP queries", async () => {
    const r = new FakeResolver((name) => {
      if (name === `test.${ZONE}`) return ["127.0.1.2"];
      if (name === `spammer.example.${ZONE}`) return ["127.0.1.2"];
      if (/^\d+\.\d+\.\d+\.\d+\./.test(name)) return ["127.0.1.255"];
      return "ENOTFOUND";
    });
    const { source } = makeList(r);
    const health = await source.probe();
    expect(health.state).toBe("healthy");
    expect(health.detail).toMatch(/INVALID not listed, TEST listed/);
    expect(await source.lookup("spammer.example", signal())).toMatchObject({
      listed: true,
      code: "127.0.1.2",
    });
    // Used for domains only from now on, a round asks only TEST and INVALID.
    r.queries = [];
    await source.probe();
    expect(r.queries.sort()).toEqual([`invalid.${ZONE}`, `test.${ZONE}`]);
  });

  it("a domain list used for IP addresses says so", async () => {
    const r = new FakeResolver((name) =>
      /^\d+\.\d+\.\d+\.\d+\./.test(name) ? ["127.0.1.255"] : "ENOTFOUND",
    );
    const { source } = makeList(r, config(), { keyKinds: ["ip4"] });
    const health = await source.probe();
    expect(health.state).toBe("refused");
    expect(health.detail).toMatch(/127\.0\.1\.255 .*domain list.*for domains only/);
  });

  it("probes the IPv6 test points once the list is used for an IPv6 key", async () => {
    const r = new FakeResolver(healthyList({ [`${ip6Nibbles("2001:db8::5")}.${ZONE}`]: ["127.0.0.2"] }));
    const { source } = makeList(r);
    source.start();
    await vi.waitFor(() => expect(source.health().state).toBe("healthy"));
    expect(r.queries).not.toContain(V6_POSITIVE);
    // The first IPv6 key is not looked up before the IPv6 test points were checked...
    expect(await source.lookup("2001:db8::5", signal())).toEqual({ listed: false });
    await vi.waitFor(() => expect(r.queries).toContain(V6_POSITIVE));
    expect(r.queries).toContain(V6_NEGATIVE);
    // ...and is once they answer correctly.
    await vi.waitFor(async () => expect((await source.lookup("2001:db8::5", signal())).listed).toBe(true));
    await source.close();
  });

  it("keeps an IPv4 list in use when only its IPv6 test points fail, and stops looking up IPv6 keys", async () => {
    const r = new FakeResolver((name) =>
      name === V6_POSITIVE ? "ENOTFOUND" : healthyList({ [`5.2.0.192.${ZONE}`]: ["127.0.0.2"] })(name),
    );
    const { source, logger } = makeList(r, config(), { keyKinds: ["ip4", "ip6"] });
    const health = await source.probe();
    expect(health.state).toBe("healthy");
    expect(health.detail).toMatch(/IPv6 keys are not looked up: .*::FFFF:7F00:2/);
    expect(
      logger.lines.some((l) => l.level === "warn" && /IPv6 keys are not looked up/.test(l.message)),
    ).toBe(true);
    r.queries = [];
    expect(await source.lookup("2001:db8::5", signal())).toEqual({ listed: false });
    expect(r.queries).toEqual([]);
    expect((await source.lookup("192.0.2.5", signal())).listed).toBe(true);
  });

  it("an IPv6 must-not-be-listed test point listed fails the whole list", async () => {
    const r = new FakeResolver((name) => (name === V6_NEGATIVE ? ["127.0.0.2"] : healthyList()(name)));
    const { source } = makeList(r, config(), { keyKinds: ["ip4", "ip6"] });
    expect((await source.probe()).state).toBe("lists-everything");
  });
});

describe("state machine", () => {
  function switchable(initial: (name: string) => Answer) {
    const box = { answer: initial };
    return { box, resolver: new FakeResolver((name) => box.answer(name)) };
  }

  it("from unknown, the first round decides at once, either way", async () => {
    const good = makeList(new FakeResolver(healthyList()));
    expect((await good.source.probe()).state).toBe("healthy");
    expect(good.changes.map((c) => [c.previous.state, c.health.state])).toEqual([["unknown", "healthy"]]);
    const dead = makeList(new FakeResolver(silentDns));
    expect((await dead.source.probe()).state).toBe("dead");
  });

  it("one failed round does not trip a healthy list; two consecutive ones do", async () => {
    const { box, resolver } = switchable(healthyList({ [`5.2.0.192.${ZONE}`]: ["127.0.0.2"] }));
    const { source, logger, changes, clock } = makeList(resolver);
    await source.probe();
    box.answer = silentDns;
    expect((await source.probe()).state).toBe("healthy");
    expect(logger.lines.at(-1)?.message).toMatch(
      /failed a probe round \(dead\): it stays in use until a second/,
    );
    // A good round in between resets the count.
    box.answer = healthyList({ [`5.2.0.192.${ZONE}`]: ["127.0.0.2"] });
    await source.probe();
    box.answer = everything;
    expect((await source.probe()).state).toBe("healthy");
    clock.now += 5_000;
    const tripped = await source.probe();
    expect(tripped.state).toBe("lists-everything");
    expect(tripped.since).toBe(clock.now);
    expect(changes.map((c) => c.health.state)).toEqual(["healthy", "lists-everything"]);
    expect(await source.lookup("192.0.2.5", signal())).toEqual({ listed: false });
  });

  it("turns back on after three consecutive healthy rounds", async () => {
    const { box, resolver } = switchable(everything);
    const { source, logger, changes } = makeList(resolver);
    expect((await source.probe()).state).toBe("lists-everything");
    box.answer = healthyList();
    expect((await source.probe()).state).toBe("lists-everything");
    expect(logger.lines.at(-1)?.message).toMatch(/answered a probe round correctly \(1 of 3 needed\)/);
    expect((await source.probe()).state).toBe("lists-everything");
    // A failed round restarts the count.
    box.answer = everything;
    await source.probe();
    box.answer = healthyList();
    await source.probe();
    await source.probe();
    expect(source.health().state).toBe("lists-everything");
    const back = await source.probe();
    expect(back.state).toBe("healthy");
    expect(back.detail).toMatch(/in 3 consecutive probe rounds: it is in use again/);
    expect(changes.map((c) => c.health.state)).toEqual(["lists-everything", "healthy"]);
    expect(logger.lines.filter((l) => l.fields.state === "healthy" && l.level === "info")).toHaveLength(1);
  });

  it("while off, a different failure changes the state at once", async () => {
    const { box, resolver } = switchable(silentDns);
    const { source, changes } = makeList(resolver);
    expect((await source.probe()).state).toBe("dead");
    box.answer = everything;
    expect((await source.probe()).state).toBe("lists-everything");
    expect(changes.map((c) => `${c.previous.state}->${c.health.state}`)).toEqual([
      "unknown->dead",
      "dead->lists-everything",
    ]);
  });

  it("probes at start and every interval, and confirms a failed round after retryMs", async () => {
    vi.useFakeTimers();
    const { box, resolver } = switchable(healthyList());
    const { source, changes } = makeList(resolver, config({}, { intervalMs: 60_000 }), {
      retryMs: 5_000,
      keyKinds: ["ip4"],
    });
    source.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(source.health().state).toBe("healthy");
    const rounds = () => resolver.queries.filter((q) => q.startsWith("2.0.0.127.")).length;
    expect(rounds()).toBe(1);
    await vi.advanceTimersByTimeAsync(59_000);
    expect(rounds()).toBe(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(rounds()).toBe(2);
    box.answer = everything;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(rounds()).toBe(3);
    expect(source.health().state).toBe("healthy");
    await vi.advanceTimersByTimeAsync(5_000);
    expect(rounds()).toBe(4);
    expect(source.health().state).toBe("lists-everything");
    expect(changes).toHaveLength(2);
    await source.close();
    await vi.advanceTimersByTimeAsync(600_000);
    expect(rounds()).toBe(4);
  });

  it("does not keep the process alive: the probe timer is unref'd", async () => {
    const { source } = makeList(new FakeResolver(healthyList()));
    const unref = vi.spyOn(globalThis, "setTimeout");
    source.start();
    await vi.waitFor(() => expect(source.health().state).toBe("healthy"));
    const timer = unref.mock.results.find((r) => (r.value as NodeJS.Timeout)?.hasRef?.() === false);
    expect(timer).toBeDefined();
    unref.mockRestore();
    await source.close();
  });
});

describe("hit rate", () => {
  it("probes at once when more than max_listed_ratio of the last window distinct lookups were listed", async () => {
    vi.useFakeTimers();
    let listAll = false;
    const resolver = new FakeResolver((name) => (listAll ? ["127.0.0.2"] : healthyList()(name)));
    const { source, clock, logger } = makeList(
      resolver,
      config({}, { intervalMs: 300_000, window: 10, maxListedRatio: 0.5 }),
      { retryMs: 2_000, keyKinds: ["ip4"] },
    );
    source.start();
    await vi.advanceTimersByTimeAsync(0);
    const rounds = () => resolver.queries.filter((q) => q.startsWith("1.0.0.127.")).length;
    expect(rounds()).toBe(1);
    listAll = true;
    // The same key again and again is one distinct lookup: no trigger.
    for (let i = 0; i < 20; i++) await source.lookup("192.0.2.1", signal());
    expect(rounds()).toBe(1);
    // Ten distinct keys, all listed: over 50% of a full window.
    for (let i = 2; i <= 10; i++) await source.lookup(`192.0.2.${i}`, signal());
    await vi.advanceTimersByTimeAsync(0);
    expect(rounds()).toBe(2);
    expect(
      logger.lines.some((l) =>
        /10 of the last 10 distinct lookups in bl\.example were listed \(more than 50%\)/.test(l.message),
      ),
    ).toBe(true);
    expect(source.health().state).toBe("healthy");
    // The confirming round comes after retryMs, well before the next scheduled probe.
    await vi.advanceTimersByTimeAsync(2_000);
    expect(source.health().state).toBe("lists-everything");
    expect(await source.lookup("192.0.2.50", signal())).toEqual({ listed: false });
    expect(clock.now).toBe(1_000_000);
    await source.close();
  });

  it("counts a key once, and forgets the listed keys that leave the window", async () => {
    vi.useFakeTimers();
    const listed: Record<string, string[]> = {};
    for (const i of [1, 2, 7, 8]) listed[`${i}.2.0.192.${ZONE}`] = ["127.0.0.2"];
    const resolver = new FakeResolver(healthyList(listed));
    const { source } = makeList(resolver, config({}, { window: 4, maxListedRatio: 0.5 }), {
      keyKinds: ["ip4"],
    });
    source.start();
    await vi.advanceTimersByTimeAsync(0);
    const rounds = () => resolver.queries.filter((q) => q.startsWith("1.0.0.127.")).length;
    // .1 listed (asked again and again), .2 listed, .3 and .4 not: 2 of 4, not more than 50%.
    for (let i = 0; i < 10; i++) await source.lookup("192.0.2.1", signal());
    for (const i of [2, 3, 4]) await source.lookup(`192.0.2.${i}`, signal());
    await vi.advanceTimersByTimeAsync(0);
    expect(rounds()).toBe(1);
    // .5 and .6 push .1 and .2 out; .7 and .8 push .3 and .4 out: again 2 of 4.
    for (const i of [5, 6, 7, 8]) await source.lookup(`192.0.2.${i}`, signal());
    await vi.advanceTimersByTimeAsync(0);
    expect(rounds()).toBe(1);
    await source.close();
  });

  it("is rate-limited: at most one extra round per 30 s", async () => {
    vi.useFakeTimers();
    const listed: Record<string, string[]> = {};
    for (let i = 1; i <= 200; i++) listed[`${i}.2.0.192.${ZONE}`] = ["127.0.0.2"];
    const resolver = new FakeResolver(healthyList(listed));
    const { source, clock } = makeList(resolver, config({}, { window: 5, maxListedRatio: 0.9 }), {
      keyKinds: ["ip4"],
    });
    source.start();
    await vi.advanceTimersByTimeAsync(0);
    const rounds = () => resolver.queries.filter((q) => q.startsWith("1.0.0.127.")).length;
    for (let i = 1; i <= 20; i++) await source.lookup(`192.0.2.${i}`, signal());
    await vi.advanceTimersByTimeAsync(0);
    expect(rounds()).toBe(2);
    clock.now += 29_000;
    for (let i = 21; i <= 40; i++) await source.lookup(`192.0.2.${i}`, signal());
    await vi.advanceTimersByTimeAsync(0);
    expect(rounds()).toBe(2);
    clock.now += 1_000;
    for (let i = 41; i <= 45; i++) await source.lookup(`192.0.2.${i}`, signal());
    await vi.advanceTimersByTimeAsync(0);
    expect(rounds()).toBe(3);
    // A healthy list with a real spam wave stays healthy.
    expect(source.health().state).toBe("healthy");
    await source.close();
  });
});
