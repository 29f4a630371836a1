/**
 * Texts of actions (reply texts, quarantine reasons, log texts, header values): their
 * placeholders must name a value known at the rule's stages, a placeholder of a function the
 * rule calls (`{quota.usage}`), or a DNSBL source's zone or reason.
 */
import { suggest } from "../../common/suggest.js";
import type { Template } from "../ast.js";
import { DNSBL_ATTRIBUTES } from "../source-kinds.js";
import { parseTemplate } from "../template.js";
import type { RuleScope } from "./scope.js";

export class Texts {
  constructor(private readonly scope: RuleScope) {}

  check(template: Template, what: string): void {
    // File offset of a character of the text (escapes make it differ from span.start + 1 + i).
    const offsetOf = (index: number) => template.offsets?.[index] ?? template.span.start + 1 + index;
    const parsed = parseTemplate(template.text);
    if (!Array.isArray(parsed)) {
      this.scope.report(offsetOf(parsed.offset), "error", `${what}: ${parsed.message}`, parsed.hint);
      return;
    }
    this.scope.session.result.templates.set(template, parsed);
    for (const part of parsed)
      if (part.kind === "placeholder") this.placeholder(part.name, offsetOf(part.offset));
  }

  private placeholder(name: string, at: number): void {
    const scope = this.scope;
    const value = scope.registry.value(name);
    if (value !== undefined) {
      scope.known(`{${name}}`, { start: at, end: at + name.length + 2 }, value.from, value.only);
      scope.session.result.valuesUsed.add(name);
      return;
    }
    const fromCall = scope.registry.placeholder(name);
    if (fromCall !== undefined) {
      if (!scope.hasCall(fromCall.word.name))
        scope.report(at, "error", `{${name}} needs a ${fromCall.word.name}(...) lookup in the same rule`);
      return;
    }
    const [head, attribute] = name.split(".");
    const source = head === undefined ? undefined : scope.sources.get(head);
    if (source?.kind === "dnsbl" && (DNSBL_ATTRIBUTES as readonly string[]).includes(attribute ?? "")) {
      scope.use(source.name);
      if (attribute !== "zone" && !scope.looksUpDnsbl(source.name))
        scope.report(at, "warning", `{${name}} is empty unless this rule looks '${source.name}' up`);
      return;
    }
    const candidates = [...scope.registry.valueNames(), ...scope.registry.placeholderNames()];
    for (const s of scope.sources.values())
      if (s.kind === "dnsbl") candidates.push(...DNSBL_ATTRIBUTES.map((a) => `${s.name}.${a}`));
    scope.report(at, "error", `unknown placeholder '{${name}}'`, placeholderHint(name, candidates));
  }
}

/**
 * Names other MTAs and milters use for what filterctl calls otherwise; a newcomer's first guess.
 * Suggested only when the target is a candidate.
 */
const SYNONYMS: Readonly<Record<string, string>> = {
  mail_from: "from",
  sender: "from",
  envelope_from: "from",
  recipient: "rcpt",
  envelope_to: "rcpt",
  client_addr: "client.ip",
  client_address: "client.ip",
  hostname: "client.name",
};

/**
 * The nearest placeholder. Plain edit distance misses the usual mistakes with placeholders: an
 * underscore for the dot (`{client_ip}`), a word appended (`{rcpt_to}`), another MTA's name.
 */
function placeholderHint(name: string, candidates: readonly string[]): string | undefined {
  const near = suggest(name, candidates);
  if (near !== undefined) return near;
  const byLower = new Map(candidates.map((c) => [c.toLowerCase(), c]));
  const lower = name.toLowerCase();
  const synonym = SYNONYMS[lower];
  if (synonym !== undefined && byLower.has(synonym)) return `did you mean '${synonym}'?`;
  const segments = lower.split(/[._-]/).filter((s) => s !== "");
  // The longest run of leading words that names a placeholder: rcpt_to → rcpt, client_ip → client.ip.
  for (let n = segments.length; n > 0; n--) {
    const found = byLower.get(segments.slice(0, n).join("."));
    if (found !== undefined) return `did you mean '${found}'?`;
  }
  return suggest(segments.join("."), candidates);
}
