/**
 * One spelling per mail address, so that rules, tables and lookups agree on who a recipient is
 * whatever case or quoting the SMTP client chose. `"Bob"@Example.ORG`, `BOB@example.org.` and
 * `bob@example.org` are one mailbox to the MTA; they must be one key to a quota or LDAP lookup
 * too, or a client dodges the check by spelling the address differently.
 *
 * The rules (RFC 5321 §4.1.2, Postfix's table lookups):
 * - the domain is always folded to lower case, and one trailing dot is dropped (`example.org.`);
 * - a quoted local part whose content is a valid dot-atom loses its quotes (`"bob"` is `bob`);
 *   one that needs them keeps them, with only `\` and `"` escaped (`"a\ b"` is `"a b"`);
 * - the local part is folded to lower case unless the mode is `sensitive`.
 *
 * Nothing here throws and nothing is dropped beyond case and redundant quoting: input that is not
 * a well-formed address (unbalanced quotes, several `@`, control bytes, any length) is folded as
 * it is and otherwise left alone, so two different inputs stay different. Every function runs in
 * time linear in its input (no backtracking regular expressions).
 */

/** `insensitive` (the default) folds local parts to lower case, as Postfix's tables do; `sensitive` keeps them exact. */
export type LocalPartMode = "insensitive" | "sensitive";
export const LOCAL_PART_MODES: readonly LocalPartMode[] = ["insensitive", "sensitive"];

export interface AddressParts {
  local: string;
  /** Undefined when the address has no `@` at all (`<Postmaster>`); "" for `bob@`. */
  domain: string | undefined;
}

/** RFC 5322 atext, beside letters and digits. */
const ATEXT_SPECIALS = "!#$%&'*+-/=?^_`{|}~";

function isAtext(code: number): boolean {
  return (
    (code >= 0x61 && code <= 0x7a) ||
    (code >= 0x41 && code <= 0x5a) ||
    (code >= 0x30 && code <= 0x39) ||
    // RFC 6531: any non-ASCII character is atext in an internationalised address.
    code >= 0x80 ||
    ATEXT_SPECIALS.includes(String.fromCharCode(code))
  );
}

/** A Dot-string: atoms of atext joined by single dots; what a local part may be without quotes. */
export function isDotAtom(text: string): boolean {
  if (text === "") return false;
  let atomLength = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x2e) {
      if (atomLength === 0) return false;
      atomLength = 0;
    } else if (isAtext(code)) {
      atomLength++;
    } else {
      return false;
    }
  }
  return atomLength > 0;
}

/** Index of the `"` closing the quoted string that opens `text` at 0, or -1 when it is not closed. */
function closingQuote(text: string): number {
  for (let i = 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c) i++;
    else if (c === 0x22) return i;
  }
  return -1;
}

/**
 * `<Bob@Example.org>` → `Bob@Example.org`, `<>` → "", as the MTA sends MAIL FROM and RCPT TO
 * arguments. Whitespace around is dropped, and a source route (`<@relay.example:bob@example.org>`),
 * which RFC 5321 says to ignore, is removed.
 */
export function bareAddress(text: string): string {
  let address = text.trim();
  if (address.startsWith("<") && address.endsWith(">")) address = address.slice(1, -1).trim();
  if (address.startsWith("@")) {
    const colon = address.indexOf(":");
    if (colon !== -1) address = address.slice(colon + 1);
  }
  return address;
}

/**
 * Splits at the `@` before the domain: the last one, but never one inside a quoted local part
 * (`"a@b"@example.org`). As given: nothing is normalised.
 */
export function splitAddress(address: string): AddressParts {
  const start = address.startsWith('"') ? closingQuote(address) + 1 : 0;
  const at = address.lastIndexOf("@");
  if (at === -1 || at < start) return { local: address, domain: undefined };
  return { local: address.slice(0, at), domain: address.slice(at + 1) };
}

/** The content of a well-formed quoted local part (`"a\ b"` → `a b`), else undefined. */
function quotedContent(local: string): string | undefined {
  if (!local.startsWith('"') || closingQuote(local) !== local.length - 1) return undefined;
  let content = "";
  for (let i = 1; i < local.length - 1; i++) {
    if (local.charCodeAt(i) === 0x5c) i++;
    content += local[i];
  }
  return content;
}

/** What a local part means, quotes and escapes resolved: `"bob+x y"` → `bob+x y`, `bob` → `bob`. */
export function localPartContent(local: string): string {
  return quotedContent(local) ?? local;
}

/** The shortest way to write a local part of that content: bare when it may be, else quoted. */
export function formatLocalPart(content: string): string {
  if (isDotAtom(content)) return content;
  let quoted = '"';
  for (const c of content) quoted += c === "\\" || c === '"' ? `\\${c}` : c;
  return `${quoted}"`;
}

export function normalizeLocalPart(local: string, mode: LocalPartMode = "insensitive"): string {
  const content = quotedContent(local);
  if (content === undefined) return mode === "insensitive" ? local.toLowerCase() : local;
  return formatLocalPart(mode === "insensitive" ? content.toLowerCase() : content);
}

/** Lower case; `example.org.` is `example.org` (but `example.org..` is left alone, as Postfix does). */
export function normalizeDomain(domain: string): string {
  const folded = domain.toLowerCase();
  return folded.length > 1 && folded.endsWith(".") && !folded.endsWith("..") ? folded.slice(0, -1) : folded;
}

/**
 * True when normalising cannot change the address: ASCII without upper case (lower-casing is
 * the identity), not quoted, and no trailing dot.
 */
function isPlainLowerAscii(address: string): boolean {
  const n = address.length;
  if (n === 0 || address.charCodeAt(0) === 0x22 || address.charCodeAt(n - 1) === 0x2e) return false;
  for (let i = 0; i < n; i++) {
    const code = address.charCodeAt(i);
    if (code >= 0x80 || (code >= 0x41 && code <= 0x5a)) return false;
  }
  return true;
}

/**
 * The normalised local part and domain of a bare address (angle brackets already removed by
 * bareAddress: stripping them here would make `<<a>>` normalise to `<a>` and then to `a`).
 */
export function normalizeAddressParts(address: string, mode: LocalPartMode = "insensitive"): AddressParts {
  const { local, domain } = splitAddress(address);
  return {
    local: normalizeLocalPart(local, mode),
    domain: domain === undefined ? undefined : normalizeDomain(domain),
  };
}

/**
 * The one spelling of a bare address: `"Bob"@Example.ORG.` → `bob@example.org`; "" stays "".
 * Normalising twice changes nothing more.
 */
export function normalizeAddress(address: string, mode: LocalPartMode = "insensitive"): string {
  // Most addresses are already in normal form, and this runs several times per lookup.
  if (isPlainLowerAscii(address)) return address;
  const { local, domain } = normalizeAddressParts(address, mode);
  return domain === undefined ? local : `${local}@${domain}`;
}

/**
 * What a local part names, normalised and unquoted: `"Bob+X Y"` → `bob+x y`. The rules' `.local`
 * values and the `{user}` placeholder are this (a mailbox directory or an LDAP uid holds the
 * name, not its SMTP quoting).
 */
export function normalizeLocalContent(local: string, mode: LocalPartMode = "insensitive"): string {
  return localPartContent(normalizeLocalPart(local, mode));
}

/**
 * A local part's content without its `+detail` (`bob+lists` → `bob` with delimiter `+`). A
 * delimiter at the very start is not a detail (`+bob` stays).
 */
export function withoutDetail(content: string, delimiter: string | undefined): string {
  if (!delimiter) return content;
  const cut = content.indexOf(delimiter);
  return cut > 0 ? content.slice(0, cut) : content;
}
