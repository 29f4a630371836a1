/**
 * Where each character of an http(s) URL template falls, split as the WHATWG URL parser (which
 * undici uses) splits the filled URL. Checking a configuration and filling a URL both use it, so
 * what `validate` accepts is exactly what a lookup relies on: placeholders only in path and query.
 */

export type UrlPart = "scheme" | "userinfo" | "host" | "port" | "path" | "query" | "fragment";

export interface UrlSpan {
  part: UrlPart;
  start: number;
  end: number;
}

/** The parts a template may put client-supplied values in: they cannot choose the server asked. */
export const VALUE_PARTS: readonly UrlPart[] = ["path", "query"];

/** The first index at or after `from` of one of `chars`, or `end`. */
function firstOf(text: string, chars: string, from: number, end = text.length): number {
  for (let i = from; i < end; i++) if (chars.includes(text[i] as string)) return i;
  return end;
}

/** userinfo@host:port, as the parser reads an authority: the last '@' ends userinfo. */
function authoritySpans(template: string, start: number, end: number): UrlSpan[] {
  const spans: UrlSpan[] = [];
  const at = template.lastIndexOf("@", end - 1);
  let hostStart = start;
  if (at >= start) {
    spans.push({ part: "userinfo", start, end: at });
    hostStart = at + 1;
  }
  // A ':' inside [an IPv6 literal] is part of the host.
  const bracketEnd = template[hostStart] === "[" ? firstOf(template, "]", hostStart, end) : hostStart;
  const colon = firstOf(template, ":", bracketEnd, end);
  spans.push({ part: "host", start: hostStart, end: colon });
  if (colon < end) spans.push({ part: "port", start: colon + 1, end });
  return spans;
}

/**
 * The spans of a template in order. For http and https (special schemes) the parser skips any run
 * of '/' or '\' after the scheme, and '\' ends the authority like '/': so does this.
 */
export function urlSpans(template: string): UrlSpan[] {
  const scheme = /^[^:/?#\\]*:/.exec(template);
  if (scheme === null) return [{ part: "path", start: 0, end: template.length }];
  const spans: UrlSpan[] = [{ part: "scheme", start: 0, end: scheme[0].length - 1 }];
  let authority = scheme[0].length;
  while (template[authority] === "/" || template[authority] === "\\") authority++;
  const pathStart = firstOf(template, "/\\?#", authority);
  spans.push(...authoritySpans(template, authority, pathStart));
  const queryStart = firstOf(template, "?#", pathStart);
  spans.push({ part: "path", start: pathStart, end: queryStart });
  const fragmentStart = firstOf(template, "#", queryStart);
  if (queryStart < fragmentStart) spans.push({ part: "query", start: queryStart + 1, end: fragmentStart });
  if (fragmentStart < template.length) {
    spans.push({ part: "fragment", start: fragmentStart + 1, end: template.length });
  }
  return spans;
}

/** The part the character at `index` belongs to. */
export function urlPartAt(template: string, index: number): UrlPart {
  const span = urlSpans(template).find((s) => index >= s.start && index < s.end);
  return span?.part ?? "path";
}
