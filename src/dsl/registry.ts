/**
 * What exists in the language: the values of a transaction (and from which stage on), the
 * functions, the members of a quota status, and what each source type offers. The checker and
 * the compiler both read this table; neither hard-codes names.
 */

import type { Stage } from "../common/stages.js";

export type ValueType =
  | "string"
  | "address"
  | "localpart"
  | "domain"
  | "ip"
  | "number"
  | "size"
  | "duration"
  | "bool"
  | "list"
  | "quota"
  | "table"
  | "any";

export interface ValueInfo {
  type: ValueType;
  /** First stage where the value is known. */
  from: Stage;
  /** Only during this one stage (e.g. the current header). */
  only?: Stage;
  /** Stages whose events must be seen for the value to be filled. */
  needs: Stage[];
  /** Macros the MTA must send for it, per stage. */
  macros?: { stage: Stage; names: string[] }[];
  description: string;
}

export const VALUES: Record<string, ValueInfo> = {
  "client.ip": {
    type: "ip",
    from: "connect",
    needs: ["connect"],
    description: "the SMTP client's IP address",
  },
  "client.name": {
    type: "string",
    from: "connect",
    needs: ["connect"],
    description: "the client's host name",
  },
  "client.port": {
    type: "number",
    from: "connect",
    needs: ["connect"],
    description: "the client's TCP port",
  },
  helo: { type: "string", from: "helo", needs: ["helo"], description: "the HELO/EHLO argument" },
  "auth.user": {
    type: "string",
    from: "mail",
    needs: ["mail"],
    macros: [{ stage: "mail", names: ["{auth_authen}"] }],
    description: 'the SASL login, "" when none',
  },
  from: { type: "address", from: "mail", needs: ["mail"], description: 'the envelope sender; "" for <>' },
  "from.local": {
    type: "localpart",
    from: "mail",
    needs: ["mail"],
    description: "the sender's local part, unquoted",
  },
  "from.domain": { type: "domain", from: "mail", needs: ["mail"], description: "the sender's domain" },
  size: {
    type: "size",
    from: "mail",
    needs: ["mail"],
    description: "SIZE= of MAIL FROM (0 if absent); at eom the real body size",
  },
  rcpt: {
    type: "address",
    from: "rcpt",
    only: "rcpt",
    needs: ["rcpt"],
    description: "the recipient being decided",
  },
  "rcpt.local": {
    type: "localpart",
    from: "rcpt",
    only: "rcpt",
    needs: ["rcpt"],
    description: "its local part, unquoted",
  },
  "rcpt.domain": { type: "domain", from: "rcpt", only: "rcpt", needs: ["rcpt"], description: "its domain" },
  rcpts: { type: "list", from: "data", needs: ["rcpt"], description: "the accepted recipients" },
  "header.name": {
    type: "string",
    from: "header",
    only: "header",
    needs: ["header"],
    description: "the current header's name",
  },
  "header.value": {
    type: "string",
    from: "header",
    only: "header",
    needs: ["header"],
    description: "the current header's value",
  },
};

/** Values whose names are prefixes of others are still usable alone (`from`, `rcpt`). */
export const VALUE_NAMES = Object.keys(VALUES);

export interface FunctionInfo {
  from: Stage;
  needs: Stage[];
  returns: ValueType;
  description: string;
}

export const FUNCTIONS: Record<string, FunctionInfo> = {
  quota: {
    from: "mail",
    needs: [],
    returns: "quota",
    description: "quota(ADDRESS[, SOURCE]): a quota status",
  },
  header: {
    from: "eoh",
    needs: ["header"],
    returns: "string",
    description: 'header("Name"): the first value of that header, "" when absent',
  },
  macro: {
    from: "connect",
    needs: [],
    returns: "string",
    description: 'macro("{name}"): a macro the MTA sent',
  },
};

export const QUOTA_MEMBERS: Record<string, ValueType> = {
  over: "bool",
  usage: "size",
  limit: "size",
  count: "number",
  count_limit: "number",
  percent: "number",
};

/** Attributes usable in reply text as {NAME.attr}. */
export const DNSBL_ATTRIBUTES = ["zone", "reason"] as const;

/** Placeholders allowed in reply, log and header texts, beyond VALUES. */
export const QUOTA_PLACEHOLDERS = [
  "quota.usage",
  "quota.limit",
  "quota.percent",
  "quota.count",
  "quota.count_limit",
];

/** The MTA sends the macro stage lists for these stages only; others borrow the nearest earlier one. */
export const MACRO_STAGE_FOR: Record<Stage, "connect" | "helo" | "mail" | "rcpt" | "data" | "eoh" | "eom"> = {
  connect: "connect",
  helo: "helo",
  mail: "mail",
  rcpt: "rcpt",
  data: "data",
  header: "data",
  eoh: "eoh",
  body: "eoh",
  eom: "eom",
};

/** Types that are compared as text (domains, addresses and local parts normalised first). */
export function isTextual(type: ValueType): boolean {
  return (
    type === "string" ||
    type === "address" ||
    type === "localpart" ||
    type === "domain" ||
    type === "ip" ||
    type === "any"
  );
}

export function isNumeric(type: ValueType): boolean {
  return type === "number" || type === "size" || type === "duration" || type === "any";
}
