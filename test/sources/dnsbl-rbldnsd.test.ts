/**
 * DNSBL sources against a real rbldnsd on loopback: every kind of list health (healthy, lists
 * everything, empty, Spamhaus error codes, answers outside 127/8, refusing with 127.0.0.1, a
 * domain list), lookups (codes, TXT reasons, IPv6, IPv4-mapped, domains), a DNS server that is
 * down or goes silent, and the circuit breaker's hysteresis and hit-rate trigger with zones
 * rewritten under rbldnsd (SIGHUP) to make a healthy list start listing everything.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { DnsblSourceConfig } from "../../src/sources/dnsbl.js";
import { createDnsblSource, type DnsblSourceOptions } from "../../src/sources/dnsbl.js";
import type { DnsblHealth, DnsblSource, SourceLogger } from "../../src/sources/types.js";
import {
  EVERYTHING_IP4,
  freeUdpPort,
  HEALTHY_IP4,
  type Rbldnsd,
  startRbldnsd,
  startUdpProxy,
  type UdpProxy,
  ZONES,
} from "../support/rbldnsd.js";

let rbldnsd: Rbldnsd;
const open: DnsblSource[] = [];

beforeAll(async () => {
  rbldnsd = await startRbldnsd();
});
afterAll(async () => {
  await rbldnsd?.stop();
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

interface Logged {
  level: string;
  message: string;
  fields: Record<string, unknown>;
}

function list(
  zone: string,
  options: {
    server?: string;
    codes?: string[];
    timeoutMs?: number;
    health?: Partial<DnsblSourceConfig["health"]>;
    source?: DnsblSourceOptions;
  } = {},
) {
  const config: DnsblSourceConfig = {
    name: zone.split(".")[0] as string,
    type: "dnsbl",
    kind: "dnsbl",
    zone,
    offset: 0,
    timeoutMs: options.timeoutMs ?? 500,
    onError: "continue",
    health: {
      intervalMs: 300_000,
      window: 50,
      maxListedRatio: 0.9,
      requirePositiveProbe: true,
      ...options.health,
    },
  };
  if (options.codes !== undefined) config.codes = options.codes;
  const logs: Logged[] = [];
  const at = (level: string) => (fields: object, message: string) =>
    logs.push({ level, message, fields: fields as Record<string, unknown> });
  const logger: SourceLogger = { info: at("info"), warn: at("warn"), error: at("error") };
  const source = createDnsblSource(
    config,
    { configPath: "/etc/filterctl/rules.yaml", dnsServers: [options.server ?? rbldnsd.server], logger },
    options.source,
  );
  const changes: { at: number; health: DnsblHealth; previous: DnsblHealth }[] = [];
  source.onStateChange = (health, previous) => changes.push({ at: Date.now(), health, previous });
  open.push(source);
  return { source, logs, changes };
}

const signal = () => AbortSignal.timeout(5_000);

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("probing real lists", () => {
  it.each([
    [
      ZONES.healthy,
      "healthy",
      /bl\.test answers its test points correctly \(127\.0\.0\.1 not listed, .* not listed, 127\.0\.0\.2 listed/,
    ],
    [
      ZONES.everything,
      "lists-everything",
      /answers 'listed' \(127\.0\.0\.2\) for 127\.0\.0\.1.*lists everything \(like ORDB in 2008\)/,
    ],
    [ZONES.empty, "dead", /does not list its test point 127\.0\.0\.2/],
    [ZONES.spamhausError, "refused", /answers 127\.255\.255\.254 .*public or open resolver.*Spamhaus DQS/],
    [ZONES.parked, "refused", /answers 198\.51\.100\.7 .*outside 127\.0\.0\.0\/8/],
    [ZONES.refusing, "refused", /answers 127\.0\.0\.1 for 127\.0\.0\.1 .*refuse queries/],
    [ZONES.domains, "healthy", /INVALID not listed, TEST listed/],
  ])("%s is %s", async (zone, state, detail) => {
    const { source, logs, changes } = list(zone);
    expect(source.health().state).toBe("unknown");
    const health = await source.probe();
    expect(health.state).toBe(state);
    expect(health.detail).toMatch(detail);
    expect(changes.map((c) => `${c.previous.state}->${c.health.state}`)).toEqual([`unknown->${state}`]);
    expect(logs).toContainEqual({
      level: state === "healthy" ? "info" : "warn",
      message: health.detail,
      fields: { source: zone.split(".")[0], zone, state, previous: "unknown" },
    });
  });

  it("asks the IPv6 test points in nibble form (rbldnsd answers ::FFFF:7F00:2 from its IPv4 data)", async () => {
    const { source } = list(ZONES.healthy, { source: { keyKinds: ["ip4", "ip6"] } });
    const health = await source.probe();
    expect(health.state).toBe("healthy");
    expect(health.detail).toMatch(/::FFFF:7F00:1 not listed, ::FFFF:7F00:2 listed/);
    const everything = list(ZONES.everything, { source: { keyKinds: ["ip6"] } });
    const bad = await everything.source.probe();
    expect(bad.state).toBe("lists-everything");
    expect(bad.detail).toMatch(/for ::FFFF:7F00:1/);
  });

  it("require_positive_probe: false accepts the empty list", async () => {
    const { source } = list(ZONES.empty, { health: { requirePositiveProbe: false } });
    expect((await source.probe()).state).toBe("healthy");
  });
});

describe("lookups on real lists", () => {
  it("IPv4 clients: listed with the code and the TXT reason; unlisted clients are not", async () => {
    const { source } = list(ZONES.healthy);
    await source.probe();
    expect(await source.lookup("127.0.0.5", signal())).toEqual({
      listed: true,
      code: "127.0.0.2",
      codes: ["127.0.0.2"],
      reason: "Client 127.0.0.5 sent spam to our traps",
    });
    expect(await source.lookup("192.0.2.1", signal())).toEqual({ listed: false });
    // Two datasets answer for 127.0.0.20: two A records (both kept) and two TXT records.
    expect(await source.lookup("127.0.0.20", signal())).toEqual({
      listed: true,
      code: "127.0.0.4",
      codes: ["127.0.0.4", "127.0.0.10"],
      reason: "Exploited host; Policy listing",
    });
    const long = await source.lookup("127.0.0.6", signal());
    expect(long.listed).toBe(true);
    expect(long.reason?.length).toBe(200);
    // The IPv4-mapped form of a listed client is asked as IPv4.
    expect((await source.lookup("::ffff:127.0.0.5", signal())).listed).toBe(true);
  });

  it("error codes and answers outside 127/8 are never listings", async () => {
    const { source, logs } = list(ZONES.healthy, { source: { extraRoundMinIntervalMs: 60_000 } });
    source.start();
    await until(() => source.health().state === "healthy", 5_000, "healthy");
    expect(await source.lookup("127.0.0.8", signal())).toEqual({ listed: false });
    expect(await source.lookup("127.0.0.9", signal())).toEqual({ listed: false });
    expect(
      logs.some((l) => /answered 127\.255\.255\.254 for 127\.0\.0\.8 .*probing bl\.test now/.test(l.message)),
    ).toBe(true);
    // The probe it triggered finds the list healthy: only those entries are broken.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(source.health().state).toBe("healthy");
  });

  it("codes choose which answers count", async () => {
    const { source } = list(ZONES.healthy, { codes: ["127.0.0.10-127.0.0.11"] });
    // Test points are judged without codes: 127.0.0.2 is listed, so the list is healthy.
    expect((await source.probe()).state).toBe("healthy");
    expect(await source.lookup("127.0.0.20", signal())).toMatchObject({
      listed: true,
      code: "127.0.0.10",
      codes: ["127.0.0.10"],
    });
    expect(await source.lookup("127.0.0.5", signal())).toEqual({ listed: false });
    const xbl = list(ZONES.healthy, { codes: ["127.0.0.4"] });
    await xbl.source.probe();
    expect(await xbl.source.lookup("127.0.0.20", signal())).toMatchObject({
      listed: true,
      code: "127.0.0.4",
    });
  });

  it("IPv6 clients: looked up once the IPv6 test points answered", async () => {
    const { source } = list(ZONES.healthy);
    source.start();
    await until(() => source.health().state === "healthy", 5_000, "healthy");
    expect(await source.lookup("2001:db8:1::5", signal())).toEqual({ listed: false });
    let answer = await source.lookup("2001:db8:1::5", signal());
    const deadline = Date.now() + 5_000;
    while (!answer.listed && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      answer = await source.lookup("2001:db8:1::5", signal());
    }
    expect(answer).toEqual({
      listed: true,
      code: "127.0.0.2",
      codes: ["127.0.0.2"],
      reason: "IPv6 client listed",
    });
    expect(source.health().detail).toMatch(/::FFFF:7F00:2 listed/);
    expect(await source.lookup("2001:db8:1::6", signal())).toEqual({ listed: false });
  });

  it("domains in a domain list (RHSBL/DBL)", async () => {
    const { source } = list(ZONES.domains);
    expect((await source.probe()).state).toBe("healthy");
    expect(await source.lookup("Spammer.EXAMPLE.", signal())).toEqual({
      listed: true,
      code: "127.0.0.2",
      codes: ["127.0.0.2"],
      reason: "spammer.example sends spam",
    });
    expect(await source.lookup("x.bad.example", signal())).toMatchObject({ listed: true, code: "127.0.0.3" });
    expect((await source.lookup("bücher.example", signal())).listed).toBe(true);
    expect(await source.lookup("bad.example", signal())).toEqual({ listed: false });
    expect(await source.lookup("good.example", signal())).toEqual({ listed: false });
    // This list answers 127.0.1.255 ("IP queried in a domain list") to IPs: never a listing.
    expect(await source.lookup("127.0.0.2", signal())).toEqual({ listed: false });
  });

  it.each([ZONES.everything, ZONES.empty, ZONES.spamhausError, ZONES.parked, ZONES.refusing])(
    "%s is off: lookups answer not listed",
    async (zone) => {
      const { source } = list(zone);
      expect((await source.probe()).state).not.toBe("healthy");
      for (const key of ["127.0.0.2", "127.0.0.5", "192.0.2.1", "2001:db8::1", "spammer.example"]) {
        expect(await source.lookup(key, signal())).toEqual({ listed: false });
      }
    },
  );
});

describe("a DNS server that is down or silent", () => {
  it("nothing on the port: dead at once, lookups answer not listed without waiting", async () => {
    const port = await freeUdpPort();
    const { source } = list(ZONES.healthy, { server: `127.0.0.1:${port}` });
    const started = Date.now();
    const health = await source.probe();
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(health.state).toBe("dead");
    expect(health.detail).toMatch(
      new RegExp(
        `does not answer \\(connection refused.*asking 127\\.0\\.0\\.1:${port}\\).*Check dns\\.servers`,
      ),
    );
    const t = Date.now();
    expect(await source.lookup("127.0.0.5", signal())).toEqual({ listed: false });
    expect(Date.now() - t).toBeLessThan(50);
  });

  describe("behind a relay that goes silent", () => {
    let proxy: UdpProxy;
    beforeAll(async () => {
      proxy = await startUdpProxy(rbldnsd);
    });
    afterAll(async () => {
      await proxy.close();
    });

    it("lookups are bounded by the timeout and never listed; two silent rounds make it dead", async () => {
      proxy.blackHole = false;
      const { source } = list(ZONES.healthy, { server: proxy.server, timeoutMs: 300 });
      expect((await source.probe()).state).toBe("healthy");
      expect((await source.lookup("127.0.0.5", signal())).listed).toBe(true);
      proxy.blackHole = true;
      const t0 = Date.now();
      await expect(source.lookup("127.0.0.7", signal())).rejects.toThrow(
        /bl\.test: 7\.0\.0\.127\.bl\.test: no answer/,
      );
      const elapsed = Date.now() - t0;
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(1_000);
      // One silent round does not trip it ("one timeout does not trip it")...
      const t1 = Date.now();
      expect((await source.probe()).state).toBe("healthy");
      expect(Date.now() - t1).toBeLessThan(1_000);
      // ...the second does.
      const dead = await source.probe();
      expect(dead.state).toBe("dead");
      expect(dead.detail).toMatch(/does not answer \(no answer within 300 ms/);
      const t2 = Date.now();
      expect(await source.lookup("127.0.0.5", signal())).toEqual({ listed: false });
      expect(Date.now() - t2).toBeLessThan(50);
      proxy.blackHole = false;
    });
  });
});

describe("circuit breaker on a list that starts listing everything (rbldnsd reloads on SIGHUP)", () => {
  afterEach(async () => {
    await rbldnsd.update("flip.zone", HEALTHY_IP4);
  });

  it("two failed rounds switch it off, three healthy rounds bring it back", async () => {
    const { source, changes, logs } = list(ZONES.flip);
    expect((await source.probe()).state).toBe("healthy");
    expect((await source.lookup("192.0.2.1", signal())).listed).toBe(false);

    await rbldnsd.update("flip.zone", EVERYTHING_IP4);
    expect((await source.probe()).state).toBe("healthy");
    expect(logs.at(-1)?.message).toMatch(
      /flip\.test failed a probe round \(lists-everything\): it stays in use/,
    );
    // Still in use between the two rounds, so the world is listed for that short while.
    expect((await source.lookup("192.0.2.1", signal())).listed).toBe(true);
    const off = await source.probe();
    expect(off.state).toBe("lists-everything");
    expect(off.detail).toMatch(/flip\.test answers 'listed' \(127\.0\.0\.2\) for 127\.0\.0\.1/);
    expect(await source.lookup("192.0.2.2", signal())).toEqual({ listed: false });

    await rbldnsd.update("flip.zone", HEALTHY_IP4);
    expect((await source.probe()).state).toBe("lists-everything");
    expect((await source.probe()).state).toBe("lists-everything");
    expect(await source.lookup("127.0.0.5", signal())).toEqual({ listed: false });
    const back = await source.probe();
    expect(back.state).toBe("healthy");
    expect(back.detail).toMatch(/it is in use again/);
    expect((await source.lookup("127.0.0.5", signal())).listed).toBe(true);
    expect(changes.map((c) => c.health.state)).toEqual(["healthy", "lists-everything", "healthy"]);
  });

  it("in the background: scheduled probes trip it and bring it back", async () => {
    const { source, changes } = list(ZONES.flip, {
      health: { intervalMs: 300 },
      source: { retryMs: 100 },
    });
    source.start();
    await until(() => source.health().state === "healthy", 5_000, "healthy");
    await rbldnsd.update("flip.zone", EVERYTHING_IP4);
    const flipped = Date.now();
    await until(() => source.health().state === "lists-everything", 5_000, "lists-everything");
    // At most one interval to the first failed round, then retryMs to the second.
    expect(Date.now() - flipped).toBeLessThan(300 + 100 + 500);
    await rbldnsd.update("flip.zone", HEALTHY_IP4);
    const fixed = Date.now();
    await until(() => source.health().state === "healthy", 5_000, "healthy again");
    // Three rounds at the normal interval.
    expect(Date.now() - fixed).toBeGreaterThanOrEqual(2 * 300);
    expect(changes.map((c) => c.health.state)).toEqual(["healthy", "lists-everything", "healthy"]);
  });

  it("the hit rate triggers a probe at once: detected between two scheduled probes", async () => {
    const { source, changes, logs } = list(ZONES.flip, {
      health: { intervalMs: 3_600_000, window: 20, maxListedRatio: 0.9 },
      source: { retryMs: 200 },
    });
    source.start();
    await until(() => source.health().state === "healthy", 5_000, "healthy");
    await rbldnsd.update("flip.zone", EVERYTHING_IP4);
    const flipped = Date.now();
    let listed = 0;
    for (let i = 1; i <= 20; i++) if ((await source.lookup(`203.0.113.${i}`, signal())).listed) listed++;
    expect(listed).toBe(20);
    expect(
      logs.some((l) =>
        /20 of the last 20 distinct lookups in flip\.test were listed \(more than 90%\)/.test(l.message),
      ),
    ).toBe(true);
    await until(() => source.health().state === "lists-everything", 5_000, "lists-everything");
    expect(Date.now() - flipped).toBeLessThan(3_000);
    expect(changes.map((c) => c.health.state)).toEqual(["healthy", "lists-everything"]);
    for (let i = 21; i <= 30; i++)
      expect(await source.lookup(`203.0.113.${i}`, signal())).toEqual({ listed: false });
  });
});
