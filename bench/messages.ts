/** What the benchmark's orchestrator (run.ts) and its load-generator processes (loadgen.ts) say over IPC. */

export interface LoadOrder {
  kind: "load";
  /** Label of the server under test, for mismatch reports. */
  label: string;
  port: number;
  /** Sessions this process keeps in flight. */
  concurrency: number;
  /** Epoch milliseconds: start, start of the measured window, end (no new session after it). */
  startAt: number;
  measureFrom: number;
  measureUntil: number;
  /** Hard cap on the sessions this process starts, whatever the time. */
  maxSessions: number;
  seed: number;
  /** expect.json of the fixture. */
  expectPath: string;
}

export interface IdleOrder {
  kind: "idle";
  label: string;
  port: number;
  /** Connections to open and negotiate, then hold without traffic. */
  connections: number;
}

export interface ReleaseOrder {
  kind: "release";
}

export type Order = LoadOrder | IdleOrder | ReleaseOrder;

export interface LoadReport {
  kind: "load";
  /** Sessions finished, in the whole run and inside the measured window. */
  completed: number;
  measured: number;
  /** Session latencies (connect to end-of-message reply), ms, measured window only. */
  sessionMs: Float64Array;
  /** Round trips of every awaited reply (negotiation, each RCPT, end of message), ms, measured window only. */
  replyMs: Float64Array;
  /** Replies compared with the fixture, and how many differed. */
  checked: number;
  mismatches: number;
  /** The first mismatches and errors, verbatim. */
  mismatchSamples: string[];
  errors: number;
  errorSamples: string[];
  /** Protocol flags the server negotiated (the first session's). */
  negotiatedProtocol: number;
  negotiatedActions: number;
  /** Which commands the generator sent per session, e.g. "D O D D D R D R D T D E A Q". */
  sessionShape: string;
}

export interface IdleReport {
  kind: "idle-ready" | "idle-done";
  open: number;
  errors: number;
  errorSamples: string[];
}

export type Report = LoadReport | IdleReport;
