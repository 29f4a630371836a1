import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  bareAddress,
  formatLocalPart,
  isDotAtom,
  localPartContent,
  normalizeAddress,
  normalizeAddressParts,
  normalizeDomain,
  normalizeLocalContent,
  splitAddress,
  withoutDetail,
} from "../../src/common/address.js";

describe("bareAddress: what the MTA sends after MAIL FROM and RCPT TO", () => {
  it.each([
    ["<Bob@Example.ORG>", "Bob@Example.ORG"],
    ["  < bob@example.org >  ", "bob@example.org"],
    ["bob@example.org", "bob@example.org"],
    ["<>", ""],
    ["< >", ""],
    ["", ""],
    ['<"Bob"@Example.ORG>', '"Bob"@Example.ORG'],
    ["<@relay.example,@other.example:bob@example.org>", "bob@example.org"],
    ["<@relay.example>", "@relay.example"],
    ["<<a>>", "<a>"],
  ])("%j → %j", (given, bare) => {
    expect(bareAddress(given)).toBe(bare);
  });
});

describe("normalizeAddress", () => {
  it.each([
    // case: the whole address folds by default
    ["Bob@Example.ORG", "bob@example.org"],
    ["BOB@EXAMPLE.ORG", "bob@example.org"],
    // a quoted local part that needs no quotes loses them
    ['"bob"@example.org', "bob@example.org"],
    ['"Bob"@Example.ORG', "bob@example.org"],
    ['"b\\ob"@example.org', "bob@example.org"],
    ['"bob.smith"@example.org', "bob.smith@example.org"],
    ['"bob+tag"@example.org', "bob+tag@example.org"],
    ["!#$%&'*+-/=?^_`{|}~@example.org", "!#$%&'*+-/=?^_`{|}~@example.org"],
    // one that needs them keeps them, escaped the shortest way
    ['"a b"@example.org', '"a b"@example.org'],
    ['"A\\ B"@example.org', '"a b"@example.org'],
    ['"a\\"b"@example.org', '"a\\"b"@example.org'],
    ['"a\\\\b"@example.org', '"a\\\\b"@example.org'],
    ['"a..b"@example.org', '"a..b"@example.org'],
    ['".bob"@example.org', '".bob"@example.org'],
    ['"bob."@example.org', '"bob."@example.org'],
    ['""@example.org', '""@example.org'],
    ['"a@b"@example.org', '"a@b"@example.org'],
    // dots of an unquoted local part are kept (Postfix keeps them; only Gmail drops them)
    ["b.o.b@example.org", "b.o.b@example.org"],
    // the domain: folded; one trailing dot dropped, as Postfix does
    ["bob@example.org.", "bob@example.org"],
    ["bob@example.org..", "bob@example.org.."],
    ["bob@[192.0.2.1]", "bob@[192.0.2.1]"],
    ["bob@[IPv6:2001:DB8::1]", "bob@[ipv6:2001:db8::1]"],
    // no domain: RCPT TO:<Postmaster> is legal
    ["Postmaster", "postmaster"],
    ['"Postmaster"', "postmaster"],
    ["bob@", "bob@"],
    ["", ""],
    // not addresses: folded, nothing else changed or lost
    ["a@b@Example.org", "a@b@example.org"],
    ['"a"@b@c', '"a"@b@c'],
    ['"unterminated@example.org', '"unterminated@example.org'],
    ['"a\\"@example.org', '"a\\"@example.org'],
    ["a b@example.org", "a b@example.org"],
    ["@example.org", "@example.org"],
    ["bob@exa mple.org", "bob@exa mple.org"],
    // internationalised (RFC 6531): non-ASCII is atext; Unicode case folds too
    ["Jörg@Bücher.Example", "jörg@bücher.example"],
    ['"Jörg"@bücher.example', "jörg@bücher.example"],
    ["用户@例子.广告", "用户@例子.广告"],
  ])("%j → %j", (given, normal) => {
    expect(normalizeAddress(given)).toBe(normal);
  });

  it("with local_part: sensitive only the domain folds; needless quotes still go", () => {
    expect(normalizeAddress("Bob@Example.ORG", "sensitive")).toBe("Bob@example.org");
    expect(normalizeAddress('"Bob"@Example.ORG', "sensitive")).toBe("Bob@example.org");
    expect(normalizeAddress('"Bob Smith"@Example.ORG', "sensitive")).toBe('"Bob Smith"@example.org');
    expect(normalizeAddress("bob@example.org", "sensitive")).not.toBe(
      normalizeAddress("Bob@example.org", "sensitive"),
    );
  });

  it("keeps control bytes (they are the lookups' to refuse or escape), folding around them", () => {
    expect(normalizeAddress("B\x00ob@Example.org")).toBe("b\x00ob@example.org");
    expect(normalizeAddress('"B\\\rob"@Example.org')).toBe('"b\rob"@example.org');
    expect(normalizeAddress("bob\r\n@example.org")).toBe("bob\r\n@example.org");
  });

  it("is linear: a megabyte of quotes, escapes, dots or @ signs is normalised at once", () => {
    const inputs = [
      `"${"\\a".repeat(500_000)}"@example.org`,
      `"${"a".repeat(1_000_000)}`,
      `${".".repeat(1_000_000)}@example.org`,
      "@".repeat(1_000_000),
      `"${'\\"'.repeat(500_000)}@x`,
    ];
    const started = performance.now();
    for (const input of inputs) expect(normalizeAddress(input).length).toBeGreaterThan(0);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe("parts", () => {
  it("splits at the last @ outside a quoted local part", () => {
    expect(splitAddress('"a@b"@example.org')).toEqual({ local: '"a@b"', domain: "example.org" });
    expect(splitAddress("a@b@example.org")).toEqual({ local: "a@b", domain: "example.org" });
    expect(splitAddress('"a@b"')).toEqual({ local: '"a@b"', domain: undefined });
    expect(splitAddress("postmaster")).toEqual({ local: "postmaster", domain: undefined });
    expect(splitAddress("bob@")).toEqual({ local: "bob", domain: "" });
  });

  it("the unquoted content of a local part, and back", () => {
    expect(localPartContent('"a\\ b"')).toBe("a b");
    expect(localPartContent("bob")).toBe("bob");
    expect(localPartContent('"open')).toBe('"open');
    expect(formatLocalPart("a b")).toBe('"a b"');
    expect(formatLocalPart('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(formatLocalPart("bob.smith")).toBe("bob.smith");
    expect(formatLocalPart("")).toBe('""');
    expect(normalizeLocalContent('"Bob+X Y"')).toBe("bob+x y");
    expect(normalizeLocalContent('"Bob+X Y"', "sensitive")).toBe("Bob+X Y");
  });

  it("cuts a +detail from the unquoted content; a delimiter at the start is no detail", () => {
    expect(withoutDetail("bob+lists", "+")).toBe("bob");
    expect(withoutDetail("bob+x y", "+")).toBe("bob");
    expect(withoutDetail("+bob", "+")).toBe("+bob");
    expect(withoutDetail("bob+lists", undefined)).toBe("bob+lists");
    expect(withoutDetail("bob--lists", "--")).toBe("bob");
  });

  it("normalizeAddressParts and normalizeDomain", () => {
    expect(normalizeAddressParts('"Bob"@Example.ORG.')).toEqual({ local: "bob", domain: "example.org" });
    expect(normalizeAddressParts("")).toEqual({ local: "", domain: undefined });
    expect(normalizeDomain("Example.ORG.")).toBe("example.org");
    expect(normalizeDomain(".")).toBe(".");
    expect(isDotAtom("a.b")).toBe(true);
    expect(isDotAtom("a..b")).toBe(false);
    expect(isDotAtom("a b")).toBe(false);
    expect(isDotAtom("ü")).toBe(true);
  });
});

describe("properties", () => {
  // Addresses built from the characters that matter: quotes, escapes, dots, @, case, spaces,
  // control bytes and non-ASCII, so the interesting cases come up often.
  const pieces = fc.constantFrom(
    '"',
    "\\",
    ".",
    "@",
    " ",
    "a",
    "B",
    "z",
    "Ü",
    "ß",
    "İ",
    "\x00",
    "\r",
    "+",
    "<",
    ">",
    ":",
    "ẞ",
    "\u212a",
  );
  const hostile = fc.oneof(
    fc.array(pieces, { maxLength: 30 }).map((a) => a.join("")),
    fc.string({ unit: "grapheme", maxLength: 30 }),
    fc.string({ unit: "binary", maxLength: 30 }),
  );

  it("never throws, and normalising twice changes nothing more", () => {
    fc.assert(
      fc.property(hostile, fc.constantFrom("insensitive" as const, "sensitive" as const), (s, mode) => {
        const once = normalizeAddress(s, mode);
        expect(normalizeAddress(once, mode)).toBe(once);
      }),
      { numRuns: 5000 },
    );
  });

  it("the shortcut for addresses already in normal form answers what the parts give", () => {
    const lowerAscii = fc.stringMatching(/^[a-z0-9.@"+-]{0,20}$/);
    fc.assert(
      fc.property(
        fc.oneof(hostile, lowerAscii),
        fc.constantFrom("insensitive" as const, "sensitive" as const),
        (s, mode) => {
          const { local, domain } = normalizeAddressParts(s, mode);
          expect(normalizeAddress(s, mode)).toBe(domain === undefined ? local : `${local}@${domain}`);
        },
      ),
      { numRuns: 5000 },
    );
  });

  it("loses nothing but case and quoting: the normal form has the same content", () => {
    fc.assert(
      fc.property(hostile, (s) => {
        const given = splitAddress(s);
        const normal = splitAddress(normalizeAddress(s, "sensitive"));
        expect(localPartContent(normal.local)).toBe(localPartContent(given.local));
        expect(normal.domain).toBe(given.domain === undefined ? undefined : normalizeDomain(given.domain));
      }),
      { numRuns: 5000 },
    );
  });

  it("insensitive differs from sensitive only by case", () => {
    fc.assert(
      fc.property(hostile, (s) => {
        expect(normalizeAddress(s)).toBe(normalizeAddress(normalizeAddress(s, "sensitive")));
      }),
      { numRuns: 5000 },
    );
  });

  it("a quoted dot-atom is the dot-atom, in any case", () => {
    const atom = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]{1,10}$/);
    fc.assert(
      fc.property(fc.array(atom, { minLength: 1, maxLength: 4 }), atom, (atoms, domain) => {
        const local = atoms.join(".");
        const plain = normalizeAddress(`${local}@${domain}`);
        expect(normalizeAddress(`"${local}"@${domain.toUpperCase()}`)).toBe(plain);
        expect(normalizeAddress(`${local.toUpperCase()}@${domain}`)).toBe(plain);
      }),
    );
  });
});
