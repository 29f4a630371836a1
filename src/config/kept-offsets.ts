/**
 * Config.offsetOf for as long as a configuration lives (serve keeps one, reloads keep the next):
 * valueOffset's answers, without keeping the nodes of the `rules:` list. Those were about 10 MB
 * of the 67 MB a validated 10,000-rule file kept alive (a pair, two scalars and their ranges per
 * key of a rule), to answer a question asked about sources' options. The rules' starts are kept
 * as numbers, the rest of the document as it is.
 *
 * Only a list of the shape rules are written in is kept so (each item a scalar or a mapping of
 * scalar keys to non-empty scalar values, no aliases or anchors: an alias elsewhere could name an
 * anchor in it); for any other, offsetOf reads the whole document as before.
 */
import { type Document, isAlias, isMap, isPair, isScalar, isSeq, type Node, type YAMLSeq } from "yaml";
import {
  findPair,
  isEmptyValue,
  nodeStart,
  type PathSegment,
  resolve,
  valueOffset,
} from "./yaml-positions.js";

/**
 * The offsetOf of a built configuration. Takes the `rules:` list out of `doc` when it keeps its
 * positions (the entry is left without a value): call it when nothing else will read the document.
 */
export function keptOffsets(doc: Document): (path: readonly PathSegment[]) => number {
  const top = resolve(doc, doc.contents);
  const pair = isMap(top) ? findPair(doc, top, "rules") : undefined;
  const list = pair?.value;
  const rules =
    isSeq(list) && pair !== undefined ? RulePositions.of(list, nodeStart(resolve(doc, pair.key))) : undefined;
  if (rules === undefined || pair === undefined) return (path) => valueOffset(doc, path);
  pair.value = null;
  return (path) =>
    path.length > 0 && String(path[0]) === "rules" ? rules.offsetOf(path) : valueOffset(doc, path);
}

/** One string per distinct key text, however many rules use it. */
function interned(seen: Map<string, string>, text: string): string {
  const known = seen.get(text);
  if (known !== undefined) return known;
  seen.set(text, text);
  return text;
}

/** The starts of a rules list's nodes, answering as valueOffset does for paths under `rules`. */
class RulePositions {
  private constructor(
    /** The list's start (`rules`), and the rules key's start (an index that is not an item's). */
    private readonly whole: number,
    private readonly outside: number,
    private readonly itemStart: Int32Array,
    /** Item i's keys are firstKey[i] up to firstKey[i + 1] (none for a scalar). */
    private readonly firstKey: Int32Array,
    private readonly keys: readonly string[],
    private readonly keyStart: Int32Array,
    private readonly valueStart: Int32Array,
  ) {}

  static of(list: YAMLSeq, key: number | undefined): RulePositions | undefined {
    if (list.anchor !== undefined) return undefined;
    const items = list.items;
    const itemStart = new Int32Array(items.length);
    const firstKey = new Int32Array(items.length + 1);
    const keys: string[] = [];
    // Starts in typed arrays grown by doubling: a number array and Int32Array.from's iteration
    // were about 4 MB of allocation for a 10,000-rule file.
    let keyStart = new Int32Array(4 * items.length + 4);
    let valueStart = new Int32Array(keyStart.length);
    const seen = new Map<string, string>();
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (!plain(item)) return undefined;
      itemStart[i] = nodeStart(item) ?? 0;
      if (isMap(item)) {
        for (const entry of item.items) {
          if (!isPair(entry) || !plain(entry.key) || !plain(entry.value) || isMap(entry.value))
            return undefined;
          if (isEmptyValue(entry.value) || !isScalar(entry.key)) return undefined;
          if (keys.length === keyStart.length) {
            keyStart = grown(keyStart);
            valueStart = grown(valueStart);
          }
          keyStart[keys.length] = nodeStart(entry.key) ?? 0;
          valueStart[keys.length] = nodeStart(entry.value) ?? 0;
          keys.push(interned(seen, String(entry.key.value)));
        }
      }
      firstKey[i + 1] = keys.length;
    }
    const whole = nodeStart(list) ?? 0;
    const used = keys.length;
    return new RulePositions(
      whole,
      key ?? whole,
      itemStart,
      firstKey,
      keys,
      keyStart.slice(0, used),
      valueStart.slice(0, used),
    );
  }

  /** valueOffset(doc, path) for a path whose first segment is `rules`. */
  offsetOf(path: readonly PathSegment[]): number {
    if (path.length === 1) return this.whole;
    const segment = path[1] as PathSegment;
    const index = typeof segment === "number" ? segment : Number(segment);
    // What items[index] finds: an integer index in range (-0 is 0).
    if (!Number.isInteger(index) || index < 0 || index >= this.itemStart.length) return this.outside;
    const item = index + 0;
    const start = this.itemStart[item] as number;
    if (path.length === 2) return start;
    const name = String(path[2]);
    // The last entry of that key, as findPair keeps; a scalar has none, and answers itself.
    for (let k = (this.firstKey[item + 1] as number) - 1; k >= (this.firstKey[item] as number); k--) {
      if (this.keys[k] !== name) continue;
      // Below a scalar value nothing is found; valueOffset then answers the entry's key.
      return path.length === 3 ? (this.valueStart[k] as number) : (this.keyStart[k] as number);
    }
    return start;
  }
}

function grown(array: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
  const bigger = new Int32Array(array.length * 2);
  bigger.set(array);
  return bigger;
}

/** A scalar or mapping without alias or anchor: a node a rules list item (or its key, value) may be. */
function plain(node: unknown): node is Node {
  if (isAlias(node) || !(isScalar(node) || isMap(node))) return false;
  return node.anchor === undefined;
}
