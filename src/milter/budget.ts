/**
 * The bound on MTA input held across all connections (`max_buffered_input`): bytes received but
 * not yet processed, whole packets waiting behind a busy handler and packets still being
 * assembled alike. A connection that holds more than a small allowance while the bound is
 * passed stops being read until others let go of theirs; the longest-waiting resumes first.
 */

/** What the budget can wake up. */
export interface BudgetWaiter {
  budgetFreed(): void;
}

/**
 * A connection holding at most this much is never paused for the budget: ordinary SMTP commands
 * keep flowing while attackers hold the budget. It bounds what the total can pass the limit by
 * (with one read of 64 KiB) to this much per connection.
 */
export const BUDGET_ALLOWANCE = 16 * 1024;
/** What a resumed connection is expected to read before it is checked again (one socket read). */
const RESUME_ESTIMATE = 64 * 1024;
/** At most one "limit reached" warning this often. */
const WARN_EVERY_MS = 10_000;

export class InputBudget {
  private used = 0;
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

  /** Adds what a connection holds more (or, negative, less) than before. */
  charge(delta: number): void {
    this.used += delta;
    if (delta < 0 && this.waiting.size > 0 && this.used < this.limit) this.wake();
  }

  /** Parks a connection until the budget frees; `peer` names it in the (rate-limited) warning. */
  wait(waiter: BudgetWaiter, peer: string): void {
    if (this.waiting.has(waiter)) return;
    this.waiting.add(waiter);
    this.pausedSinceWarning++;
    const now = Date.now();
    if (now - this.lastWarning >= WARN_EVERY_MS) {
      this.lastWarning = now;
      this.warn(
        { peer, bufferedBytes: this.used, limit: this.limit, paused: this.pausedSinceWarning },
        "buffered MTA input over max_buffered_input: reading paused on connections that hold the most",
      );
      this.pausedSinceWarning = 0;
    }
  }

  /** The connection no longer waits (it closed, or let go of its bytes). */
  leave(waiter: BudgetWaiter): void {
    this.waiting.delete(waiter);
  }

  private wake(): void {
    let room = this.limit - this.used;
    for (const waiter of this.waiting) {
      if (room <= 0) break;
      this.waiting.delete(waiter);
      room -= RESUME_ESTIMATE;
      waiter.budgetFreed();
    }
  }
}
