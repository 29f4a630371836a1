/**
 * What an MTA sends as macros when the milter does not choose (SMFIF_SETSYMLIST), for a client
 * that plays the MTA: the per-stage name lists and the values the MTA itself knows.
 */
import type { MacroStage, Stage } from "./constants.js";

export interface MtaMacros {
  /** Macro names per stage when the milter asked for none there (space-separated). */
  readonly lists: Readonly<Record<MacroStage, string>>;
  /** `j` and `{daemon_name}`. */
  readonly hostname: string;
  /** `{daemon_addr}`: the address the MTA accepted the SMTP connection on. */
  readonly daemonAddr: string;
  /** `v`. */
  readonly version: string;
  /** `{mail_mailer}` and `{rcpt_mailer}`: the transports the addresses resolve to. */
  readonly senderMailer: string;
  readonly recipientMailer: string;
}

/**
 * Postfix 3.7's defaults (`postconf -d milter_connect_macros` and the others). Postfix sends
 * a macro packet before every command, with only the macros that have a value (possibly none),
 * and for the envelope stages and DATA even when the milter asked it to skip them; headers get
 * the end-of-header list, body chunks the end-of-message list.
 */
export const POSTFIX_MACROS: MtaMacros = {
  lists: {
    connect: "j {daemon_name} {daemon_addr} v _",
    helo: "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
    mail: "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
    rcpt: "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
    data: "i",
    eoh: "i",
    eom: "i",
  },
  hostname: "mx.example.net",
  daemonAddr: "192.0.2.25",
  version: "Postfix 3.7.11",
  senderMailer: "smtp",
  recipientMailer: "virtual",
};

/** The stage whose macro list an MTA sends before a stage's command (Postfix's choice). */
export function macroListStage(stage: Stage): MacroStage | undefined {
  if (stage === "header") return "eoh";
  if (stage === "body") return "eom";
  return stage === "unknown" ? undefined : stage;
}
