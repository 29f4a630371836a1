/**
 * The benchmark's mailboxes: a temporary Maildir++ tree whose `maildirsize` files are written
 * in the styles real delivery agents produce (Courier's padded lines, Dovecot's plain ones,
 * negative lines after expunges, a torn append, header items in either order, an ignored
 * item), with the expected verdict of each mailbox decided by construction, not by parsing.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Mailbox {
  /** Local part, also the directory name under the root. */
  name: string;
  address: string;
  /** Whether one more 1-byte message must be refused. */
  over: boolean;
  /** How the file was written, for mismatch reports. */
  note: string;
}

export interface Fixture {
  root: string;
  mailboxes: Mailbox[];
}

/** Small deterministic PRNG (mulberry32), so every run uses the same fixture. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Limits {
  header: string;
  size: number;
  count: number;
}

function pickLimits(random: () => number): Limits {
  const r = random();
  if (r < 0.45) return { header: "200000S,1000C", size: 200000, count: 1000 };
  if (r < 0.55) return { header: "1000C,200000S", size: 200000, count: 1000 };
  if (r < 0.65) {
    const size = 100000 + Math.floor(random() * 5000000);
    return { header: `${size}S`, size, count: 0 };
  }
  if (r < 0.72) {
    const count = 20 + Math.floor(random() * 200);
    return { header: `${count}C`, size: 0, count };
  }
  if (r < 0.85) return { header: "1048576S,100C", size: 1048576, count: 100 };
  if (r < 0.93) return { header: " 300000S , 500C ", size: 300000, count: 500 };
  return { header: "200000S,1000C,7B", size: 200000, count: 1000 };
}

function randomInt(random: () => number, low: number, high: number): number {
  return low + Math.floor(random() * (high - low + 1));
}

/** Chooses (bytes, count) usage totals that make the mailbox over or under quota. */
function pickUsage(
  random: () => number,
  limits: Limits,
  over: boolean,
): { bytes: number; count: number; why: string } {
  const countCap = limits.count > 0 ? limits.count : 5000;
  const sizeCap = limits.size > 0 ? limits.size : 50_000_000;
  if (!over) {
    const edgeBytes = limits.size > 0 && random() < 0.1;
    const edgeCount = limits.count > 0 && random() < 0.1;
    return {
      bytes: edgeBytes ? limits.size - 1 : randomInt(random, 0, sizeCap - 1),
      count: edgeCount ? limits.count - 1 : randomInt(random, 0, countCap - 1),
      why: edgeBytes ? "bytes at limit-1" : edgeCount ? "count at limit-1" : "under",
    };
  }
  const bySize = limits.size > 0 && (limits.count === 0 || random() < 0.5);
  if (bySize) {
    const exact = random() < 0.3;
    return {
      bytes: exact ? limits.size : limits.size + randomInt(random, 1, 100000),
      count: randomInt(random, 0, countCap - 1),
      why: exact ? "bytes exactly at limit" : "bytes over",
    };
  }
  const exact = random() < 0.3;
  return {
    bytes: randomInt(random, 0, sizeCap - 1),
    count: exact ? limits.count : limits.count + randomInt(random, 1, 50),
    why: exact ? "count exactly at limit" : "count over",
  };
}

function courierLine(bytes: number, count: number): string {
  return `${String(bytes).padStart(12)} ${String(count).padStart(12)}\n`;
}

function dovecotLine(bytes: number, count: number): string {
  return `${bytes} ${count}\n`;
}

/** Writes size lines that add up to exactly (bytes, count). */
function sizeLines(random: () => number, bytes: number, count: number): { text: string; style: string } {
  const courier = random() < 0.6;
  const line = courier ? courierLine : dovecotLine;
  let text = random() < 0.5 ? line(0, 0) : "";
  let sumBytes = 0;
  let sumCount = 0;
  const deliveries = randomInt(random, 0, 40);
  for (let i = 0; i < deliveries; i++) {
    const size = randomInt(random, 300, 20000);
    const expunge = i > 0 && random() < 0.15;
    text += line(expunge ? -size : size, expunge ? -1 : 1);
    sumBytes += expunge ? -size : size;
    sumCount += expunge ? -1 : 1;
  }
  text += line(bytes - sumBytes, count - sumCount);
  return { text, style: `${courier ? "courier" : "dovecot"}, ${deliveries + 1} lines` };
}

export function createFixture(
  mailboxCount: number,
  overShare: number,
  missingShare: number,
  seed = 42,
): Fixture {
  const random = prng(seed);
  const root = mkdtempSync(join(tmpdir(), "filterctl-bench-"));
  const overCount = Math.round(mailboxCount * overShare);
  const missingCount = Math.round(mailboxCount * missingShare);
  // Deterministic shuffle of the kinds over the mailbox numbers.
  const kinds: ("over" | "missing" | "ok")[] = [];
  for (let i = 0; i < mailboxCount; i++)
    kinds.push(i < overCount ? "over" : i < overCount + missingCount ? "missing" : "ok");
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j] as "over" | "missing" | "ok", kinds[i] as "over" | "missing" | "ok"];
  }
  const mailboxes: Mailbox[] = [];
  for (let i = 0; i < mailboxCount; i++) {
    const name = `u${String(i).padStart(4, "0")}`;
    const dir = join(root, name);
    for (const sub of ["cur", "new", "tmp"]) mkdirSync(join(dir, sub), { recursive: true });
    const kind = kinds[i] as "over" | "missing" | "ok";
    // Mixed case in some addresses: the local part is matched case-insensitively.
    const address = `<${i % 7 === 0 ? name.toUpperCase() : name}@example.test>`;
    if (kind === "missing") {
      mailboxes.push({ name, address, over: false, note: "no maildirsize (no quota)" });
      continue;
    }
    const limits = pickLimits(random);
    const usage = pickUsage(random, limits, kind === "over");
    const lines = sizeLines(random, usage.bytes, usage.count);
    // A torn append (no final LF) is ignored by readers; add one to a few healthy mailboxes.
    const torn = kind === "ok" && random() < 0.03 ? "  10" : "";
    writeFileSync(join(dir, "maildirsize"), `${limits.header}\n${lines.text}${torn}`);
    mailboxes.push({
      name,
      address,
      over: kind === "over",
      note: `'${limits.header}', usage ${usage.bytes}B/${usage.count} msgs (${usage.why}; ${lines.style}${torn ? ", torn tail" : ""})`,
    });
  }
  writeFileSync(join(root, "expect.json"), JSON.stringify(mailboxes));
  return { root, mailboxes };
}
