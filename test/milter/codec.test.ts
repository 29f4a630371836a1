import { describe, expect, it } from "vitest";
import { decodeMacro } from "../../src/milter/codec.js";
import {
  Command,
  decodeCommand,
  decodeResponse,
  encodeCommand,
  FrameReader,
  type MilterCommand,
  ProtocolError,
  packet,
  Response,
} from "../../src/milter/index.js";

function frames(reader: FrameReader, bytes: Buffer) {
  return reader.push(bytes);
}

describe("FrameReader", () => {
  const two = Buffer.concat([packet(Command.Helo, "mx.example"), packet(Command.Data)]);

  it("cuts several packets out of one read", () => {
    const out = frames(new FrameReader(1024), two);
    expect(out).toHaveLength(2);
    expect(out.map((f) => (f as { code: number }).code)).toEqual([Command.Helo, Command.Data]);
  });

  it("reassembles packets split at every possible byte", () => {
    for (let cut = 1; cut < two.length; cut++) {
      const reader = new FrameReader(1024);
      const first = reader.push(two.subarray(0, cut));
      const second = reader.push(two.subarray(cut));
      const all = [...first, ...second] as { code: number; payload: Buffer }[];
      expect(all.map((f) => f.code)).toEqual([Command.Helo, Command.Data]);
      expect(all[0]?.payload.toString()).toBe("mx.example\0");
    }
  });

  it("reassembles a stream fed one byte at a time", () => {
    const reader = new FrameReader(1024);
    const out = [];
    for (const byte of two) out.push(...reader.push(Buffer.from([byte])));
    expect(out).toHaveLength(2);
    expect(reader.bufferedBytes).toBe(0);
  });

  it("refuses a zero length", () => {
    const [error] = frames(new FrameReader(1024), Buffer.from([0, 0, 0, 0, 0x43]));
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).message).toContain("length 0");
  });

  it("refuses a length of 0xFFFFFFFF before buffering anything", () => {
    const reader = new FrameReader(1024 * 1024);
    const [error] = reader.push(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x42]));
    expect((error as ProtocolError).message).toContain("4294967295 exceeds the limit");
  });

  it("keeps an unfinished tail without returning it", () => {
    const reader = new FrameReader(1024);
    expect(reader.push(Buffer.from([0, 0, 0, 9, 0x48, 0x61]))).toEqual([]);
    expect(reader.bufferedBytes).toBe(6);
  });
});

describe("commands", () => {
  const samples: MilterCommand[] = [
    { type: "optneg", version: 6, actions: 0x1ff, protocol: 0x1fffff, macroLists: new Map() },
    {
      type: "macro",
      forCommand: Command.Mail,
      macros: [
        ["i", "QID1"],
        ["{auth_authen}", ""],
      ],
    },
    { type: "macro", forCommand: Command.Helo, macros: [] },
    { type: "connect", hostname: "client.example", family: "inet", port: 12345, address: "192.0.2.1" },
    { type: "connect", hostname: "v6.example", family: "inet6", port: 25, address: "2001:db8::1" },
    { type: "connect", hostname: "local", family: "unix", port: 0, address: "/run/sock" },
    { type: "connect", hostname: "localhost", family: "unknown", port: 0, address: "" },
    { type: "helo", name: "client.example" },
    { type: "mail", sender: "<a@example.org>", args: ["SIZE=100", "BODY=8BITMIME"] },
    { type: "rcpt", recipient: "<b@example.net>", args: [] },
    { type: "data" },
    { type: "header", name: "Subject", value: "héllo\n\tfolded" },
    { type: "eoh" },
    { type: "body", chunk: Buffer.from("line\r\n") },
    { type: "eom", chunk: Buffer.alloc(0) },
    { type: "unknown", line: "XFOO bar" },
    { type: "abort" },
    { type: "quit" },
    { type: "quitNewConnection" },
  ];

  it.each(samples.map((s) => [s.type, s] as const))("%s round-trips through the codec", (_type, command) => {
    const [frame] = new FrameReader(1 << 20).push(encodeCommand(command));
    expect(decodeCommand(frame as never)).toEqual(command);
  });

  it("strips Sendmail's IPv6: prefix from client addresses", () => {
    const bytes = packet(Command.Connect, "h", { byte: 0x36 }, { uint16: 25 }, "IPv6:2001:db8::5");
    const [frame] = new FrameReader(1024).push(bytes);
    expect(decodeCommand(frame as never)).toMatchObject({
      family: "inet6",
      address: "2001:db8::5",
      port: 25,
    });
  });

  it("reads the port big-endian (miltertest's 12345 arrives as 30 39)", () => {
    const payload = Buffer.from("h\x004\x30\x39a\x00", "latin1");
    expect(decodeCommand({ code: Command.Connect, payload })).toMatchObject({ port: 12345 });
  });

  const malformed: [string, number, Buffer][] = [
    ["short negotiation", Command.OptionNegotiation, Buffer.alloc(8)],
    ["connect without NUL", Command.Connect, Buffer.from("host")],
    ["connect with unknown family", Command.Connect, Buffer.from("h\0X\0\0a\0", "latin1")],
    ["connect with truncated port", Command.Connect, Buffer.from("h\x004\x01", "latin1")],
    ["helo without NUL", Command.Helo, Buffer.from("mx")],
    ["mail with empty payload", Command.Mail, Buffer.alloc(0)],
    ["header with one string", Command.Header, Buffer.from("Subject\0")],
    ["macro without stage", Command.Macro, Buffer.alloc(0)],
    ["macro not terminated", Command.Macro, Buffer.from("Mi\0QID")],
    ["unknown command byte", 0x7a, Buffer.alloc(0)],
  ];
  it.each(malformed)("%s is a ProtocolError, not an exception", (_name, code, payload) => {
    expect(decodeCommand({ code, payload })).toBeInstanceOf(ProtocolError);
  });

  it("accepts a macro packet with zero pairs and one with an empty value", () => {
    expect(decodeCommand({ code: Command.Macro, payload: Buffer.from("H") })).toEqual({
      type: "macro",
      forCommand: Command.Helo,
      macros: [],
    });
    expect(decodeCommand({ code: Command.Macro, payload: Buffer.from("Mi\0\0") })).toMatchObject({
      macros: [["i", ""]],
    });
  });
});

describe("responses", () => {
  it("decodes what the server encodes, including header index and macro lists", () => {
    const lists = new Map([[2, "{auth_authen} i"]]);
    const negotiation = packet(
      Response.OptionNegotiation,
      { uint32: 6 },
      { uint32: 0x101 },
      { uint32: 0x10 },
      { uint32: 2 },
      "{auth_authen} i",
    );
    expect(decodeResponse(new FrameReader(1024).push(negotiation)[0] as never)).toEqual({
      type: "optneg",
      version: 6,
      actions: 0x101,
      protocol: 0x10,
      macroLists: lists,
    });
    const insert = packet(Response.InsertHeader, { uint32: 0 }, "X-Top", "v");
    expect(decodeResponse(new FrameReader(1024).push(insert)[0] as never)).toEqual({
      type: "insertHeader",
      index: 0,
      name: "X-Top",
      value: "v",
    });
  });

  it("refuses a one-byte reply that carries data (Postfix would fail the milter)", () => {
    expect(decodeResponse({ code: Response.Continue, payload: Buffer.from("x") })).toBeInstanceOf(
      ProtocolError,
    );
  });
});

describe("decodeMacro with a filter", () => {
  it("asks about each pair (name bytes, value size) before decoding it", () => {
    const payload = encodeCommand({
      type: "macro",
      forCommand: Command.Mail,
      macros: [
        ["i", "QID1"],
        ["{junk}", "x".repeat(1000)],
        ["{auth_authen}", "alice"],
      ],
    }).subarray(5);
    const asked: [string, number][] = [];
    const decoded = decodeMacro(payload, (name, valueBytes) => {
      asked.push([name.toString(), valueBytes]);
      return name.toString() === "{junk}" ? undefined : name.toString().toUpperCase();
    });
    expect(asked).toEqual([
      ["i", 4],
      ["{junk}", 1000],
      ["{auth_authen}", 5],
    ]);
    expect(decoded).toEqual({
      type: "macro",
      forCommand: Command.Mail,
      macros: [
        ["I", "QID1"],
        ["{AUTH_AUTHEN}", "alice"],
      ],
    });
  });
});
