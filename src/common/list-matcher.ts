/**
 * "Is X in this list": the one answer for literal lists in rules (`helo in ["mx.example.org"]`)
 * and for `list` sources, so the same entry matches the same keys wherever it is written.
 *
 * Entries and keys are read alike:
 * - IP addresses in one spelling (common/ip: IPv6 in any case or form, `::ffff:192.0.2.1` is
 *   `192.0.2.1`), and CIDR ranges (`192.0.2.0/24`, `2001:db8::/32`) that match the IPs inside;
 * - anything with `@` is an address, normalised as the rules compare addresses (common/address:
 *   domain folded, needless quotes dropped, local part folded unless `local_part: sensitive`);
 * - other words are domains (case folded, one trailing dot dropped): `MX.Example.org.` is
 *   `mx.example.org`; or, for a list a rule compares local parts with, local parts.
 */
import { type LocalPartMode, normalizeAddress, normalizeDomain, normalizeLocalContent } from "./address.js";
import { canonicalIp, ipFamily } from "./ip.js";
import { IpRanges } from "./ip-ranges.js";

export interface ListMatcherOptions {
  /** How addresses' local parts compare (`defaults.local_part`); insensitive by default. */
  localPart?: LocalPartMode;
  /**
   * What a plain word is: a domain (the default, and a list source's reading), or a local part
   * (a rule's `rcpt.local in [...]`, which then keeps case under `local_part: sensitive`).
   */
  words?: "domain" | "localpart";
}

export class ListMatcher {
  /** Normalised entry → the entry as written (what `TABLE[X]` answers). */
  private readonly exact = new Map<string, string>();
  private readonly ranges = new IpRanges();
  /** A range's canonical text → the entry as written: a network as a key (client.net) is that entry. */
  private readonly rangeTexts = new Map<string, string>();
  private readonly localPart: LocalPartMode;
  private readonly word: (text: string) => string;

  constructor(items: readonly string[] = [], options: ListMatcherOptions = {}) {
    const localPart = options.localPart ?? "insensitive";
    this.localPart = localPart;
    this.word =
      options.words === "localpart" ? (text) => normalizeLocalContent(text, localPart) : normalizeDomain;
    this.add(items);
  }

  /** Adds entries; blank ones are skipped, and a `/N` beyond the family's bits is a word. */
  add(items: readonly string[]): void {
    for (const raw of items) {
      const item = raw.trim();
      if (item === "") continue;
      const slash = item.indexOf("/");
      const [network, prefix] = [item.slice(0, slash), Number(item.slice(slash + 1))];
      // A prefix beyond the family's bits (or text that is no IP) is not a range: a word.
      if (slash !== -1 && this.ranges.add(network, prefix, item)) {
        this.rangeTexts.set(cidrText(network, prefix), item);
      } else {
        this.exact.set(this.normalize(item), item);
      }
    }
  }

  get size(): number {
    return this.exact.size + this.ranges.size;
  }

  /** The one spelling of a key or entry, by its kind (address, IP, word). */
  normalize(key: string): string {
    if (key.includes("@")) return normalizeAddress(key, this.localPart);
    if (ipFamily(key) !== 0) return canonicalIp(key.toLowerCase());
    return this.word(key);
  }

  /** Whether `key` matches an entry (the per-message path: each test made once, no entry text looked for). */
  has(key: string): boolean {
    if (key.includes("@")) return this.exact.has(normalizeAddress(key, this.localPart));
    const family = ipFamily(key);
    if (family === 0) return this.exact.has(this.word(key)) || this.rangeTexts.has(this.asRange(key));
    const ip = family === 4 ? key : canonicalIp(key.toLowerCase());
    if (this.exact.has(ip)) return true;
    return this.ranges.size > 0 && this.ranges.has(ip);
  }

  /** The entry that matches `key`, as written, or undefined. */
  find(key: string): string | undefined {
    const found = this.exact.get(this.normalize(key)) ?? this.rangeTexts.get(this.asRange(key));
    // IpRanges answers undefined for a key that is no IP address.
    if (found !== undefined || this.ranges.size === 0) return found;
    return this.ranges.find(canonicalIp(key));
  }

  /** A key written as a network (`2001:DB8:0::/64`) in the spelling of rangeTexts' keys, else "". */
  private asRange(key: string): string {
    if (this.rangeTexts.size === 0) return "";
    const slash = key.indexOf("/");
    return slash === -1 || ipFamily(key.slice(0, slash)) === 0
      ? ""
      : cidrText(key.slice(0, slash), Number(key.slice(slash + 1)));
  }
}

function cidrText(ip: string, prefix: number): string {
  return `${canonicalIp(ip.toLowerCase())}/${prefix}`;
}
