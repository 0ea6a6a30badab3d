/** A growable buffer of per-operation latencies in milliseconds. */
export class Samples {
  private data = new Float64Array(4096);
  private size = 0;

  /** Records one latency. */
  push(ms: number): void {
    if (this.size === this.data.length) {
      const grown = new Float64Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.size++] = ms;
  }

  /** Number of recorded latencies. */
  get length(): number {
    return this.size;
  }

  /** The recorded latencies, sorted ascending (a copy). */
  sorted(): Float64Array {
    return this.data.slice(0, this.size).sort();
  }
}

/** The `q`-quantile (0..1) of ascending `sorted` values, nearest rank; NaN when empty. */
export function quantile(sorted: Float64Array | readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}

/** The median of a few numbers (not necessarily sorted). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return quantile(sorted, 0.5);
}
