/** Small statistics helpers for latency samples. */

/** Collects numbers in a growable Float64Array, up to a fixed cap (extra samples are counted, not kept). */
export class Samples {
  private data: Float64Array;
  length = 0;
  dropped = 0;

  constructor(
    initial = 4096,
    private readonly cap = 4_000_000,
  ) {
    this.data = new Float64Array(initial);
  }

  push(value: number): void {
    if (this.length === this.data.length) {
      if (this.length >= this.cap) {
        this.dropped++;
        return;
      }
      const grown = new Float64Array(Math.min(this.cap, this.data.length * 2));
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = value;
  }

  values(): Float64Array {
    return this.data.slice(0, this.length);
  }
}

/** Nearest-rank percentile (p in 0..100) of ascending values; NaN when empty. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

export function sortedCopy(parts: readonly Float64Array[]): Float64Array {
  let total = 0;
  for (const part of parts) total += part.length;
  const all = new Float64Array(total);
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return all.sort();
}
