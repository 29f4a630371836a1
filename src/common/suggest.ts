/**
 * "Did you mean" hints: the shared didYouMean(), plus swapped neighbours (`ldpa` → `ldap`,
 * `rpct` → `rcpt`), which plain edit distance counts as two mistakes and so misses in short words.
 */
import { didYouMean } from "./diagnostics.js";

function isTransposition(a: string, b: string): boolean {
  if (a.length !== b.length || a.length < 2) return false;
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return i < a.length - 1 && a[i] === b[i + 1] && a[i + 1] === b[i] && a.slice(i + 2) === b.slice(i + 2);
}

export function suggest(word: string, candidates: Iterable<string>): string | undefined {
  const list = [...candidates];
  const hint = didYouMean(word, list);
  if (hint !== undefined) return hint;
  const lower = word.toLowerCase();
  const swapped = list.find((candidate) => isTransposition(lower, candidate.toLowerCase()));
  return swapped === undefined ? undefined : `did you mean '${swapped}'?`;
}

/** The candidate a hint names ("did you mean 'zone'?" → "zone"). */
export function suggested(word: string, candidates: Iterable<string>): string | undefined {
  return /'(.*)'/.exec(suggest(word, candidates) ?? "")?.[1];
}

/** "a, b or c": choices in a sentence. */
export function either(words: readonly string[]): string {
  return words.length < 2 ? words.join("") : `${words.slice(0, -1).join(", ")} or ${words.at(-1)}`;
}
