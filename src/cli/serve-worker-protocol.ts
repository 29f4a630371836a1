/**
 * What `serve` needs to know of `--workers` before it knows whether this process is a primary:
 * the messages, the worker's slot, the count. The primary itself (serve-workers.ts, with node:http)
 * is loaded only when there is more than one worker. (node:cluster is loaded by Node itself as
 * soon as anything listens: net's listen asks it whether this process is a worker.)
 */
import { availableParallelism } from "node:os";

/** What the primary and its workers say to each other (the `filterctl` field tells ours apart). */
export type WorkerMessage =
  | { filterctl: "ready" }
  | { filterctl: "failed"; code: number; message: string }
  /** A starting worker listens to its primary now: it asks for the rules to load. */
  | { filterctl: "want-rules" }
  /**
   * The rules file's content the primary validated, sent to a starting worker that asks and with
   * every reload: a worker loads exactly that, never a later edit it would read itself.
   */
  | { filterctl: "rules"; text: string; generation: number }
  | { filterctl: "reload"; reason: string; text: string; generation: number }
  /** The primary refused a change (it validates once): each worker counts the failed reload. */
  | { filterctl: "reload-refused" }
  | { filterctl: "collect" };

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return typeof value === "object" && value !== null && "filterctl" in value;
}

/** The environment variable that tells a worker its slot (1..N). */
export const WORKER_SLOT_ENV = "FILTERCTL_WORKER_SLOT";

/**
 * The environment variable that tells a worker the rules file its primary serves ("" for none):
 * a worker does not look for ./rules.yaml itself, which may have appeared since the primary did.
 */
export const WORKER_RULES_ENV = "FILTERCTL_WORKER_RULES";

/**
 * The journal file of a worker: `journal.jsonl` → `journal-w2.jsonl`. Workers must not share one
 * file: each would rotate it on its own count of bytes.
 */
export function workerJournalPath(path: string, slot: string | undefined): string {
  if (slot === undefined) return path;
  const dot = path.lastIndexOf(".");
  const slash = path.lastIndexOf("/");
  return dot > slash + 1 ? `${path.slice(0, dot)}-w${slot}${path.slice(dot)}` : `${path}-w${slot}`;
}

/** `auto` is one worker per core the process may use. */
export function workerCount(workers: number | "auto"): number {
  return workers === "auto" ? availableParallelism() : workers;
}
