/**
 * IP addresses as text: one spelling each, whatever the client or the configuration wrote.
 */
import { isIP } from "node:net";

/**
 * One spelling per address, so text comparisons and exact table keys agree: IPv6 in its RFC 5952
 * form (`2001:DB8:0::1` → `2001:db8::1`), and IPv4-mapped IPv6 (`::ffff:192.0.2.1`, the way a
 * dual-stack listener sees an IPv4 client) as the IPv4 address. Anything else is left as it is.
 */
export function canonicalIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
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
