/**
 * The packets and rules a hostile MTA peer sends in the hostile tests (test/hostile/,
 * test/milter/hardening.test.ts) and in the fuzz benchmark (bench/fuzz.ts): one definition, so the
 * benchmark attacks with what the tests prove is bounded.
 */
import { encodeCommand, type MilterCommand } from "../../src/milter/index.js";

/** Rules with a list lookup at RCPT and a macro at MAIL, so stages, lookups and macros are used. */
export const HOSTILE_RULES = `sources:
  blocked:
    type: list
    items: ["blocked@example.org"]
rules:
  - on rcpt: if rcpt in blocked then reject 550 5.7.1 "no such user"
  - on mail: if macro("{daemon_name}") == "evil" then reject 550 5.7.1 "evil daemon"
`;

export const command = (c: MilterCommand): Buffer => encodeCommand(c);
/** An MTA offering everything (protocol version 6, every action and protocol flag). */
export const NEGOTIATE = command({
  type: "optneg",
  version: 6,
  actions: 0x1ff,
  protocol: 0x1fffff,
  macroLists: new Map(),
});
export const PEER_CLIENT = {
  hostname: "client.example",
  family: "inet",
  port: 4242,
  address: "192.0.2.7",
} as const;
export const CONNECT = command({ type: "connect", ...PEER_CLIENT });
export const MAIL = command({ type: "mail", sender: "<a@example.org>", args: [] });
export const RCPT = command({ type: "rcpt", recipient: "<b@example.org>", args: [] });
export const ABORT = command({ type: "abort" });
