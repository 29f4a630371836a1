/**
 * CIDR ranges matched in JavaScript, by network: for each prefix length in use, the masked
 * address is looked up in a map. node:net's BlockList answers the same, but every range added
 * and every address checked makes a SocketAddress, an object backed by C++ that the garbage
 * collector must track: validating 10,000 rules spent about a tenth of its CPU there, and each
 * list lookup of a client address paid one.
 *
 * Addresses are matched as node:net matches them: IPv4 dotted quads, IPv6 in any spelling, a zone
 * index (`fe80::1%eth0`) ignored, and an IPv4 address as its IPv4-mapped IPv6 address too
 * (`192.0.2.5` is in `::ffff:192.0.2.0/120`, and `::ffff:192.0.2.5` in `192.0.2.0/24`).
 */
import { isIP } from "node:net";
import { ipv4Number } from "./ip.js";

/** A range as added: its text as written, and its order (the first range added is the one found). */
interface Range {
  order: number;
  text: string;
}

/** The four 32-bit words of an IPv6 address, or undefined for text that is not one. */
function ipv6Words(ip: string): number[] | undefined {
  const zone = ip.indexOf("%");
  let text = zone === -1 ? ip : ip.slice(0, zone);
  const groups: number[] = [];
  const lastColon = text.lastIndexOf(":");
  const tail = text.slice(lastColon + 1);
  if (tail.includes(".")) {
    const v4 = ipv4Number(tail);
    if (v4 === undefined) return undefined;
    text = `${text.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const [head = "", rest] = text.split("::");
  const parse = (part: string) => (part === "" ? [] : part.split(":").map((g) => Number.parseInt(g, 16)));
  const before = parse(head);
  const after = rest === undefined ? [] : parse(rest);
  const zeros = 8 - before.length - after.length;
  if (rest === undefined ? zeros !== 0 : zeros < 1) return undefined;
  groups.push(...before, ...Array<number>(rest === undefined ? 0 : zeros).fill(0), ...after);
  if (groups.some((g) => !(g >= 0 && g <= 0xffff))) return undefined;
  return [0, 2, 4, 6].map((i) => (((groups[i] as number) << 16) | (groups[i + 1] as number)) >>> 0);
}

/** Whether text may be an IPv6 address (node:net says whether it is): every one has a colon. */
function isIpv6(ip: string): boolean {
  return ip.includes(":") && isIP(ip) === 6;
}

/** The top `bits` bits (0–32) of a word. */
function maskWord(word: number, bits: number): number {
  if (bits <= 0) return 0;
  if (bits >= 32) return word;
  return (word & (0xffffffff << (32 - bits))) >>> 0;
}

function ipv6Key(words: readonly number[], prefix: number): string {
  return words.map((w, i) => maskWord(w, prefix - 32 * i)).join(":");
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d), or undefined. */
function mappedIpv4(words: readonly number[]): number | undefined {
  return words[0] === 0 && words[1] === 0 && words[2] === 0xffff ? words[3] : undefined;
}

export class IpRanges {
  private readonly v4 = new Map<number, Map<number, Range>>();
  private readonly v6 = new Map<number, Map<string, Range>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds `network/prefix`; false (nothing added) when it is not an IP range. */
  add(network: string, prefix: number, text: string): boolean {
    const range = { order: this.count, text };
    const v4 = ipv4Number(network);
    if (v4 !== undefined) {
      if (!(Number.isInteger(prefix) && prefix >= 0 && prefix <= 32)) return false;
      this.count++;
      addTo(this.v4, prefix, maskWord(v4, prefix), range);
      return true;
    }
    const words = isIpv6(network) ? ipv6Words(network) : undefined;
    if (words === undefined || !(Number.isInteger(prefix) && prefix >= 0 && prefix <= 128)) return false;
    this.count++;
    addTo(this.v6, prefix, ipv6Key(words, prefix), range);
    return true;
  }

  /** Whether an address is in one of the ranges. */
  has(ip: string): boolean {
    return this.first(ip, false) !== undefined;
  }

  /** The first range added that holds the address, as written, or undefined. */
  find(ip: string): string | undefined {
    return this.first(ip, true)?.text;
  }

  /** The range holding the address, as IPv4 and as IPv6 (an IPv4 address is also ::ffff:a.b.c.d). */
  private first(ip: string, earliest: boolean): Range | undefined {
    let v4 = ipv4Number(ip);
    let words: readonly number[] | undefined;
    if (v4 !== undefined) {
      if (this.v6.size > 0) words = [0, 0, 0xffff, v4];
    } else {
      words = isIpv6(ip) ? ipv6Words(ip) : undefined;
      if (words === undefined) return undefined;
      v4 = mappedIpv4(words);
    }
    const asV4 = v4 === undefined ? undefined : firstIn(this.v4, (prefix) => maskWord(v4, prefix), earliest);
    if (asV4 !== undefined && !earliest) return asV4;
    const asV6 =
      words === undefined ? undefined : firstIn(this.v6, (prefix) => ipv6Key(words, prefix), earliest);
    if (asV4 === undefined || asV6 === undefined) return asV4 ?? asV6;
    return asV4.order <= asV6.order ? asV4 : asV6;
  }
}

function addTo<K>(byPrefix: Map<number, Map<K, Range>>, prefix: number, key: K, range: Range): void {
  let networks = byPrefix.get(prefix);
  if (networks === undefined) {
    networks = new Map();
    byPrefix.set(prefix, networks);
  }
  // The first range written for a network is the one found.
  if (!networks.has(key)) networks.set(key, range);
}

/** The matching range: any (has), or the earliest added (find). */
function firstIn<K>(
  byPrefix: Map<number, Map<K, Range>>,
  keyAt: (prefix: number) => K,
  earliest: boolean,
): Range | undefined {
  let found: Range | undefined;
  for (const [prefix, networks] of byPrefix) {
    const range = networks.get(keyAt(prefix));
    if (range === undefined || (found !== undefined && found.order <= range.order)) continue;
    if (!earliest) return range;
    found = range;
  }
  return found;
}
