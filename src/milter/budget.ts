/**
 * The bound on MTA input held across all connections (`max_buffered_input`): bytes received but
 * not yet processed, whole packets waiting behind a busy handler and packets still being
 * assembled alike. Past the bound, a connection that holds more than a small allowance stops
 * being read until input is released, except the one holding the most: the largest packet can
 * always complete, so honest connections never wait on each other forever. A connection that
 * waits and cannot finish its packet meets the packet deadline.
 */

/** What the budget can wake up. */
export interface BudgetWaiter {
  budgetFreed(): void;
}

/**
 * A connection holding at most this much is never paused for the budget: ordinary SMTP commands
 * keep flowing while attackers hold the budget. With one socket read (64 KiB), it bounds how far
 * the total can pass the limit per connection.
 */
export const BUDGET_ALLOWANCE = 16 * 1024;
/** What a resumed connection is expected to read before it is checked again (one socket read). */
const RESUME_ESTIMATE = 64 * 1024;
/** At most one "limit reached" warning this often. */
const WARN_EVERY_MS = 10_000;

export class InputBudget {
  private used = 0;
  private readonly holders = new Map<BudgetWaiter, number>();
  /** The connection holding the most: it is never paused. */
  private top: BudgetWaiter | undefined;
  private topHeld = 0;
  /** Insertion-ordered: the longest-waiting connection resumes first. */
  private readonly waiting = new Set<BudgetWaiter>();
  private lastWarning = Number.NEGATIVE_INFINITY;
  private pausedSinceWarning = 0;

  constructor(
    readonly limit: number,
    private readonly warn: (fields: object, message: string) => void = () => {},
  ) {}

  get bytes(): number {
    return this.used;
  }

  get waitingConnections(): number {
    return this.waiting.size;
  }

  get exhausted(): boolean {
    return this.used > this.limit;
  }

  /**
   * Records that `waiter` now holds `bytes`, and answers whether it must stop reading until
   * `budgetFreed()`. `peer` names it in the (rate-limited) warning.
   */
  hold(waiter: BudgetWaiter, bytes: number, peer: string): boolean {
    const before = this.holders.get(waiter) ?? 0;
    if (bytes !== before) this.record(waiter, before, bytes);
    const mustWait = this.used > this.limit && bytes > BUDGET_ALLOWANCE && waiter !== this.top;
    if (mustWait) this.park(waiter, peer);
    else this.waiting.delete(waiter);
    if (bytes < before) this.wake();
    return mustWait;
  }

  /** The connection is gone: it holds nothing and waits for nothing. */
  release(waiter: BudgetWaiter): void {
    this.waiting.delete(waiter);
    const before = this.holders.get(waiter) ?? 0;
    if (before === 0) return;
    this.record(waiter, before, 0);
    this.wake();
  }

  private record(waiter: BudgetWaiter, before: number, bytes: number): void {
    this.used += bytes - before;
    if (bytes === 0) this.holders.delete(waiter);
    else this.holders.set(waiter, bytes);
    if (bytes > this.topHeld) {
      this.top = waiter;
      this.topHeld = bytes;
    } else if (waiter === this.top) {
      // The largest holder let go of some: find the new largest (rare: a big packet completed).
      this.top = undefined;
      this.topHeld = 0;
      for (const [holder, held] of this.holders) {
        if (held > this.topHeld) {
          this.top = holder;
          this.topHeld = held;
        }
      }
    }
  }

  private park(waiter: BudgetWaiter, peer: string): void {
    if (this.waiting.has(waiter)) return;
    this.waiting.add(waiter);
    this.pausedSinceWarning++;
    const now = Date.now();
    if (now - this.lastWarning < WARN_EVERY_MS) return;
    this.lastWarning = now;
    this.warn(
      { peer, bufferedBytes: this.used, limit: this.limit, paused: this.pausedSinceWarning },
      "buffered MTA input over max_buffered_input: connections holding more than 16 KiB are not read until it frees",
    );
    this.pausedSinceWarning = 0;
  }

  /** Input was released: the largest holder goes on, and the longest-waiting while there is room. */
  private wake(): void {
    if (this.top !== undefined && this.waiting.delete(this.top)) this.top.budgetFreed();
    let room = this.limit - this.used;
    for (const waiter of this.waiting) {
      if (room <= 0) break;
      this.waiting.delete(waiter);
      room -= RESUME_ESTIMATE;
      waiter.budgetFreed();
    }
  }
}
