/**
 * The handler `serve` runs until the rules engine exists: it lets every message through and
 * logs each event it sees as a JSON line, so a postmaster can watch what the MTA sends.
 */
import type { Logger } from "pino";
import type { MilterHandler } from "../milter/index.js";

export function eventLoggerHandler(logger: Logger): MilterHandler {
  const event = (conn: number, stage: string, fields: object = {}) =>
    logger.info({ conn, stage, ...fields }, "event");
  return {
    connect(info, session) {
      event(session.id, "connect", {
        client: info.address,
        name: info.hostname,
        port: info.port,
        family: info.family,
      });
    },
    helo(name, session) {
      event(session.id, "helo", { helo: name });
    },
    mail(sender, args, session) {
      event(session.id, "mail", { from: sender, args, auth: session.macro("{auth_authen}") ?? "" });
    },
    rcpt(recipient, args, session) {
      event(session.id, "rcpt", { rcpt: recipient, args });
    },
    data(session) {
      event(session.id, "data");
    },
    header(name, value, session) {
      event(session.id, "header", { name, value });
    },
    eoh(session) {
      event(session.id, "eoh");
    },
    body(chunk, session) {
      event(session.id, "body", { bytes: chunk.length });
    },
    eom(session) {
      event(session.id, "eom", { queueId: session.macro("i") ?? "" });
    },
    unknown(line, session) {
      event(session.id, "unknown", { line });
    },
    abort(session) {
      event(session.id, "abort");
    },
    close(session) {
      event(session.id, "close");
    },
  };
}
