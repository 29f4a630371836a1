/**
 * Placeholders in source paths, URLs and LDAP filters: `{user}`, `{domain}`, `{address}`,
 * `{key}`. Every value is escaped for where it goes, so no input from an SMTP client reaches a
 * file, a URL or an LDAP filter unescaped.
 */
import { localPartContent, normalizeAddress, splitAddress, withoutDetail } from "../common/address.js";

export interface PlaceholderValues {
  user: string;
  domain: string;
  address: string;
  key: string;
}

/**
 * The values for a key. A key with an `@` is an address, normalised (common/address): `{address}`
 * and `{key}` are its one spelling (`"bob"@Example.ORG` → `bob@example.org`), `{user}` its local
 * part unquoted and without `+detail` when a delimiter is set, `{domain}` lower-cased. Local-part
 * case is kept here: the registry has already folded it unless `local_part: sensitive`. Any
 * other key is used as it is (`{user}` and `{key}` both the key).
 */
export function valuesFor(key: string, recipientDelimiter?: string): PlaceholderValues {
  if (!key.includes("@"))
    return { user: withoutDetail(key, recipientDelimiter), domain: "", address: key, key };
  const address = normalizeAddress(key, "sensitive");
  const { local, domain } = splitAddress(address);
  const user = withoutDetail(localPartContent(local), recipientDelimiter);
  return { user, domain: domain ?? "", address, key: address };
}

/** RFC 4515: `*`, `(`, `)`, `\` and NUL (and any non-ASCII byte) as `\XX`. */
export function escapeLdapFilterValue(value: string): string {
  let out = "";
  for (const byte of Buffer.from(value, "utf8")) {
    const c = String.fromCharCode(byte);
    out +=
      byte < 0x20 || byte > 0x7e || c === "*" || c === "(" || c === ")" || c === "\\"
        ? `\\${byte.toString(16).padStart(2, "0")}`
        : c;
  }
  return out;
}

/**
 * A value is safe in a file path when it cannot leave its directory or name a hidden file:
 * no `/`, `\`, NUL or other control character, not `.`/`..`, no leading dot, not empty, ≤ 255 bytes.
 */
export function isSafePathComponent(value: string): boolean {
  if (value === "" || Buffer.byteLength(value, "utf8") > 255) return false;
  if (value.startsWith(".") || value.includes("..")) return false;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are refused
  return !/[/\\\x00-\x1f\x7f]/.test(value);
}

const PLACEHOLDER = /\{(user|domain|address|key)\}/g;

/** Names used in a template, for checking configurations. */
export function placeholdersIn(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((m) => m[1] as string);
}

export function fillTemplate(
  template: string,
  values: PlaceholderValues,
  escapeValue: (value: string) => string,
): string {
  return template.replace(PLACEHOLDER, (_, name: keyof PlaceholderValues) => escapeValue(values[name]));
}

/** A path with values inserted, or undefined when a value is unsafe (the lookup answers "no such mailbox"). */
export function fillPath(template: string, values: PlaceholderValues): string | undefined {
  let unsafe = false;
  const path = fillTemplate(template, values, (value) => {
    if (!isSafePathComponent(value)) unsafe = true;
    return value;
  });
  return unsafe ? undefined : path;
}

export function fillUrl(template: string, values: PlaceholderValues): string {
  return fillTemplate(template, values, encodeURIComponent);
}

export function fillLdapFilter(template: string, values: PlaceholderValues): string {
  return fillTemplate(template, values, escapeLdapFilterValue);
}
