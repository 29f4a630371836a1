/**
 * What maildir and mbox sources share: a mailbox path with placeholders, and a quota limit.
 */
import type { LocatedText, QuotaLimit, SourceBuildContext } from "../../config/types.js";

/** `path` and `quota` of a mailbox source, checked: a path without {user} is one mailbox for all. */
export function mailboxOptions(
  raw: Record<string, unknown>,
  ctx: SourceBuildContext,
): { path: string; quota?: QuotaLimit } {
  const located: LocatedText = ctx.placeholders(["path"], "'path'");
  if (!/\{(user|address|key)\}/.test(located.text)) {
    ctx.warning(
      located.offsetAt(0),
      `'path' of source '${ctx.name}' has no {user} or {address}: every recipient shares one mailbox`,
    );
  }
  const quota = ctx.quota(raw.quota);
  return { path: String(raw.path), ...(quota ? { quota } : {}) };
}
