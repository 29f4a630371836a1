/**
 * IP addresses as text: one spelling each, whatever the client or the configuration wrote.
 */
import { isIP } from "node:net";

/**
 * An IPv4 dotted quad as an unsigned 32-bit number, or undefined: what node:net's isIPv4
 * accepts (four decimal parts of 0–255, no leading zero, nothing else), read by character
 * codes. isIP's regular expressions (and, for text that is no IPv4 address, its IPv6 one) were
 * most of the cost of a list lookup of a mail address.
 */
export function ipv4Number(ip: string): number | undefined {
  const length = ip.length;
  if (length < 7 || length > 15) return undefined;
  let value = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = 0; i <= length; i++) {
    const c = i === length ? 46 : ip.charCodeAt(i);
    if (c === 46) {
      // A part is 1–3 digits, at most 255, and "0" is the only one that may start with 0.
      if (digits === 0 || part > 255 || (digits > 1 && ip.charCodeAt(i - digits) === 48)) return undefined;
      value = value * 256 + part;
      parts++;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      part = part * 10 + (c - 48);
      digits++;
    } else {
      return undefined;
    }
  }
  return parts === 4 ? value : undefined;
}

/**
 * node:net's isIP, without its regular expressions where they are not needed: an IPv6 address
 * has a colon, and an IPv4 one is read by ipv4Number. A table lookup asks this of every key.
 */
export function ipFamily(text: string): 0 | 4 | 6 {
  if (text.includes(":")) return isIP(text) === 6 ? 6 : 0;
  return ipv4Number(text) === undefined ? 0 : 4;
}

/**
 * One spelling per address, so text comparisons and exact table keys agree: IPv6 in its RFC 5952
 * form (`2001:DB8:0::1` → `2001:db8::1`), and IPv4-mapped IPv6 (`::ffff:192.0.2.1`, the way a
 * dual-stack listener sees an IPv4 client) as the IPv4 address. Anything else is left as it is.
 */
export function canonicalIp(ip: string): string {
  if (!ip.includes(":") || isIP(ip) !== 6) return ip;
  let canonical: string;
  try {
    canonical = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return ip.toLowerCase(); // e.g. with a zone index (fe80::1%eth0), which URLs do not take
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (mapped === null) return canonical;
  const high = Number.parseInt(mapped[1] as string, 16);
  const low = Number.parseInt(mapped[2] as string, 16);
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

/**
 * The network an address belongs to, as a CIDR text: the /24 of an IPv4 address
 * (`192.0.2.0/24`), the /64 of an IPv6 one in its canonical form (`2001:db8:1:2::/64`), an
 * IPv4-mapped IPv6 address as IPv4. A client that is no IP address (a unix socket, an unknown
 * family) has none: "". Greylisting keys on it: a sender's pool of outgoing servers usually
 * shares one, and an IPv6 host often changes its address inside its /64.
 */
export function networkOf(ip: string): string {
  const zoneless = ip.includes("%") ? ip.slice(0, ip.indexOf("%")) : ip;
  const address = canonicalIp(zoneless);
  const family = isIP(address);
  if (family === 4) return `${address.slice(0, address.lastIndexOf("."))}.0/24`;
  if (family !== 6) return "";
  const [head = "", tail = ""] = address.split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === "" ? [] : tail.split(":");
  const groups = address.includes("::")
    ? [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill("0"), ...tailGroups]
    : headGroups;
  return `${canonicalIp(`${groups.slice(0, 4).join(":")}::`)}/64`;
}
