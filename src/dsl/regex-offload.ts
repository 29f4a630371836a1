/**
 * Where a rule regex runs. Linear time is linear in the text *times the size of the pattern*:
 * re2js needs up to ~35 ns per character per instruction when its DFA gives up, so a plausible
 * rule such as `/viagra.{0,200}cheap/i` takes 0.2–0.5 s on a 64 KiB header crafted for it, and a
 * 10,000-instruction one over 10 s. Matches whose worst case could be felt (text length × program
 * size above INLINE_STEPS, ~35 ms) run in a worker thread instead, so the event loop keeps
 * serving every other connection. A worker match that runs past its deadline is abandoned (the
 * worker is replaced): that event fails and gets the configured fallback reply.
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import { withDeadline } from "../common/deadline.js";

export type MaybePromise<T> = T | Promise<T>;

/** A compiled rule regex, with what a worker needs to compile it again. */
export interface CompiledRegex {
  regex: { test(text: string): boolean };
  /** RE2 syntax, as translated from the rule's JavaScript pattern. */
  source: string;
  /** re2js flags. */
  engineFlags: number;
  /** Program size (instructions): the per-character cost factor. */
  size: number;
}

/** Text length × program size up to which a match runs inline (worst case ~35 ms). */
export const INLINE_STEPS = 1_000_000;
/** A worker match taking longer is abandoned. */
export const WORKER_DEADLINE_MS = 5000;
/** Matches waiting for the worker; more fail at once. */
const MAX_QUEUED = 256;

export class RegexTimeoutError extends Error {}

// The worker is evaluated code (no separate file to locate from src/ under tests and from
// dist/ in production); it loads re2js's CommonJS build by the path this module resolves.
const WORKER_CODE = `
const { parentPort, workerData } = require("node:worker_threads");
const { RE2JS } = require(workerData.re2js);
const { LRUCache } = require(workerData.lruCache);
const cache = new LRUCache({ max: 1000 });
parentPort.on("message", ({ source, flags, text }) => {
  try {
    const key = flags + "/" + source;
    let regex = cache.get(key);
    if (regex === undefined) {
      regex = RE2JS.compile(source, flags);
      cache.set(key, regex);
    }
    parentPort.postMessage({ answer: regex.test(text) });
  } catch (error) {
    parentPort.postMessage({ error: String(error && error.message) });
  }
});
`;

interface Job {
  source: string;
  flags: number;
  text: string;
  resolve: (answer: boolean) => void;
  reject: (error: Error) => void;
}

/** One worker thread, one match at a time, each under a deadline. */
export class RegexWorker {
  private worker: Worker | undefined;
  /** The job the worker is on: settling it ends its deadline and starts the next. */
  private running: Job | undefined;
  private readonly queue: Job[] = [];

  constructor(private readonly deadlineMs = WORKER_DEADLINE_MS) {}

  test(source: string, flags: number, text: string): Promise<boolean> {
    if (this.queue.length >= MAX_QUEUED) {
      return Promise.reject(new RegexTimeoutError("too many regular expression matches waiting"));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ source, flags, text, resolve, reject });
      this.next();
    });
  }

  /** Stops the worker; waiting and running matches fail. */
  async close(): Promise<void> {
    const error = new RegexTimeoutError("regular expression worker closed");
    for (const job of this.queue.splice(0)) job.reject(error);
    this.finish()?.reject(error);
    await this.stopWorker();
  }

  private next(): void {
    if (this.running !== undefined) return;
    const job = this.queue.shift();
    if (job === undefined) return;
    const worker = this.ensureWorker();
    const answer = new Promise<boolean>((resolve, reject) => {
      this.running = { ...job, resolve, reject };
    });
    worker.ref();
    worker.postMessage({ source: job.source, flags: job.flags, text: job.text });
    withDeadline(answer, {
      ms: this.deadlineMs,
      onTimeout: () => {
        this.finish();
        void this.stopWorker();
        throw new RegexTimeoutError(`regular expression match still running after ${this.deadlineMs} ms`);
      },
      unref: true,
    })
      .then(job.resolve, job.reject)
      .finally(() => this.next());
  }

  private finish(): Job | undefined {
    const running = this.running;
    this.running = undefined;
    if (running !== undefined) this.worker?.unref();
    return running;
  }

  private ensureWorker(): Worker {
    if (this.worker !== undefined) return this.worker;
    const require = createRequire(import.meta.url);
    const workerData = { re2js: require.resolve("re2js"), lruCache: require.resolve("lru-cache") };
    const worker = new Worker(WORKER_CODE, { eval: true, workerData });
    // Only a running match keeps the process alive (next() refs it, finish() unrefs it).
    worker.unref();
    worker.on("message", (reply: { answer?: boolean; error?: string }) => {
      const job = this.finish();
      if (job === undefined) return;
      if (reply.error !== undefined) job.reject(new Error(`regular expression worker: ${reply.error}`));
      else job.resolve(reply.answer === true);
    });
    worker.on("error", (error) => {
      if (this.worker === worker) this.worker = undefined;
      this.finish()?.reject(error);
    });
    worker.on("exit", () => {
      if (this.worker === worker) this.worker = undefined;
    });
    this.worker = worker;
    return worker;
  }

  private async stopWorker(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }
}

let shared: RegexWorker | undefined;

/** Tests the regex on the text: inline when its worst case is small, else in the worker. */
export function matchRegex(compiled: CompiledRegex, text: string): MaybePromise<boolean> {
  if (text.length * compiled.size <= INLINE_STEPS) return compiled.regex.test(text);
  shared ??= new RegexWorker();
  return shared.test(compiled.source, compiled.engineFlags, text);
}
