/**
 * Placeholders in source paths, URLs and LDAP filters: `{user}`, `{domain}`, `{address}`,
 * `{key}`. Every value is escaped for where it goes, so no input from an SMTP client reaches a
 * file, a URL or an LDAP filter unescaped.
 */
import { localPartContent, normalizeAddress, splitAddress, withoutDetail } from "../common/address.js";
import { urlSpans, VALUE_PARTS } from "../config/url-template.js";

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

/**
 * A WHATWG dot segment: `.` or `..`, each dot possibly written `%2e`. The URL parser (so undici)
 * drops such a segment (`..` with its parent) before the request is sent, so percent-encoding the
 * dots of a value would not keep them in the path.
 */
const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;

/**
 * Fills a URL template, checked once: a URL with values URL-encoded, or undefined when a value
 * could change which resource is asked (the lookup answers "no such mailbox"): a value that is
 * `.` or `..`, a path segment a value turns into a dot segment (`.{user}` with an empty user).
 * A template with a placeholder outside path and query (configurations cannot have one, a
 * template given otherwise could) fills nothing.
 */
export function urlFiller(template: string): (values: PlaceholderValues) => string | undefined {
  const spans = urlSpans(template);
  const used = [...template.matchAll(PLACEHOLDER)];
  const misplaced = used.some((match) => {
    const span = spans.find((s) => match.index >= s.start && match.index < s.end);
    return span === undefined || !VALUE_PARTS.includes(span.part);
  });
  if (misplaced) return () => undefined;
  const names = used.map((match) => match[1] as keyof PlaceholderValues);
  const path = spans.find((span) => span.part === "path");
  const segments = (path === undefined ? [] : template.slice(path.start, path.end).split(/[/\\]/)).filter(
    (segment) => placeholdersIn(segment).length > 0,
  );
  return (values) => {
    if (names.some((name) => values[name] === "." || values[name] === "..")) return undefined;
    for (const segment of segments) {
      if (DOT_SEGMENT.test(fillTemplate(segment, values, encodeURIComponent))) return undefined;
    }
    return fillTemplate(template, values, encodeURIComponent);
  };
}

export function fillUrl(template: string, values: PlaceholderValues): string | undefined {
  return urlFiller(template)(values);
}

export function fillLdapFilter(template: string, values: PlaceholderValues): string {
  return fillTemplate(template, values, escapeLdapFilterValue);
}
