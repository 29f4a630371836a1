/**
 * The MTA-side client against a recording milter: what it writes, in which writes, with which
 * macros — the way Postfix does (milter8.c: a macro packet for every stage event, skipped or not;
 * everything buffered until a reply is read).
 */
import { createServer, type Server, Socket } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { encodeNegotiation, PACKET } from "../../src/milter/codec.js";
import {
  Command,
  decodeCommand,
  FrameReader,
  MACRO_STAGE_NUMBER,
  MilterClient,
  type MilterCommand,
  type MtaMacros,
  POSTFIX_MACROS,
  ProtocolError,
  ProtocolFlag,
} from "../../src/milter/index.js";

interface Recording {
  /** The commands of each write the client did to the milter. */
  writes: MilterCommand[][];
}

const SKIP_ALL_BUT_RCPT =
  ProtocolFlag.NoConnect |
  ProtocolFlag.NoHelo |
  ProtocolFlag.NoMail |
  ProtocolFlag.NoData |
  ProtocolFlag.NoHeaders |
  ProtocolFlag.NoEndOfHeaders |
  ProtocolFlag.NoBody;

/** Commands a milter never answers. */
const UNANSWERED = new Set(["macro", "abort", "quit", "quitNewConnection"]);

let server: Server | undefined;
afterEach(() => {
  vi.restoreAllMocks();
  server?.close();
  server = undefined;
});

/** A milter that skips every stage but RCPT and EOM, asks for `lists`, answers continue. */
async function recordingMilter(
  lists: Map<number, string>,
  protocol = SKIP_ALL_BUT_RCPT,
): Promise<{ port: number; recording: Recording }> {
  const recording: Recording = { writes: [] };
  // Half-open allowed: the milter never closes first, so a session ends only if the client closes.
  server = createServer({ allowHalfOpen: true }, (socket: Socket) => {
    const reader = new FrameReader(1 << 20);
    socket.on("data", (chunk: Buffer) => {
      for (const command of commandsIn(reader, chunk)) answer(socket, command, lists, protocol);
    });
  });
  await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  const port = address.port;
  // Every write of a socket connected to this milter is the client's.
  const write = Socket.prototype.write;
  const clientReader = new FrameReader(1 << 20);
  vi.spyOn(Socket.prototype, "write").mockImplementation(function (this: Socket, ...args: unknown[]) {
    if (this.remotePort === port) recording.writes.push(commandsIn(clientReader, args[0] as Buffer));
    return (write as (...a: unknown[]) => boolean).apply(this, args);
  });
  return { port, recording };
}

function commandsIn(reader: FrameReader, chunk: Buffer): MilterCommand[] {
  const commands: MilterCommand[] = [];
  for (const frame of reader.push(chunk)) {
    if (frame instanceof ProtocolError) throw new Error(frame.message);
    const command = decodeCommand(frame);
    if (command instanceof ProtocolError) throw new Error(command.message);
    commands.push(command);
  }
  return commands;
}

function answer(socket: Socket, command: MilterCommand, lists: Map<number, string>, protocol: number): void {
  if (command.type === "optneg") {
    socket.write(encodeNegotiation(Command.OptionNegotiation, 6, 0x100, protocol, lists));
  } else if (!UNANSWERED.has(command.type)) {
    socket.write(PACKET.continue);
  }
}

async function session(port: number, mta?: MtaMacros): Promise<void> {
  const client = await MilterClient.connect(`inet:${port}@127.0.0.1`, 5000, mta ? { mta } : {});
  await client.negotiate();
  const info = { hostname: "client.example", family: "inet" as const, port: 40000, address: "198.51.100.7" };
  expect(await client.connectInfo(info)).toBeUndefined();
  expect(await client.helo("client.example")).toBeUndefined();
  expect(await client.mail("<alice@example.com>")).toBeUndefined();
  expect(await client.rcpt("<bob@example.org>")).toEqual({ type: "continue" });
  expect(await client.rcpt("<carol@example.org>")).toEqual({ type: "continue" });
  expect(await client.data()).toBeUndefined();
  expect(await client.header("Subject", "hello")).toBeUndefined();
  expect(await client.eoh()).toBeUndefined();
  expect(await client.body(Buffer.from("hi\r\n"))).toBeUndefined();
  expect((await client.eom()).reply).toEqual({ type: "continue" });
  // Postfix closes right after writing QUIT, without waiting for the milter to close.
  client.quit();
  await client.closed();
}

/** Each read as a list of "type" or "D<stage letter> name=value ...". */
function shape(recording: Recording): string[][] {
  return recording.writes.map((write) =>
    write.map((command) =>
      command.type === "macro"
        ? [
            `D${String.fromCharCode(command.forCommand)}`,
            ...command.macros.map(([n, v]) => `${n}=${v}`),
          ].join(" ")
        : command.type,
    ),
  );
}

describe("MilterClient as Postfix", () => {
  it("sends Postfix's default macros, for skipped envelope stages too, in one write per reply", async () => {
    const lists = new Map([[MACRO_STAGE_NUMBER.rcpt, "{mail_addr} i {client_addr}"]]);
    const { port, recording } = await recordingMilter(lists);
    await session(port, POSTFIX_MACROS);
    expect(shape(recording)).toEqual([
      ["optneg"],
      [
        "DC j=mx.example.net {daemon_name}=mx.example.net {daemon_addr}=192.0.2.25 v=Postfix 3.7.11 _=client.example [198.51.100.7]",
        "DH",
        // No queue ID before the first accepted recipient.
        "DM {mail_addr}=alice@example.com {mail_host}=example.com {mail_mailer}=smtp",
        // The milter's own list replaces the default at RCPT.
        "DR {mail_addr}=alice@example.com {client_addr}=198.51.100.7",
        "rcpt",
      ],
      [
        expect.stringMatching(
          /^DR \{mail_addr\}=alice@example\.com i=4Z\w{10} \{client_addr\}=198\.51\.100\.7$/,
        ),
        "rcpt",
      ],
      // DATA's macros although DATA is skipped; none for the skipped header, end of headers, body.
      [expect.stringMatching(/^DT i=4Z\w{10}$/), expect.stringMatching(/^DE i=4Z\w{10}$/), "eom"],
      ["quit"],
    ]);
  });

  it("sends the end-of-header list before each header and the end-of-message list before body chunks", async () => {
    const lists = new Map([[MACRO_STAGE_NUMBER.eom, "{rcpt_addr}"]]);
    const { port, recording } = await recordingMilter(lists, ProtocolFlag.NoConnect | ProtocolFlag.NoHelo);
    const client = await MilterClient.connect(`inet:${port}@127.0.0.1`, 5000, { mta: POSTFIX_MACROS });
    await client.negotiate();
    await client.mail("<a@example.com>");
    await client.rcpt("<b@example.org>");
    expect(await client.header("Subject", "hello")).toEqual({ type: "continue" });
    expect(await client.eoh()).toEqual({ type: "continue" });
    expect(await client.body(Buffer.from("hi\r\n"))).toEqual({ type: "continue" });
    client.quit();
    expect(shape(recording).slice(3)).toEqual([
      [expect.stringMatching(/^DL i=4Z\w{10}$/), "header"],
      [expect.stringMatching(/^DN i=4Z\w{10}$/), "eoh"],
      ["DB {rcpt_addr}=b@example.org", "body"],
      ["quit"],
    ]);
  });

  it("gives each transaction its own queue ID, from its first accepted recipient on", async () => {
    const lists = new Map([[MACRO_STAGE_NUMBER.rcpt, "i {rcpt_addr}"]]);
    const { port, recording } = await recordingMilter(lists);
    const client = await MilterClient.connect(`inet:${port}@127.0.0.1`, 5000, { mta: POSTFIX_MACROS });
    await client.negotiate();
    for (const rcpt of ["<b@example.org>", "<c@example.org>"]) {
      await client.mail("<a@example.com>");
      await client.rcpt(rcpt);
      await client.rcpt(rcpt);
      client.abort();
    }
    client.quit();
    const rcptMacros = shape(recording)
      .flat()
      .filter((packet) => packet.startsWith("DR "));
    const ids = rcptMacros.map((packet) => /i=(\w+)/.exec(packet)?.[1]);
    expect(ids[0]).toBeUndefined();
    expect(ids[2]).toBeUndefined();
    expect(ids[1]).toMatch(/^4Z\w{10}$/);
    expect(ids[3]).toMatch(/^4Z\w{10}$/);
    expect(ids[3]).not.toBe(ids[1]);
  });

  it("without an MTA's defaults, sends only the macros asked for, and none for skipped stages", async () => {
    const lists = new Map([[MACRO_STAGE_NUMBER.rcpt, "{rcpt_addr} i"]]);
    const { port, recording } = await recordingMilter(lists);
    await session(port);
    expect(shape(recording)).toEqual([
      ["optneg"],
      ["DR {rcpt_addr}=bob@example.org", "rcpt"],
      ["DR {rcpt_addr}=carol@example.org", "rcpt"],
      ["eom"],
      ["quit"],
    ]);
  });
});
