/**
 * Copies of the compiler's small closure factories, each a function of its own to V8.
 *
 * Why: V8 keeps what a call site has seen (its feedback) per function literal, so every rule's
 * run closure made by one factory shares its call sites: `condition(run)` in the runner sees the
 * conditions of every rule, goes megamorphic and is never inlined. A rule whose runner, `and` /
 * `or` pairs and subject readers come from copies of their own has call sites that see one target
 * each, which the optimiser inlines (measured on `npm run bench:dsl`'s policy: about 4 % of
 * evaluation time). Copies are made once, when this module loads; rules take them in turn, so up
 * to COPIES rules have theirs alone and more rules share a copy between a few.
 *
 * A factory given to `copiesOf` must use nothing but its parameters and globals: a copy is
 * compiled from the factory's source text, outside the module's scope. No text of a rule, or of
 * anything else read at run time, ever goes into a copy: its source is the factory's, fixed.
 * Where Node refuses to compile code from text (--disallow-code-generation-from-strings), the
 * factory itself serves every rule.
 */

/** Copies of each factory: enough for the rules of most configurations to have theirs alone. */
const COPIES = 64;

/** The factory and its copies, answered in turn by `next`. */
export class ClosureCopies<F extends (...args: never[]) => unknown> {
  private readonly copies: readonly F[];
  private turn = 0;

  constructor(factory: F) {
    this.copies = copiesOf(factory);
  }

  /** The next copy in turn. */
  next(): F {
    const copy = this.copies[this.turn] as F;
    this.turn = (this.turn + 1) % this.copies.length;
    return copy;
  }
}

function copiesOf<F>(factory: F): readonly F[] {
  const source = String(factory);
  try {
    // A comment of its own in each copy: V8 caches what it compiled by source text, and
    // identical texts would give one shared function again.
    return Array.from(
      { length: COPIES },
      (_, i) => new Function(`"use strict"; /* copy ${i} */ return (${source});`)() as F,
    );
  } catch (error) {
    // Node run with --disallow-code-generation-from-strings: the factory itself, shared by every
    // rule (slower call sites, the same answers).
    if (error instanceof EvalError) return [factory];
    throw error;
  }
}
