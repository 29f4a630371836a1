import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ActionFlag,
  actionFlagFor,
  encodeModification,
  encodeReply,
  FrameReader,
  formatReplyText,
  InvalidReply,
  type Modification,
  type Reply,
  Response,
  reply,
} from "../../src/milter/index.js";

function replyText(value: Reply): string {
  const encoded = encodeReply(value);
  if (encoded instanceof InvalidReply) throw new Error(encoded.message);
  const [frame] = new FrameReader(1 << 20).push(encoded) as { code: number; payload: Buffer }[];
  expect(frame?.code).toBe(Response.ReplyCode);
  const payload = frame?.payload as Buffer;
  expect(payload[payload.length - 1]).toBe(0);
  return payload.subarray(0, -1).toString("utf8");
}

describe("reply codes", () => {
  it("formats code, enhanced code and text", () => {
    expect(replyText(reply.tempfail(452, "4.2.2", "Quota exceeded"))).toBe("452 4.2.2 Quota exceeded");
  });

  it("doubles % so Sendmail does not replace the reply with its 550 default", () => {
    expect(replyText(reply.tempfail(450, "4.7.1", "50% off"))).toBe("450 4.7.1 50%% off");
  });

  it("turns line breaks into a proper multi-line reply", () => {
    expect(replyText(reply.reject(550, "5.7.1", "first\nsecond\r\nthird"))).toBe(
      "550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third",
    );
  });

  it("strips control characters an SMTP client could have smuggled into the text", () => {
    expect(replyText(reply.reject(550, undefined, "a\rb\0c\x07d"))).toBe("550 abcd");
  });

  it("keeps a separator after a bare code (Postfix refuses '550' alone)", () => {
    expect(replyText(reply.reject(550))).toBe("550 ");
  });

  it("cuts long lines without splitting an escaped %", () => {
    const text = formatReplyText("reject", 550, "5.7.1", `${"x".repeat(979)}%tail`);
    expect(typeof text).toBe("string");
    const line = (text as string).slice("550 5.7.1 ".length);
    expect(line.length).toBeLessThanOrEqual(980);
    expect(line.endsWith("%")).toBe(false);
  });

  const invalid: [string, Reply][] = [
    ["a 2xx code", { action: "reject", code: 250 }],
    ["a reject with a 4xx code", { action: "reject", code: 451 }],
    ["a tempfail with a 5xx code", { action: "tempfail", code: 550 }],
    ["an enhanced code of another class", { action: "reject", code: 550, enhancedCode: "4.7.1" }],
    ["a malformed enhanced code", { action: "reject", code: 550, enhancedCode: "5.7" }],
    ["a text without a code", { action: "reject", text: "no" }],
    ["a code that is not an integer", { action: "tempfail", code: 451.5 }],
    ["too many lines", { action: "reject", code: 550, text: "x\n".repeat(40) }],
  ];
  it.each(invalid)("refuses %s", (_name, value) => {
    expect(encodeReply(value)).toBeInstanceOf(InvalidReply);
  });

  // The library is exported: an enhanced code is the caller's string, and it goes out verbatim
  // once accepted, so all of it must be the code (anchored at both ends).
  it.each([
    ["CRLF and a second reply after it", "5.7.1\r\n250 2.0.0 Ok"],
    ["LF after it", "5.7.1\n"],
    ["text after it", "5.7.1 and more"],
    ["a fourth part", "5.7.1.2"],
    ["a part of four digits", "5.7.1000"],
    ["a NUL after it", "5.7.1\0"],
    ["something before it", "x5.7.1"],
    ["a line before it", "250 Ok\r\n5.7.1"],
  ])("refuses an enhanced code with %s", (_name, enhancedCode) => {
    expect(formatReplyText("reject", 550, enhancedCode, "no")).toBeInstanceOf(InvalidReply);
    expect(encodeReply({ action: "reject", code: 550, enhancedCode, text: "no" })).toBeInstanceOf(
      InvalidReply,
    );
  });

  it("whatever the enhanced code, an accepted reply is lines of code, enhanced code and clean text", () => {
    // Mostly near misses: a well-formed code with something before or after it.
    const enhancedCodes = fc
      .tuple(
        fc.constantFrom("", "", "", "x", " ", "\r\n", "250 Ok\r\n"),
        fc.constantFrom("5", "4", "2", "55"),
        fc.integer({ min: 0, max: 1200 }),
        fc.integer({ min: 0, max: 1200 }),
        fc.constantFrom("", "", "", "\r\n250 Ok", "\n", " x", ".1", "\0", "0", "%"),
      )
      .map(([before, klass, subject, detail, after]) => `${before}${klass}.${subject}.${detail}${after}`);
    fc.assert(
      fc.property(fc.oneof(enhancedCodes, fc.string()), fc.string(), (enhanced, text) => {
        const out = formatReplyText("reject", 550, enhanced, text);
        if (out instanceof InvalidReply) return;
        if (enhanced !== "") expect(enhanced).toMatch(/^5\.\d{1,3}\.\d{1,3}$/);
        const prefix = enhanced === "" ? "" : `${enhanced} `;
        for (const line of out.split("\r\n")) {
          const spaced = `${line} `;
          expect(spaced.startsWith(`550 ${prefix}`) || spaced.startsWith(`550-${prefix}`)).toBe(true);
          // biome-ignore lint/suspicious/noControlCharactersInRegex: no control character may reach the wire
          expect(line).not.toMatch(/[\x00-\x1f\x7f]/);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("sends bare reject/tempfail when no code is given (the MTA's own text)", () => {
    expect(encodeReply(reply.reject())).toEqual(Buffer.from([0, 0, 0, 1, Response.Reject]));
    expect(encodeReply(reply.tempfail())).toEqual(Buffer.from([0, 0, 0, 1, Response.Tempfail]));
  });
});

describe("modifications", () => {
  it("folds header values with LF only and drops NUL", () => {
    const packets = encodeModification({ type: "addHeader", name: "X-Test", value: "a\r\n\tb\0" });
    expect(packets).not.toBeInstanceOf(InvalidReply);
    expect((packets as Buffer[])[0]?.subarray(5).toString()).toBe("X-Test\0a\n\tb\0");
  });

  it("refuses header names with a colon or spaces", () => {
    expect(encodeModification({ type: "addHeader", name: "X Bad:", value: "v" })).toBeInstanceOf(
      InvalidReply,
    );
  });

  it("splits a large body into packets of at most 65535 bytes", () => {
    const packets = encodeModification({
      type: "replaceBody",
      body: Buffer.alloc(150_000, 0x61),
    }) as Buffer[];
    expect(packets).toHaveLength(3);
    for (const p of packets) expect(p.readUInt32BE(0) - 1).toBeLessThanOrEqual(65535);
  });

  it("sends CHGFROM with the ESMTP arguments as one string", () => {
    const [p] = encodeModification({
      type: "changeFrom",
      address: "<a@b>",
      esmtpArgs: "RET=HDRS ENVID=x",
    }) as Buffer[];
    expect(p?.subarray(5).toString()).toBe("<a@b>\0RET=HDRS ENVID=x\0");
  });

  it("maps each modification to the action flag it needs", () => {
    const cases: [Modification, number][] = [
      [{ type: "addHeader", name: "X", value: "" }, ActionFlag.AddHeaders],
      [{ type: "insertHeader", index: 0, name: "X", value: "" }, ActionFlag.AddHeaders],
      [{ type: "changeHeader", index: 1, name: "X", value: "" }, ActionFlag.ChangeHeaders],
      [{ type: "addRecipient", address: "<a@b>" }, ActionFlag.AddRecipient],
      [
        { type: "addRecipient", address: "<a@b>", esmtpArgs: "NOTIFY=NEVER" },
        ActionFlag.AddRecipientWithArgs,
      ],
      [{ type: "deleteRecipient", address: "<a@b>" }, ActionFlag.DeleteRecipient],
      [{ type: "changeFrom", address: "<a@b>" }, ActionFlag.ChangeFrom],
      [{ type: "replaceBody", body: Buffer.alloc(0) }, ActionFlag.ChangeBody],
      [{ type: "quarantine", reason: "r" }, ActionFlag.Quarantine],
    ];
    for (const [modification, flag] of cases) expect(actionFlagFor(modification)).toBe(flag);
  });
});
