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
