/**
 * mbox: a spool file's size (and message count) against the configured quota.
 * In rules: quota(rcpt, NAME).
 */
import type { SourceDescriptor } from "../descriptor.js";
import { createMboxSource, type MboxSourceConfig } from "../mbox.js";
import { mailboxOptions } from "./mailbox.js";

declare module "../../config/types.js" {
  interface SourceConfigs {
    mbox: MboxSourceConfig;
  }
}

export const mbox: SourceDescriptor<MboxSourceConfig> = {
  type: "mbox",
  kind: "quota",
  label: "mbox",
  servesQuota: true,
  // The source re-validates its file cheaply itself: no TTL by default.
  ttlMs: { positive: 0, negative: 0 },
  schema: {
    summary: "mbox (spool size)",
    typeDescription: "mbox: spool file size against `quota`.",
    definition: {
      description: "mbox spool size against a configured limit.",
      required: ["path", "quota"],
      properties: {
        path: {
          $ref: "#/definitions/pathTemplate",
          description: "Path of the user's spool file, e.g. /var/mail/{user}.",
        },
        quota: {
          $ref: "#/definitions/quota",
          description: "The limit (e.g. 200MB, or {bytes: 200MB, messages: 10000}).",
        },
      },
    },
  },
  build: (raw, base, ctx) => ({ ...base, type: "mbox", ...mailboxOptions(raw, ctx) }),
  create: (config, ctx) => createMboxSource(config, ctx),
};
