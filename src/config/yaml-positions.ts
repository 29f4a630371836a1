/**
 * From a path in the plain value (["sources", "spool", "quota"]) back to the YAML nodes and their
 * file offsets, and a cheap pre-scan that refuses absurdly deep nesting before the (recursive)
 * YAML composer sees it.
 */
import { CST, type Document, isAlias, isMap, isPair, isScalar, isSeq, type Node, type Pair } from "yaml";

export type PathSegment = string | number;

/** Where a path leads: the value node, and the key node when the value is an entry of a mapping. */
export interface Located {
  /** The node at the path, or undefined when the path does not exist. */
  node?: Node | null;
  /** The key of the mapping entry holding it, when there is one. */
  key?: Node | null;
  /** The pair holding it, when there is one. */
  pair?: Pair;
  /** How many segments of the path were found (path.length when all were). */
  depth: number;
  /** The deepest node found (the node itself when the whole path exists). */
  nearest: Node | null;
  nearestKey?: Node | null;
}

/** The node an alias stands for (the node itself when it is none); null for an empty value. */
export function resolve(doc: Document, node: unknown): Node | null {
  let current = node;
  for (let hops = 0; isAlias(current) && hops < 100; hops++) {
    current = current.resolve(doc);
  }
  return (current as Node | undefined) ?? null;
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value);
  if (key === null || key === undefined) return "";
  if (typeof key !== "object") return String(key);
  return undefined;
}

/** Mapping → its entries by key text, built once (a file can have thousands of entries and errors). */
const pairIndexes = new WeakMap<object, Map<string, Pair>>();

/** The entry of a mapping whose key is `name` (the last one, as YAML's toJS keeps the last). */
export function findPair(doc: Document, map: Node | null, name: string): Pair | undefined {
  if (!isMap(map)) return undefined;
  let index = pairIndexes.get(map);
  if (index === undefined) {
    index = new Map();
    for (const item of map.items) {
      if (!isPair(item)) continue;
      const key = keyText(resolve(doc, item.key));
      if (key !== undefined) index.set(key, item);
    }
    pairIndexes.set(map, index);
  }
  return index.get(name);
}

export function locate(doc: Document, path: readonly PathSegment[]): Located {
  let node: Node | null = resolve(doc, doc.contents);
  let key: Node | null | undefined;
  let pair: Pair | undefined;
  let nearestKey: Node | null | undefined;
  for (let depth = 0; depth < path.length; depth++) {
    const segment = path[depth] as PathSegment;
    let next: Node | null | undefined;
    if (isSeq(node)) {
      const index = typeof segment === "number" ? segment : Number(segment);
      next = Number.isInteger(index) ? resolve(doc, node.items[index]) : undefined;
      key = undefined;
      pair = undefined;
      if (next === null && node.items[index] === undefined) next = undefined;
    } else if (isMap(node)) {
      pair = findPair(doc, node, String(segment));
      next = pair === undefined ? undefined : resolve(doc, pair.value);
      key = pair === undefined ? undefined : resolve(doc, pair.key);
    }
    if (next === undefined && pair === undefined) {
      return { depth, nearest: node, nearestKey };
    }
    node = next ?? null;
    nearestKey = key;
  }
  return { node, key, pair, depth: path.length, nearest: node, nearestKey: key };
}

/** Whether a node is an empty value (`key:` with nothing after it). */
export function isEmptyValue(node: Node | null | undefined): boolean {
  return node === null || node === undefined || (isScalar(node) && node.value === null && !node.source);
}

export function nodeStart(node: Node | null | undefined): number | undefined {
  return node?.range?.[0];
}

/**
 * The offset to point at for the value at `path`: the value node, or its key when the value is
 * empty, or the nearest existing parent.
 */
export function valueOffset(doc: Document, path: readonly PathSegment[]): number {
  const found = locate(doc, path);
  if (found.depth === path.length) {
    if (!isEmptyValue(found.node)) return nodeStart(found.node) ?? 0;
    return nodeStart(found.key) ?? nodeStart(found.node) ?? 0;
  }
  return nodeStart(found.nearestKey) ?? nodeStart(found.nearest) ?? 0;
}

/** The offset of the key of the entry at `path` (or of the value when it is a list item). */
export function keyOffset(doc: Document, path: readonly PathSegment[]): number {
  const found = locate(doc, path);
  if (found.depth === path.length) return nodeStart(found.key) ?? nodeStart(found.node) ?? 0;
  return nodeStart(found.nearestKey) ?? nodeStart(found.nearest) ?? 0;
}

/**
 * The offset naming a mapping as a whole: its key when it is the value of an entry
 * (`spool:`), else the mapping itself (a list item), else the start of the document.
 */
export function containerOffset(doc: Document, path: readonly PathSegment[]): number {
  if (path.length === 0) return nodeStart(resolve(doc, doc.contents)) ?? 0;
  return keyOffset(doc, path);
}

/**
 * Deepest nesting of block and flow collections, from the lexer's tokens (no recursion): the
 * stack of indentations of the lines above, plus compact collections on one line (`- - a`,
 * `- key: value`), plus open flow brackets. An estimate, but never far below the truth. Fed one
 * lexeme at a time, so the parse that reads the file anyway can measure it (load.ts).
 */
export class NestingMeter {
  private readonly indents: number[] = [];
  private flow = 0;
  private column = 0;
  private offset = 0;
  private lineStart = true;
  private indicators = 0;

  constructor(private readonly limit: number) {}

  /** Feeds the next lexeme; answers the depth and where, once it is deeper than the limit. */
  feed(token: string): { depth: number; offset: number } | undefined {
    if (token === CST.DOCUMENT || token === CST.FLOW_END || token === CST.SCALAR) return undefined;
    const type = CST.tokenType(token);
    const content = type !== "space" && type !== "newline" && type !== "comment";
    const indents = this.indents;
    if (this.lineStart && content && this.flow === 0) {
      while (indents.length > 0 && (indents[indents.length - 1] as number) >= this.column) indents.pop();
      indents.push(this.column);
      this.indicators = 0;
    }
    if (content) this.lineStart = false;
    if (type === "flow-map-start" || type === "flow-seq-start") this.flow++;
    else if ((type === "flow-map-end" || type === "flow-seq-end") && this.flow > 0) this.flow--;
    else if (
      this.flow === 0 &&
      (type === "seq-item-ind" || type === "map-value-ind" || type === "explicit-key-ind")
    ) {
      this.indicators++;
    }
    const depth = indents.length + Math.max(0, this.indicators - 1) + this.flow;
    if (depth > this.limit) return { depth, offset: this.offset };
    const newline = token.lastIndexOf("\n");
    if (newline === -1) this.column += token.length;
    else {
      this.column = token.length - newline - 1;
      this.lineStart = true;
      this.indicators = 0;
    }
    this.offset += token.length;
    return undefined;
  }
}
