/**
 * What each source type offers the rules: which types answer quota(), and the attributes a DNSBL
 * source gives texts. (The per-type descriptors of issue 9 item 2 replace this table.)
 */
import type { SourceType } from "../config/types.js";

export const QUOTA_SOURCE_TYPES: ReadonlySet<SourceType> = new Set(["maildir", "mbox", "http"]);

/** Attributes usable in reply text as {NAME.attr}. */
export const DNSBL_ATTRIBUTES = ["zone", "reason"] as const;
