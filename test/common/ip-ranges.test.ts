import { BlockList, isIP, isIPv4 } from "node:net";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ipFamily, ipv4Number } from "../../src/common/ip.js";
import { IpRanges } from "../../src/common/ip-ranges.js";

const familyOf = (ip: string) => (isIP(ip) === 6 ? "ipv6" : "ipv4");

/** Node's own answer, the one IpRanges replaces: the first range whose BlockList holds the address. */
function blockListFind(ranges: readonly [string, number][], ip: string): string | undefined {
  for (const [network, prefix] of ranges) {
    const list = new BlockList();
    list.addSubnet(network, prefix, familyOf(network));
    if (list.check(ip, familyOf(ip))) return `${network}/${prefix}`;
  }
  return undefined;
}

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join("."));
const group = fc.oneof(fc.constant(0), fc.constant(0xffff), fc.nat(0xffff));
/** IPv6 in the spellings a postmaster writes: full, compressed, upper case, IPv4-mapped, with a zone. */
const v6 = fc
  .tuple(fc.array(group, { minLength: 8, maxLength: 8 }), fc.nat(5), v4)
  .map(([groups, form, quad]) => {
    const hex = groups.map((g) => g.toString(16));
    switch (form) {
      case 0:
        return hex.join(":");
      case 1:
        return new URL(`http://[${hex.join(":")}]/`).hostname.slice(1, -1);
      case 2:
        return hex.join(":").toUpperCase();
      case 3:
        return `::ffff:${quad}`;
      case 4:
        return `${hex.slice(0, 6).join(":")}:${quad}`;
      default:
        return `fe80::${hex[7]}%eth0`;
    }
  });
/** An address near `ip`: its last octet or group changed in its low bits (`flip`), same spelling. */
function near(ip: string, flip: number): string {
  const zone = ip.indexOf("%");
  const bare = zone === -1 ? ip : ip.slice(0, zone);
  const cut = Math.max(bare.lastIndexOf("."), bare.lastIndexOf(":"));
  const last = bare.slice(cut + 1);
  if (last === "") return ip;
  const value = bare[cut] === "." ? Number(last) ^ (flip & 0xff) : Number.parseInt(last, 16) ^ flip;
  return `${bare.slice(0, cut + 1)}${bare[cut] === "." ? value : value.toString(16)}${ip.slice(bare.length)}`;
}

const range = fc.oneof(
  v4.chain((ip) => fc.tuple(fc.constant(ip), fc.integer({ min: 0, max: 32 }))),
  v6.chain((ip) => fc.tuple(fc.constant(ip), fc.integer({ min: 0, max: 128 }))),
);

describe("IpRanges", () => {
  it("answers as node:net's BlockList does, for addresses near the ranges and anywhere", () => {
    fc.assert(
      fc.property(
        fc.array(range, { minLength: 1, maxLength: 6 }),
        fc.array(fc.oneof(v4, v6), { maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 0xffff }), { minLength: 6, maxLength: 6 }),
        (ranges, others, flips) => {
          const ours = new IpRanges();
          for (const [network, prefix] of ranges)
            expect(ours.add(network, prefix, `${network}/${prefix}`)).toBe(true);
          // The networks themselves are inside their ranges: every range gets a key that matches.
          const nearby = ranges.map(([network], i) => near(network, flips[i] as number));
          for (const ip of [...ranges.map(([network]) => network), ...nearby, ...others]) {
            const theirs = blockListFind(ranges, ip);
            expect({ ip, found: ours.find(ip) }).toEqual({ ip, found: theirs });
            expect(ours.has(ip)).toBe(theirs !== undefined);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("matches IPv4 and IPv4-mapped IPv6 both ways, and the first range written is the one found", () => {
    const ranges = new IpRanges();
    ranges.add("2001:db8::", 32, "docs");
    ranges.add("::ffff:192.0.2.0", 120, "mapped");
    ranges.add("192.0.2.0", 24, "v4");
    ranges.add("::", 0, "everything");
    expect(ranges.find("192.0.2.7")).toBe("mapped");
    expect(ranges.find("::FFFF:c000:0207")).toBe("mapped");
    expect(ranges.find("2001:DB8:1::1")).toBe("docs");
    expect(ranges.find("198.51.100.1")).toBe("everything");
    expect(ranges.size).toBe(4);
  });

  it("refuses what is not a range, and never matches text that is no address", () => {
    const ranges = new IpRanges();
    expect(ranges.add("192.0.2.0", 33, "x")).toBe(false);
    expect(ranges.add("2001:db8::", 129, "x")).toBe(false);
    expect(ranges.add("example.org", 8, "x")).toBe(false);
    expect(ranges.add("192.0.2.0", 1.5, "x")).toBe(false);
    expect(ranges.size).toBe(0);
    ranges.add("0.0.0.0", 0, "all v4");
    for (const key of ["", "example.org", "192.0.2", "1.2.3.4.5", "::g", "1:2:3:4:5:6:7:8:9", "01.2.3.4"])
      expect(ranges.has(key)).toBe(false);
    expect(ranges.has("203.0.113.9")).toBe(true);
  });

  it("reads an IPv4 address exactly as node:net's isIPv4 accepts one, whatever the text", () => {
    const piece = fc.oneof(
      fc.constantFrom(
        "::",
        "ffff",
        "db8",
        "%eth0",
        ".",
        "0",
        "00",
        "01",
        "1",
        "9",
        "25",
        "255",
        "256",
        "300",
        "999",
        "1000",
        ":",
        " ",
        "a",
        "%",
        "-",
        "+",
      ),
      fc.nat(300).map(String),
    );
    const text = fc.oneof(
      fc.array(piece, { maxLength: 9 }).map((p) => p.join("")),
      fc.tuple(piece, piece, piece, piece).map((p) => p.join(".")),
      fc.string({ maxLength: 16 }),
    );
    fc.assert(
      fc.property(text, (ip) => {
        const number = ipv4Number(ip);
        expect(number !== undefined).toBe(isIPv4(ip));
        expect(ipFamily(ip)).toBe(isIP(ip));
        if (number !== undefined)
          expect(number).toBe(ip.split(".").reduce((n, part) => n * 256 + Number(part), 0));
      }),
      { numRuns: 20_000 },
    );
    for (const ip of ["0.0.0.0", "255.255.255.255", "1.2.3.4"]) expect(ipv4Number(ip)).toBeDefined();
    for (const ip of ["1.2.3.04", "1.2.3.4.", ".1.2.3.4", "1..2.3", "1.2.3.256", "1.2.3.4 ", "１.2.3.4"])
      expect(ipv4Number(ip)).toBeUndefined();
  });
});
