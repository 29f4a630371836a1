import { describe, expect, it } from "vitest";
import { ListMatcher } from "../../src/common/list-matcher.js";

describe("ListMatcher", () => {
  it("answers the entry as written, for words, addresses, IPs and ranges", () => {
    const list = new ListMatcher([" Example.ORG ", "Bob@Example.org", "2001:DB8::1", "192.0.2.0/24", ""]);
    expect(list.size).toBe(4);
    expect(list.find("example.org.")).toBe("Example.ORG");
    expect(list.find('"BOB"@example.ORG')).toBe("Bob@Example.org");
    expect(list.find("2001:db8:0:0::1")).toBe("2001:DB8::1");
    expect(list.find("::ffff:192.0.2.200")).toBe("192.0.2.0/24");
    expect(list.has("192.0.3.1")).toBe(false);
    expect(list.has("")).toBe(false);
  });

  it("a prefix too long for its family is a word, not a range", () => {
    const list = new ListMatcher(["192.0.2.0/33"]);
    expect(list.has("192.0.2.1")).toBe(false);
    expect(list.has("192.0.2.0/33")).toBe(true);
  });

  it("local parts keep their case under local_part: sensitive only when words are local parts", () => {
    const domains = new ListMatcher(["Bob"], { localPart: "sensitive" });
    const locals = new ListMatcher(["Bob"], { localPart: "sensitive", words: "localpart" });
    expect(domains.has("bob")).toBe(true);
    expect(locals.has("bob")).toBe(false);
    expect(locals.has("Bob")).toBe(true);
    expect(new ListMatcher(['"Bob Smith"'], { words: "localpart" }).has("bob smith")).toBe(true);
  });

  it("a network as a key (client.net) matches the range written as that network, in any spelling", () => {
    const list = new ListMatcher(["192.0.2.0/24", "2001:DB8:1:2:0::/64"]);
    expect(list.size).toBe(2);
    expect(list.has("192.0.2.0/24")).toBe(true);
    expect(list.has("2001:db8:1:2::/64")).toBe(true);
    expect(list.find("2001:db8:1:2::/64")).toBe("2001:DB8:1:2:0::/64");
    // Only the same network: a network inside a range is not that range (compare client.ip for that).
    expect(list.has("192.0.2.0/25")).toBe(false);
    expect(list.has("192.0.0.0/16")).toBe(false);
    expect(new ListMatcher(["example.org"]).has("192.0.2.0/24")).toBe(false);
  });
});
