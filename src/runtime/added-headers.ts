/**
 * The headers rules add to one message, bounded: a rule at the `header` stage runs once per
 * header the client sent, so without a bound a message with 50,000 headers would make 50,000
 * modifications (and keep them all in memory until end of message).
 */

/** Most headers added to one message; further ones are dropped (and counted). */
export const MAX_ADDED_HEADERS = 100;

export interface AddedHeader {
  name: string;
  value: string;
  /** The rule that added it. */
  rule: string;
}

export class AddedHeaders {
  readonly kept: AddedHeader[] = [];
  /** Headers dropped past the bound. */
  dropped = 0;
  /** The rules whose headers were dropped, in the order they first were. */
  readonly droppedBy = new Set<string>();

  constructor(readonly limit = MAX_ADDED_HEADERS) {}

  /** Keeps the header when there is room; answers whether it was kept. */
  add(header: AddedHeader): boolean {
    if (this.kept.length < this.limit) {
      this.kept.push(header);
      return true;
    }
    this.dropped++;
    this.droppedBy.add(header.rule);
    return false;
  }
}
