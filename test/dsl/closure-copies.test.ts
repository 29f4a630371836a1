import { describe, expect, it } from "vitest";
import { ClosureCopies } from "../../src/dsl/closure-copies.js";

function makeAdder(n: number): (x: number) => number {
  return (x) => x + n;
}

const OUTSIDE = 5;
function makeOutside(): () => number {
  return () => OUTSIDE;
}

describe("ClosureCopies", () => {
  it("answers copies that behave as the factory, each a function of its own, in turn", () => {
    const copies = new ClosureCopies(makeAdder);
    const seen: ((n: number) => (x: number) => number)[] = [];
    for (let i = 0; i < 64; i++) seen.push(copies.next());
    expect(new Set(seen).size).toBe(64);
    expect(seen).not.toContain(makeAdder);
    for (const [i, make] of seen.entries()) expect(make(i)(10)).toBe(10 + i);
    // The 65th turn is the first copy again.
    expect(copies.next()).toBe(seen[0]);
  });

  it("compiles each copy from the factory's text alone: a name from its module is not there", () => {
    const copy = new ClosureCopies(makeOutside).next();
    expect(makeOutside()()).toBe(5);
    expect(() => copy()()).toThrow(ReferenceError);
  });
});
