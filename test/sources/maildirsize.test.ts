import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isFlaggedDeleted, sizeFromName } from "../../src/sources/maildir-scan.js";
import {
  effectiveLimits,
  parseDefinition,
  parseMaildirsize,
  STALE_OVER_QUOTA_MS,
  untrustedReasons,
  wouldBeOver,
} from "../../src/sources/maildirsize.js";

const NOW = 1_800_000_000_000;
const pad = (bytes: number, count: number) => `${String(bytes).padStart(12)} ${String(count).padStart(12)}\n`;

describe("maildirsize line 1: the quota definition", () => {
  it.each([
    ["1000000S", { bytes: 1000000 }],
    ["1000C", { messages: 1000 }],
    ["1000000S,1000C", { bytes: 1000000, messages: 1000 }],
    ["1000C,1000000S", { bytes: 1000000, messages: 1000 }],
    [" 3C ", { messages: 3 }],
    ["5000000S, 3C", { bytes: 5000000, messages: 3 }],
    ["0S", { bytes: 0 }],
    ["5000000S,3C,7B", { bytes: 5000000, messages: 3 }],
  ])("%j → %j", (line, definition) => {
    expect(parseDefinition(line).definition).toEqual(definition);
  });

  it("ignores other items and reports them", () => {
    expect(parseDefinition("5000000S,3C,7B")).toEqual({
      definition: { bytes: 5000000, messages: 3 },
      ignoredItems: ["7B"],
    });
    expect(parseDefinition("10M")).toEqual({ ignoredItems: ["10M"] });
    expect(parseDefinition("1000000s")).toEqual({ ignoredItems: ["1000000s"] }); // lower case is not S
  });

  it("a line that looks like a size line defines no quota (Courier's headerless file)", () => {
    expect(parseDefinition("         156            1").definition).toBeUndefined();
    expect(parseDefinition("").definition).toBeUndefined();
  });
});

describe("maildirsize size lines", () => {
  it("sums Courier's padded lines and never counts line 1", () => {
    const text = `1000000S,100C\n${pad(0, 0)}${pad(1056, 1)}${pad(1056, 1)}${pad(1056, 1)}`;
    expect(Buffer.byteLength(text)).toBe(118); // as observed in the notes (1.9)
    const parsed = parseMaildirsize(text);
    expect(parsed).toMatchObject({
      definition: { bytes: 1000000, messages: 100 },
      usage: 3168,
      count: 3,
      sizeLines: 4,
      suspect: [],
    });
    expect(parsed.tornTail).toBeUndefined();
  });

  it("sums Dovecot's unpadded lines, negative lines, tabs and leading blanks", () => {
    const parsed = parseMaildirsize("1048576S,100C\n0 0\n1056 1\n1056 1\n7056 1\n-1056 -1\n\t 5056\t\t1 \n");
    expect(parsed).toMatchObject({ usage: 13168, count: 3, sizeLines: 6, suspect: [] });
  });

  it("drops a torn last line (no LF)", () => {
    const parsed = parseMaildirsize("1000000S\n2112 2\n  10");
    expect(parsed).toMatchObject({ usage: 2112, count: 2, sizeLines: 1, suspect: [], tornTail: "  10" });
  });

  it("keeps a header written without LF", () => {
    expect(parseMaildirsize("1000000S").definition).toEqual({ bytes: 1000000 });
  });

  it("an empty file defines no quota and holds nothing", () => {
    const parsed = parseMaildirsize("");
    expect(parsed).toMatchObject({ usage: 0, count: 0, sizeLines: 0, suspect: [] });
    expect(parsed.definition).toBeUndefined();
  });

  it("marks garbage lines, blank lines and three-number lines suspect", () => {
    expect(parseMaildirsize("1000000S\nhello world\n2112 2\n").suspect[0]).toMatch(
      /not '<bytes> <count>'.*hello world/,
    );
    expect(parseMaildirsize("1000000S\n\n2112 2\n").suspect).toHaveLength(1);
    expect(parseMaildirsize("1000000S\n  10         156            1\n").suspect).toHaveLength(1);
    expect(parseMaildirsize("1000000S\n12345678901234567 1\n").suspect).toHaveLength(1); // 17 digits
  });

  it("marks a negative total suspect, but not a negative line", () => {
    expect(parseMaildirsize("1000000S\n2112 2\n-1000 -1\n").suspect).toEqual([]);
    expect(parseMaildirsize("1000000S\n2112 2\n-5000 -3\n").suspect[0]).toMatch(/negative total/);
  });

  it("marks a NUL byte suspect", () => {
    expect(parseMaildirsize("1000000S\n2112 2\n\0\n").suspect.join()).toMatch(/NUL/);
  });

  it("marks a file of 5120 bytes or more suspect, and reads its header still", () => {
    const header = "1000000S,100C\n";
    const lines = (n: number) => header + pad(100, 1).repeat(n);
    const n = Math.floor((5120 - header.length) / 26);
    const below = `${lines(n)}${"1".padStart(5119 - lines(n).length - 3)} 1\n`;
    expect(Buffer.byteLength(below)).toBe(5119);
    expect(parseMaildirsize(below).suspect).toEqual([]);
    const at = `${lines(n)}${"1".padStart(5120 - lines(n).length - 3)} 1\n`;
    expect(Buffer.byteLength(at)).toBe(5120);
    const parsed = parseMaildirsize(at);
    expect(parsed.suspect[0]).toMatch(/5120 bytes/);
    expect(parsed.definition).toEqual({ bytes: 1000000, messages: 100 });
    // The reader stops after 5121 bytes: the file size from fstat still counts.
    expect(parseMaildirsize(Buffer.from(at).subarray(0, 100), 9000).suspect[0]).toMatch(/9000 bytes/);
  });
});

describe("when maildirsize must not be trusted", () => {
  const limits = { bytes: 2000, messages: 0 };

  it("believes a single fresh over-quota line", () => {
    const parsed = parseMaildirsize(`2000S\n${pad(3000, 3)}`);
    expect(untrustedReasons(parsed, limits, NOW - 60_000, NOW)).toEqual([]);
  });

  it("recounts an over-quota file older than 15 minutes", () => {
    const parsed = parseMaildirsize(`2000S\n${pad(3000, 3)}`);
    expect(untrustedReasons(parsed, limits, NOW - STALE_OVER_QUOTA_MS - 1000, NOW)[0]).toMatch(
      /15 minutes ago/,
    );
    expect(untrustedReasons(parsed, limits, NOW - 14 * 60_000, NOW)).toEqual([]);
  });

  it("recounts an over-quota file with more than one size line", () => {
    const parsed = parseMaildirsize(`2000S\n${pad(1000, 1)}${pad(1500, 1)}`);
    expect(untrustedReasons(parsed, limits, NOW, NOW)[0]).toMatch(/2 size lines/);
  });

  it("counts exactly-at-the-limit as over (the next message cannot fit)", () => {
    const parsed = parseMaildirsize(`2000S\n${pad(1000, 1)}${pad(1000, 1)}`);
    expect(untrustedReasons(parsed, limits, NOW, NOW)).toHaveLength(1);
    const count = parseMaildirsize(`2C\n${pad(1000, 1)}${pad(1000, 1)}`);
    expect(untrustedReasons(count, effectiveLimits(count), NOW, NOW)).toHaveLength(1);
  });

  it("trusts several lines one byte or one message below the limit (a 1-byte message still fits)", () => {
    const bytes = parseMaildirsize(`2000S\n${pad(1000, 1)}${pad(999, 1)}`);
    expect(untrustedReasons(bytes, limits, NOW, NOW)).toEqual([]);
    const count = parseMaildirsize(`3C\n${pad(1000, 1)}${pad(1000, 1)}`);
    expect(untrustedReasons(count, effectiveLimits(count), NOW, NOW)).toEqual([]);
  });

  it("trusts many lines under quota, and anything when there is no limit", () => {
    const parsed = parseMaildirsize(`2000S\n${pad(100, 1).repeat(10)}`);
    expect(untrustedReasons(parsed, limits, NOW - 3_600_000, NOW)).toEqual([]);
    expect(untrustedReasons(parsed, { bytes: 0, messages: 0 }, 0, NOW)).toEqual([]);
  });

  it("a headerless file is recounted when the source supplies the limit", () => {
    const parsed = parseMaildirsize(pad(156, 1));
    const fallback = effectiveLimits(parsed, { bytes: 1000 });
    expect(fallback).toEqual({ bytes: 1000, messages: 0 });
    expect(untrustedReasons(parsed, fallback, NOW, NOW, true)).toEqual(["line 1 is not a quota definition"]);
    expect(untrustedReasons(parsed, { bytes: 0, messages: 0 }, NOW, NOW, false)).toEqual([]);
  });

  it("the file's definition wins over the source's quota, even 0S (explicitly no limit)", () => {
    expect(effectiveLimits(parseMaildirsize("100C\n0 0\n"), { bytes: 5000 })).toEqual({
      bytes: 0,
      messages: 100,
    });
    expect(effectiveLimits(parseMaildirsize("0S\n0 0\n"), { bytes: 5000 })).toEqual({
      bytes: 0,
      messages: 0,
    });
    expect(effectiveLimits(parseMaildirsize("1000s\n0 0\n"), { bytes: 5000 })).toEqual({
      bytes: 5000,
      messages: 0,
    });
  });
});

describe("wouldBeOver: would one more message of 1 byte exceed a limit", () => {
  it("bytes: usage = limit - 1 still takes it; usage = limit does not", () => {
    const limits = { bytes: 2000, messages: 0 };
    expect(wouldBeOver(1998, 0, limits)).toBe(false);
    expect(wouldBeOver(1999, 0, limits)).toBe(false);
    expect(wouldBeOver(2000, 0, limits)).toBe(true);
    expect(wouldBeOver(2001, 0, limits)).toBe(true);
  });

  it("messages: count = limit - 1 still takes it; count = limit does not", () => {
    const limits = { bytes: 0, messages: 3 };
    expect(wouldBeOver(0, 2, limits)).toBe(false);
    expect(wouldBeOver(0, 3, limits)).toBe(true);
    expect(wouldBeOver(0, 4, limits)).toBe(true);
  });

  it("either limit is enough; 0 is no limit", () => {
    expect(wouldBeOver(1999, 3, { bytes: 2000, messages: 3 })).toBe(true);
    expect(wouldBeOver(2000, 2, { bytes: 2000, messages: 3 })).toBe(true);
    expect(wouldBeOver(1999, 2, { bytes: 2000, messages: 3 })).toBe(false);
    expect(wouldBeOver(Number.MAX_SAFE_INTEGER - 1, 1e9, { bytes: 0, messages: 0 })).toBe(false);
  });
});

describe("maildir file names", () => {
  it("takes S= before the info part, when followed by ',' or its end", () => {
    expect(sizeFromName("1795702642.M655468P17579V00FE00I0020C492.vm,S=1056")).toBe(1056);
    expect(sizeFromName("1795702642.M655468P17579.vm,S=1056:2,S")).toBe(1056);
    expect(sizeFromName("1795702642.M655468P17579.vm,S=1056,W=1061:2,S")).toBe(1056);
    expect(sizeFromName("1795702642.M655468P17579.vm:2,S")).toBeUndefined();
    expect(sizeFromName("1795702642.vm:2,S,S=50")).toBeUndefined(); // after ':' is flags
    expect(sizeFromName("1795702642.vm,S=12x")).toBeUndefined();
    expect(sizeFromName("1795702642.vm,W=1061")).toBeUndefined();
  });

  it("Courier's T (trashed) flag", () => {
    expect(isFlaggedDeleted("123.vm,S=3062:2,ST")).toBe(true);
    expect(isFlaggedDeleted("123.vm,S=3062:2,T")).toBe(true);
    expect(isFlaggedDeleted("123.vm,S=3062:2,S")).toBe(false);
    expect(isFlaggedDeleted("123.vm,S=3062")).toBe(false);
    expect(isFlaggedDeleted("123.vmT,S=3062:1,T")).toBe(false);
  });
});

describe("maildirsize parser properties", () => {
  it("usage is the sum of the lines after line 1, whatever the padding and order of the header", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.integer({ min: -100000, max: 10_000_000 }), fc.integer({ min: -5, max: 1000 })),
          {
            maxLength: 150,
          },
        ),
        fc.boolean(),
        fc.constantFrom("", " ", "\t"),
        (lines, swap, blank) => {
          const header = swap ? "100C,1000000S" : "1000000S,100C";
          const text = `${header}\n${lines.map(([b, c]) => `${blank}${b}${blank} ${c}${blank}\n`).join("")}`;
          const parsed = parseMaildirsize(text);
          expect(parsed.definition).toEqual({ bytes: 1000000, messages: 100 });
          expect(parsed.sizeLines).toBe(lines.length);
          expect(parsed.usage).toBe(lines.reduce((sum, [b]) => sum + b, 0));
          expect(parsed.count).toBe(lines.reduce((sum, [, c]) => sum + c, 0));
        },
      ),
    );
  });

  it("never throws on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 6000 }), (bytes) => {
        const parsed = parseMaildirsize(bytes);
        expect(Array.isArray(parsed.suspect)).toBe(true);
      }),
    );
  });
});
