/**
 * maildir: a mailbox's Maildir++ quota, from its maildirsize file (SPEC "Maildir++ quota").
 * In rules: quota(rcpt, NAME).
 */
import type { SourceDescriptor } from "../descriptor.js";
import { createMaildirSource, type MaildirSourceConfig } from "../maildir.js";
import { mailboxOptions } from "./mailbox.js";

declare module "../../config/types.js" {
  interface SourceConfigs {
    maildir: MaildirSourceConfig;
  }
}

export const maildir: SourceDescriptor<MaildirSourceConfig> = {
  type: "maildir",
  kind: "quota",
  label: "maildir",
  servesQuota: true,
  // The source re-validates its files cheaply itself: no TTL by default.
  ttlMs: { positive: 0, negative: 0 },
  schema: {
    summary: "maildir (Maildir++ quota)",
    typeDescription: "maildir: Maildir++ quota from maildirsize.",
    definition: {
      description: "Maildir++ quota, from the mailbox's maildirsize file.",
      required: ["path"],
      properties: {
        path: {
          $ref: "#/definitions/pathTemplate",
          description: "Path of the user's Maildir, e.g. /var/mail/{user}/Maildir.",
        },
        quota: {
          $ref: "#/definitions/quota",
          description:
            "Limit used when maildirsize defines none (e.g. 200MB, or {bytes: 200MB, messages: 10000}).",
        },
      },
    },
  },
  build: (raw, base, ctx) => ({ ...base, type: "maildir", ...mailboxOptions(raw, ctx) }),
  // The quota service reports a mailbox without maildirsize or limit with its real usage, not zeros.
  create: (config, ctx) =>
    createMaildirSource(config, ctx, ctx.quotaService === true ? { measureWithoutLimit: true } : {}),
};
