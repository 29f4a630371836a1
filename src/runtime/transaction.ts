/**
 * The values of one SMTP transaction, filled stage by stage, as the rules see them.
 */
import type { Stage } from "../common/stages.js";

export interface Transaction {
  stage: Stage;
  client: { ip: string; name: string; port: number };
  helo: string;
  authUser: string;
  /**
   * Envelope sender as the client wrote it, without angle brackets (common/address bareAddress);
   * "" for the null sender. Rules compare and look up its normalised form; texts show this.
   */
  from: string;
  /** SIZE= of MAIL FROM, 0 when absent. */
  declaredSize: number;
  /** Bytes of the header lines seen so far, each as `Name: value` and CRLF. */
  headerBytes: number;
  /** Body bytes seen so far. */
  bodyBytes: number;
  /** The whole message (header lines, the blank line, the body), known at eom; 0 before. */
  messageBytes: number;
  /** The recipient being decided, as the client wrote it, without angle brackets. */
  rcpt: string;
  /** Recipients accepted so far, as written (rules see them normalised). */
  rcpts: string[];
  header: { name: string; value: string };
  /** Lower-cased header name → first value. */
  headers: Map<string, string>;
  macro(name: string): string | undefined;
}

export function newTransaction(macro: (name: string) => string | undefined = () => undefined): Transaction {
  return {
    stage: "connect",
    client: { ip: "", name: "", port: 0 },
    helo: "",
    authUser: "",
    from: "",
    declaredSize: 0,
    headerBytes: 0,
    bodyBytes: 0,
    messageBytes: 0,
    rcpt: "",
    rcpts: [],
    header: { name: "", value: "" },
    headers: new Map(),
    macro,
  };
}

/** Starts a new message on the same connection: envelope and content are forgotten. */
export function resetMessage(tx: Transaction): void {
  tx.authUser = "";
  tx.from = "";
  tx.declaredSize = 0;
  tx.headerBytes = 0;
  tx.bodyBytes = 0;
  tx.messageBytes = 0;
  tx.rcpt = "";
  tx.rcpts = [];
  tx.header = { name: "", value: "" };
  tx.headers = new Map();
}

/** `SIZE=12345` among MAIL FROM's ESMTP arguments, else 0. */
export function declaredSize(esmtpArgs: readonly string[]): number {
  for (const arg of esmtpArgs) {
    const match = /^SIZE=(\d{1,15})$/i.exec(arg.trim());
    if (match) return Number(match[1]);
  }
  return 0;
}

/**
 * The incoming message's size as rules and quota() see it: the SIZE= of MAIL FROM until the end
 * of message, then the whole message.
 */
export function incomingSize(tx: Transaction): number {
  return tx.stage === "eom" ? tx.messageBytes : tx.declaredSize;
}

/**
 * A header line's bytes as the message carries it: `Name: value` and CRLF, each line break of a
 * folded value a CRLF too (the MTA sends folded values with bare LFs).
 */
export function headerLineBytes(name: string, value: string): number {
  let breaks = 0;
  for (let at = value.indexOf("\n"); at !== -1; at = value.indexOf("\n", at + 1)) {
    if (at === 0 || value.charCodeAt(at - 1) !== 13) breaks++;
  }
  return Buffer.byteLength(name) + 2 + Buffer.byteLength(value) + breaks + 2;
}
