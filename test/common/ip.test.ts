/**
 * An address's network (client.net): the /24 of IPv4, the /64 of IPv6 in its canonical form,
 * IPv4-mapped IPv6 as IPv4, and "" for what is no IP address.
 */
import { describe, expect, it } from "vitest";
import { networkOf } from "../../src/common/ip.js";

describe("networkOf", () => {
  it.each([
    ["192.0.2.7", "192.0.2.0/24"],
    ["192.0.2.0", "192.0.2.0/24"],
    ["10.1.2.255", "10.1.2.0/24"],
    ["0.0.0.0", "0.0.0.0/24"],
    // IPv4-mapped IPv6, as a dual-stack listener sees an IPv4 client, in either spelling.
    ["::ffff:192.0.2.7", "192.0.2.0/24"],
    ["::FFFF:c000:0207", "192.0.2.0/24"],
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
    ["2001:DB8:0001:0002:0:0:0:1", "2001:db8:1:2::/64"],
    ["2001:db8:1:2::", "2001:db8:1:2::/64"],
    ["2001:db8::1", "2001:db8::/64"],
    ["2001:0:0:1::5", "2001:0:0:1::/64"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4::/64"],
    ["::1", "::/64"],
    ["::", "::/64"],
    ["::1.2.3.4", "::/64"],
    ["fe80::1%eth0", "fe80::/64"],
  ])("%s → %s", (ip, net) => {
    expect(networkOf(ip)).toBe(net);
  });

  it.each([
    [""], // a unix-socket or unknown-family client: the MTA sends no address
    ["/var/run/postfix/smtpd"],
    ["localhost"],
    ["192.0.2.256"],
    ["2001:db8::1::2"],
    ["192.0.2.0/24"],
  ])("%j is no IP address: no network", (text) => {
    expect(networkOf(text)).toBe("");
  });
});
