import { execFileSync, spawn } from "node:child_process";
import {
  chmod,
  cp,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  unlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { QuotaLimit, SourceConfig } from "../../src/config/types.js";
import { isOverQuota, type QuotaStatus } from "../../src/runtime/lookups.js";
import { LATER } from "../../src/sources/cache.js";
import type { MaildirSourceConfig } from "../../src/sources/maildir.js";
import {
  createMaildirSource,
  type MaildirQuotaSource,
  type MaildirSourceOptions,
} from "../../src/sources/maildir.js";
import { countMaildir } from "../../src/sources/maildir-scan.js";
import { SourceRegistry } from "../../src/sources/registry.js";
import { configOf } from "../dsl/helpers.js";
import {
  age,
  deliver,
  deliverRaw,
  EX_OVERQUOTA,
  HAVE_MAILDROP,
  MAILDIRMAKE,
  MaildirFixtures,
  maildirmake,
  messageFiles,
} from "../support/maildir-fixtures.js";

const pad = (bytes: number, count: number) => `${String(bytes).padStart(12)} ${String(count).padStart(12)}\n`;

let fx: MaildirFixtures;

function makeLogger() {
  return { info: vi.fn(), warn: vi.fn(), error: vi.fn() };
}

function source(
  quota?: QuotaLimit,
  options: MaildirSourceOptions & { template?: string; delimiter?: string } = {},
): { source: MaildirQuotaSource; logger: ReturnType<typeof makeLogger> } {
  const config: MaildirSourceConfig = {
    name: "mailboxes",
    type: "maildir",
    kind: "quota",
    offset: 0,
    timeoutMs: 5000,
    onError: "tempfail",
    path: options.template ?? fx.template,
    ...(quota ? { quota } : {}),
    ...(options.delimiter ? { recipientDelimiter: options.delimiter } : {}),
  };
  const logger = makeLogger();
  const created = createMaildirSource(config, { configPath: join(fx.root, "rules.yaml"), logger }, options);
  return { source: created as MaildirQuotaSource, logger };
}

const signal = () => AbortSignal.timeout(10_000);

async function lookup(src: MaildirQuotaSource, address: string): Promise<QuotaStatus | undefined> {
  return src.quota(address, signal());
}

function countedLogs(logger: ReturnType<typeof makeLogger>): Record<string, unknown>[] {
  return logger.info.mock.calls.filter((c) => String(c[1]).includes("counted the maildir")).map((c) => c[0]);
}

/** Courier's own recount, as an oracle: `maildirmake -q` on a copy rewrites maildirsize with the total. */
async function courierRecount(dir: string, quota: string): Promise<{ usage: number; count: number }> {
  const copy = `${dir}-courier-copy`;
  await cp(dir, copy, { recursive: true });
  maildirmake(copy, quota);
  const lines = (await readFile(join(copy, "maildirsize"), "latin1")).split("\n");
  const [usage, count] = (lines[1] ?? "").trim().split(/\s+/).map(Number);
  return { usage: usage as number, count: count as number };
}

beforeAll(async () => {
  if (!HAVE_MAILDROP)
    throw new Error(`${MAILDIRMAKE} is missing: run scripts/install-test-deps.sh (package maildrop)`);
  fx = await MaildirFixtures.create();
});
afterAll(async () => {
  await fx?.cleanup();
});

describe("maildir source on mailboxes made by maildrop", () => {
  it("under quota: the numbers deliverquota wrote", async () => {
    const box = await fx.underQuota();
    expect(await readFile(join(box.dir, "maildirsize"), "latin1")).toBe(
      `50000S,100C\n${pad(0, 0)}${pad(1000, 1)}${pad(1000, 1)}${pad(1000, 1)}`,
    );
    const { source: src, logger } = source();
    const status = await lookup(src, "under@example.org");
    expect(status).toEqual({ usage: 3000, limit: 50000, count: 3, countLimit: 100 });
    expect(isOverQuota(status as QuotaStatus, 1000)).toBe(false);
    expect(isOverQuota(status as QuotaStatus, 47001)).toBe(true);
    expect(countedLogs(logger)).toEqual([]);
  });

  it("over the byte quota: delivered, then the quota lowered with maildirmake -q", async () => {
    const box = await fx.overBytes();
    // maildirmake -q recounts and leaves the definition and ONE total line.
    expect(await readFile(join(box.dir, "maildirsize"), "latin1")).toBe(`2000S\n${pad(3000, 3)}`);
    expect(deliver(box.dir, 100, 99)).toBe(EX_OVERQUOTA);
    const { source: src, logger } = source();
    const status = await lookup(src, "overbytes@example.org");
    expect(status).toEqual({ usage: 3000, limit: 2000, count: 3, countLimit: 0 });
    expect(isOverQuota(status as QuotaStatus, 1)).toBe(true);
    // One fresh over-quota line is believed: no count.
    expect(countedLogs(logger)).toEqual([]);
  });

  it("over the message quota: deliverquota refuses the third message, and so do we", async () => {
    const box = await fx.overCount();
    expect(box.thirdDelivery).toBe(EX_OVERQUOTA);
    const { source: src } = source();
    const status = await lookup(src, "overcount@example.org");
    expect(status).toEqual({ usage: 1000, limit: 1000000, count: 2, countLimit: 2 });
    expect(isOverQuota(status as QuotaStatus, 1)).toBe(true);
  });

  it("maildirsize deleted: no quota, unless the source sets one (then counted from S=)", async () => {
    await fx.deletedFile();
    expect(await lookup(source().source, "nofile@example.org")).toEqual({
      usage: 0,
      limit: 0,
      count: 0,
      countLimit: 0,
    });
    const { source: src, logger } = source({ bytes: 2000, messages: 10 });
    const status = await lookup(src, "nofile@example.org");
    expect(status).toEqual({ usage: 2400, limit: 2000, count: 2, countLimit: 10 });
    expect(isOverQuota(status as QuotaStatus, 1)).toBe(true);
    expect(countedLogs(logger)[0]).toMatchObject({
      reasons: ["maildirsize is missing"],
      usage: 2400,
      count: 2,
    });
    // Courier ignores the mailbox's quota now (the limit was in the file): it still delivers.
    expect(deliver(fx.dirOf("nofile"), 100, 5)).toBe(0);
    await expect(stat(join(fx.dirOf("nofile"), "maildirsize"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("no maildirsize, no limit: rules get zeros without a count; the quota service's source counts as Courier does", async () => {
    const box = await fx.unlimited();
    const rules = source();
    expect(await lookup(rules.source, "unlimited@example.org")).toEqual({
      usage: 0,
      limit: 0,
      count: 0,
      countLimit: 0,
    });
    expect(rules.source.stats.counts).toBe(0);
    const service = source(undefined, { measureWithoutLimit: true });
    const status = await lookup(service.source, "unlimited@example.org");
    expect(status).toEqual({ usage: 40960, limit: 0, count: 2, countLimit: 0 });
    expect(isOverQuota(status as QuotaStatus, 10 ** 12)).toBe(false);
    // Courier's own recount (on a copy, with some quota so it writes the total) agrees.
    expect(await courierRecount(box.dir, "1000000000S")).toEqual({ usage: 40960, count: 2 });
    // Still read-only.
    await expect(stat(join(box.dir, "maildirsize"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("no maildirsize, no limit, a count beyond its bound: the quota service's source says usage 0 (never over), with a warning", async () => {
    await fx.unlimited("unlimited-big");
    const { source: src, logger } = source(undefined, { measureWithoutLimit: true, maxScanEntries: 3 });
    expect(await lookup(src, "unlimited-big@example.org")).toEqual({
      usage: 0,
      limit: 0,
      count: 0,
      countLimit: 0,
    });
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(logger.warn.mock.calls[0]?.[0]).toMatchObject({
      err: expect.stringMatching(/more than 3 directory entries/),
    });
  });

  it("maildirsize grown to 5120 bytes by deliveries: counted, not summed; maildrop rebuilds it the same", async () => {
    const box = await fx.grown();
    expect(box.fileSize).toBeGreaterThanOrEqual(5120);
    const before = await readFile(join(box.dir, "maildirsize"));
    const { source: src, logger } = source();
    const status = await lookup(src, "grown@example.org");
    expect(status).toEqual({ usage: box.usage, limit: 10000000, count: box.count, countLimit: 1000 });
    expect(box.fileUsage).not.toBe(box.usage);
    expect(countedLogs(logger)[0]?.reasons).toEqual([`file is ${box.fileSize} bytes (5120 or more)`]);
    // Read-only: the file is untouched, nothing was left in tmp/.
    expect(await readFile(join(box.dir, "maildirsize"))).toEqual(before);
    expect(await readdir(join(box.dir, "tmp"))).toEqual([]);
    // The next delivery makes deliverquota rebuild the file: it agrees with our count (+ the new message).
    expect(deliver(box.dir, 300, 1000)).toBe(0);
    const rebuilt = await readFile(join(box.dir, "maildirsize"), "latin1");
    expect(rebuilt).toBe(`10000000S,1000C\n${pad(box.usage, box.count)}${pad(300, 1)}`);
    expect(await lookup(src, "grown@example.org")).toEqual({
      usage: box.usage + 300,
      limit: 10000000,
      count: box.count + 1,
      countLimit: 1000,
    });
  });

  it("folders count, .Trash, T-flagged and dot-files do not; a name without S= is stat()ed — as Courier counts", async () => {
    const box = await fx.withFolders();
    const { source: src } = source();
    // The file as deliverquota kept it (Trash delivery added no line).
    expect(await lookup(src, "folders@example.org")).toEqual({
      usage: box.fileUsage,
      limit: 100000,
      count: box.fileCount,
      countLimit: 100,
    });
    const counted = await countMaildir(box.dir, {
      signal: signal(),
      maxEntries: 1000,
      deadline: Date.now() + 5000,
    });
    expect(counted).toMatchObject({ usage: box.usage, count: box.count, folders: 1, deleted: 1, statted: 1 });
    expect(await courierRecount(box.dir, "100000S,100C")).toEqual({ usage: box.usage, count: box.count });
    // Without maildirsize, the source counts the same.
    await unlink(join(box.dir, "maildirsize"));
    expect(await lookup(source({ bytes: 100000 }).source, "folders@example.org")).toEqual({
      usage: box.usage,
      limit: 100000,
      count: box.count,
      countLimit: 0,
    });
  });

  it("a stale over-quota file (older than 15 minutes) is counted again; at 14 minutes it is believed", async () => {
    const box = await fx.overBytes("stale");
    const files = await messageFiles(box.dir);
    for (const file of files.slice(0, 2)) await unlink(file); // 1000 bytes left, behind the file's back
    const file = join(box.dir, "maildirsize");
    await age(file, 14);
    expect(await lookup(source().source, "stale@example.org")).toMatchObject({ usage: 3000, count: 3 });
    await age(file, 20);
    const { source: src, logger } = source();
    const status = await lookup(src, "stale@example.org");
    expect(status).toEqual({ usage: 1000, limit: 2000, count: 1, countLimit: 0 });
    expect(isOverQuota(status as QuotaStatus, 1)).toBe(false);
    expect(countedLogs(logger)[0]?.reasons).toEqual([expect.stringMatching(/20 minutes ago/)]);
    // Courier agrees: its recount lets a delivery through now.
    expect(deliver(box.dir, 100, 7)).toBe(0);
  });

  it("recipient delimiter: alice+tag is alice's mailbox", async () => {
    await fx.underQuota("alice");
    const { source: src } = source(undefined, { delimiter: "+" });
    expect(await lookup(src, "alice+lists@example.org")).toMatchObject({ usage: 3000, count: 3 });
    expect(await lookup(source().source, "alice+lists@example.org")).toBeUndefined();
  });

  it("a relative path template is relative to the rules file's folder", async () => {
    await fx.underQuota("relative");
    const { source: src } = source(undefined, { template: "{user}/Maildir" });
    expect(await lookup(src, "relative@example.org")).toMatchObject({ usage: 3000 });
  });
});

/**
 * One byte or one message below the limit: the file's several size lines are believed (one
 * more message of 1 byte fits, and Courier's deliverquota takes it); at the limit they are
 * recounted (over quota with several lines) and Courier refuses the next byte.
 */
describe("maildirsize at the limit minus one, as deliverquota leaves it", () => {
  async function mailbox(user: string, quota: string): Promise<string> {
    const dir = fx.dirOf(user);
    await mkdir(join(dir, ".."), { recursive: true });
    maildirmake(dir);
    maildirmake(dir, quota);
    return dir;
  }
  const ONE_BYTE = Buffer.from("x");

  it("bytes: usage = limit - 1 is believed and not over; usage = limit is counted and over", async () => {
    const dir = await mailbox("edge-bytes", "3001S,100C");
    for (let i = 0; i < 3; i++) expect(deliver(dir, 1000, i)).toBe(0);
    expect(await readFile(join(dir, "maildirsize"), "latin1")).toBe(
      `3001S,100C\n${pad(0, 0)}${pad(1000, 1).repeat(3)}`,
    );
    let { source: src, logger } = source();
    let status = await lookup(src, "edge-bytes@example.org");
    expect(status).toEqual({ usage: 3000, limit: 3001, count: 3, countLimit: 100 });
    expect(isOverQuota(status as QuotaStatus, 1)).toBe(false);
    expect(countedLogs(logger)).toEqual([]);

    expect(deliverRaw(dir, ONE_BYTE)).toBe(0); // Courier agrees: one byte still fits
    ({ source: src, logger } = source());
    status = await lookup(src, "edge-bytes@example.org");
    expect(status).toEqual({ usage: 3001, limit: 3001, count: 4, countLimit: 100 });
    expect(isOverQuota(status as QuotaStatus, 1)).toBe(true);
    expect(countedLogs(logger)[0]?.reasons).toEqual(["over quota with 5 size lines"]);
    expect(deliverRaw(dir, ONE_BYTE)).toBe(EX_OVERQUOTA); // and now it is full
  });

  it("messages: count = limit - 1 is believed and not over; count = limit is counted and over", async () => {
    const dir = await mailbox("edge-count", "1000000S,3C");
    for (let i = 0; i < 2; i++) expect(deliver(dir, 500, i)).toBe(0);
    let { source: src, logger } = source();
    let status = await lookup(src, "edge-count@example.org");
    expect(status).toEqual({ usage: 1000, limit: 1000000, count: 2, countLimit: 3 });
    expect(isOverQuota(status as QuotaStatus, 1)).toBe(false);
    expect(countedLogs(logger)).toEqual([]);

    expect(deliver(dir, 500, 2)).toBe(0); // Courier takes the third message
    ({ source: src, logger } = source());
    status = await lookup(src, "edge-count@example.org");
    expect(status).toEqual({ usage: 1500, limit: 1000000, count: 3, countLimit: 3 });
    expect(isOverQuota(status as QuotaStatus, 1)).toBe(true);
    expect(countedLogs(logger)[0]?.reasons).toEqual(["over quota with 4 size lines"]);
    expect(deliverRaw(dir, ONE_BYTE)).toBe(EX_OVERQUOTA); // but not a fourth
  });
});

describe("hand-written maildirsize edge cases", () => {
  const files = { "cur/1700000000.M1P1.host,S=500:2,S": 500, "new/1700000001.M2P2.host,S=700": 700 };

  it.each([
    ["torn tail", `1000000S\n${pad(2112, 2)}  10`, { usage: 2112, limit: 1000000, count: 2, countLimit: 0 }],
    [
      "negative lines",
      `1000000S\n${pad(2112, 2)}${pad(-1000, -1)}`,
      { usage: 1112, limit: 1000000, count: 1, countLimit: 0 },
    ],
    [
      "header in C,S order",
      `100C,1000000S\n${pad(2112, 2)}`,
      { usage: 2112, limit: 1000000, count: 2, countLimit: 100 },
    ],
    [
      "blanks in the header",
      " 3C , 5000000S \n2112 2\n",
      { usage: 2112, limit: 5000000, count: 2, countLimit: 3 },
    ],
    [
      "Dovecot's plain lines and tabs",
      "1048576S,100C\n0 0\n1056\t1\n  1056 1\n",
      { usage: 2112, limit: 1048576, count: 2, countLimit: 100 },
    ],
    ["0S: no limit", `0S\n${pad(2112, 2)}`, { usage: 2112, limit: 0, count: 2, countLimit: 0 }],
    [
      "ignored B item",
      `5000000S,3C,7B\n${pad(2112, 2)}`,
      { usage: 2112, limit: 5000000, count: 2, countLimit: 3 },
    ],
    ["header only, no LF", "1000000S", { usage: 0, limit: 1000000, count: 0, countLimit: 0 }],
    ["empty file", "", { usage: 0, limit: 0, count: 0, countLimit: 0 }],
  ])("%s", async (_name, content, expected) => {
    const user = `hw-${_name.replace(/\W+/g, "-")}`;
    await fx.handWritten(user, content, files);
    const { source: src, logger } = source();
    expect(await lookup(src, `${user}@example.org`)).toEqual(expected);
    expect(countedLogs(logger)).toEqual([]);
  });

  it.each([
    ["negative total", `1000000S\n${pad(2112, 2)}${pad(-5000, -3)}`, /negative total/],
    ["garbage line", `1000000S\nhello world\n${pad(2112, 2)}`, /not '<bytes> <count>'/],
    ["NUL byte", `1000000S\n${pad(2112, 2)}\0\n`, /NUL/],
    ["three numbers from a torn append", `1000000S\n  10${pad(156, 1)}`, /not '<bytes> <count>'/],
    ["over quota, two lines", `1000S\n${pad(600, 1)}${pad(600, 1)}`, /over quota with 2 size lines/],
  ])("%s: counted from the files instead", async (name, content, reason) => {
    const user = `hw-${name.replace(/\W+/g, "-")}`;
    const dir = await fx.handWritten(user, content, files);
    const { source: src, logger } = source();
    const status = await lookup(src, `${user}@example.org`);
    expect(status).toMatchObject({ usage: 1200, count: 2 });
    expect(countedLogs(logger)[0]?.reasons).toEqual(expect.arrayContaining([expect.stringMatching(reason)]));
    expect(await readFile(join(dir, "maildirsize"), "latin1")).toBe(content); // never written
  });

  it("0S in the file wins over the source's quota; a file without a definition takes the source's, counted", async () => {
    await fx.handWritten("hw-0S-vs-source", `0S\n${pad(2112, 2)}`, files);
    expect(await lookup(source({ bytes: 1000 }).source, "hw-0S-vs-source@x")).toMatchObject({ limit: 0 });
    // Courier's empty-file trap: it appends headerless lines, so the sums miss the first one.
    await fx.handWritten("hw-headerless", pad(156, 1), files);
    const { source: src, logger } = source({ bytes: 1000 });
    expect(await lookup(src, "hw-headerless@x")).toEqual({
      usage: 1200,
      limit: 1000,
      count: 2,
      countLimit: 0,
    });
    expect(countedLogs(logger)[0]?.reasons).toEqual(["line 1 is not a quota definition"]);
  });

  it("logs ignored definition items (lower-case s is no S)", async () => {
    await fx.handWritten("hw-lower", `1000000s\n${pad(2112, 2)}`);
    const { source: src, logger } = source();
    expect(await lookup(src, "hw-lower@x")).toEqual({ usage: 2112, limit: 0, count: 2, countLimit: 0 });
    expect(logger.warn).toHaveBeenCalledWith(
      expect.objectContaining({ items: ["1000000s"] }),
      expect.stringContaining("ignored items"),
    );
  });
});

describe("what the maildir source refuses", () => {
  it("unsafe users answer 'no such mailbox' without reaching the mailboxes they name", async () => {
    // Mailboxes that an unsafe value would reach if it were used.
    await fx.underQuota(".hidden");
    await fx.underQuota("target");
    maildirmake(join(fx.root, "Maildir"));
    maildirmake(join(fx.root, "Maildir"), "1000S");
    const { source: src } = source();
    for (const user of [".hidden", "target/../target", "a/b", "a\u0000b", "a\nb", "", "x".repeat(256)]) {
      expect(await lookup(src, `${user}@example.org`), JSON.stringify(user)).toBeUndefined();
    }
    expect(await lookup(src, "target@example.org")).toMatchObject({ usage: 3000 });
    // With a deeper template, '..' would reach <root>/Maildir.
    const { source: nested } = source(undefined, { template: join(fx.root, "users", "{user}", "Maildir") });
    expect(await lookup(nested, "..@example.org")).toBeUndefined();
    // A template using {domain}: an address without a domain, or a dotted domain like '..', is refused.
    const { source: byDomain } = source(undefined, {
      template: join(fx.root, "{domain}", "{user}", "Maildir"),
    });
    expect(await lookup(byDomain, "target")).toBeUndefined();
    expect(await lookup(byDomain, "target@..")).toBeUndefined();
  });

  it("no Maildir directory: no such mailbox", async () => {
    const { source: src } = source({ bytes: 1000 });
    expect(await lookup(src, "nobody-here@example.org")).toBeUndefined();
  });

  it("maildirsize that is a directory, a FIFO or a symbolic link is a lookup error", async () => {
    const dirCase = await fx.handWritten("nonreg-dir", "");
    await unlink(join(dirCase, "maildirsize"));
    await mkdir(join(dirCase, "maildirsize"));
    const fifoCase = await fx.handWritten("nonreg-fifo", "");
    await unlink(join(fifoCase, "maildirsize"));
    execFileSync("mkfifo", [join(fifoCase, "maildirsize")]);
    const linkCase = await fx.handWritten("nonreg-link", "");
    await unlink(join(linkCase, "maildirsize"));
    await writeFile(join(fx.root, "elsewhere"), `1000S\n${pad(10, 1)}`);
    await symlink(join(fx.root, "elsewhere"), join(linkCase, "maildirsize"));
    const { source: src } = source({ bytes: 1000 });
    await expect(lookup(src, "nonreg-dir@x")).rejects.toThrow(/not a regular file/);
    await expect(lookup(src, "nonreg-fifo@x")).rejects.toThrow(/not a regular file/);
    await expect(lookup(src, "nonreg-link@x")).rejects.toThrow(/symbolic link/);
  });

  it("a Maildir path that is a file is a lookup error", async () => {
    await mkdir(join(fx.root, "plainfile"), { recursive: true });
    await writeFile(join(fx.root, "plainfile", "Maildir"), "not a maildir");
    await expect(lookup(source({ bytes: 1 }).source, "plainfile@x")).rejects.toThrow(/not a directory/);
  });

  it("an unreadable maildirsize (EACCES, checked as user nobody) is an error, not 'no quota'", async () => {
    const dir = await fx.handWritten("unreadable", `1000S\n${pad(10, 1)}`);
    // nobody may reach the file (mkdtemp and maildirmake make 0700 directories), not read it.
    for (const d of [fx.root, join(fx.root, "unreadable"), dir]) await chmod(d, 0o755);
    await chmod(join(dir, "maildirsize"), 0o600);
    const asNobody = await runAsNobody(fx.template, "unreadable@example.org");
    expect(asNobody).toMatchObject({ error: expect.stringMatching(/EACCES/) });
    await chmod(join(dir, "maildirsize"), 0o644);
    expect(await runAsNobody(fx.template, "unreadable@example.org")).toEqual({
      status: { usage: 10, limit: 1000, count: 1, countLimit: 0 },
    });
    // A Maildir nobody may not enter: EACCES on the lstat, an error too (not "no such mailbox").
    await chmod(dir, 0o700);
    expect(await runAsNobody(fx.template, "unreadable@example.org")).toMatchObject({
      error: expect.stringMatching(/EACCES/),
    });
  });

  it("a count beyond its bound (entries, or time) is an error, never a guess", async () => {
    const dir = await fx.handWritten("bounded", "");
    await unlink(join(dir, "maildirsize"));
    for (let i = 0; i < 20; i++) await writeFile(join(dir, "cur", `17000000${i}.M1P1.h,S=10:2,S`), "x");
    const { source: tight } = source({ bytes: 1000 }, { maxScanEntries: 10 });
    await expect(lookup(tight, "bounded@x")).rejects.toThrow(/more than 10 directory entries/);
    const { source: ok } = source({ bytes: 1000 });
    expect(await lookup(ok, "bounded@x")).toMatchObject({ usage: 200, count: 20 });
    const { source: aborted } = source({ bytes: 1000 });
    await expect(
      aborted.quota("bounded@x", AbortSignal.abort(new Error("lookup timed out"))),
    ).rejects.toThrow(/timed out/);
  });
});

describe("counting big mailboxes", () => {
  it("leaves the event loop free, and stops at its deadline", async () => {
    const dir = await fx.handWritten("big", "");
    await unlink(join(dir, "maildirsize"));
    const names = Array.from(
      { length: 3000 },
      (_, i) => `17000${String(i).padStart(5, "0")}.M${i}P1.host:2,S`,
    );
    for (let i = 0; i < names.length; i += 200) {
      await Promise.all(
        names.slice(i, i + 200).map((name) => writeFile(join(dir, "cur", name), "0123456789")),
      );
    }
    let last = Date.now();
    let maxGap = 0;
    let ticks = 0;
    const timer = setInterval(() => {
      const now = Date.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      ticks++;
    }, 1);
    try {
      // No S= in these names: every file is stat()ed.
      expect(await lookup(source({ bytes: 1e9 }).source, "big@x")).toMatchObject({
        usage: 30000,
        count: 3000,
      });
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThan(5);
    expect(maxGap).toBeLessThan(500);
    const { source: hurried } = source({ bytes: 1e9 }, { scanTimeoutMs: 1 });
    await expect(lookup(hurried, "big@x")).rejects.toThrow(/took (more|longer) than/);
  });
});

/** A maildir made by maildirmake with a 2-message quota, holding one message delivered by deliverquota. */
async function oneOfTwoMessages(name: string): Promise<string> {
  const dir = fx.dirOf(name);
  await mkdir(join(fx.root, name), { recursive: true });
  maildirmake(dir);
  maildirmake(dir, "1000000S,2C");
  expect(deliver(dir, 500, 1)).toBe(0);
  return dir;
}

describe("caches inside the maildir source", () => {
  it("re-validates a parsed file with one lstat; any append is read again", async () => {
    const box = await fx.underQuota("cached");
    const { source: src } = source();
    await lookup(src, "cached@x");
    await lookup(src, "cached@x");
    expect(src.stats).toMatchObject({ fileReads: 1, fileCacheHits: 1 });
    deliver(box.dir, 500, 9);
    expect(await lookup(src, "cached@x")).toMatchObject({ usage: 3500, count: 4 });
    expect(src.stats).toMatchObject({ fileReads: 2, fileCacheHits: 1 });
  });

  it("answers a known file without an event-loop turn (one synchronous lstat, no thread-pool trip)", async () => {
    await fx.underQuota("sync-hit");
    const { source: src } = source();
    await lookup(src, "sync-hit@x");
    let turned = false;
    setImmediate(() => {
      turned = true;
    });
    expect(await lookup(src, "sync-hit@x")).toMatchObject({ usage: 3000, count: 3 });
    expect(turned).toBe(false);
    expect(src.stats).toMatchObject({ fileReads: 1, fileCacheHits: 1 });
  });

  it("quotaNow: the same answer as quota() when one lstat suffices, LATER when a file must be read", async () => {
    const dir = await oneOfTwoMessages("now");
    const { source: src } = source();
    // Never read yet: the file must be opened, which is the asynchronous path's work.
    expect(src.quotaNow("now@x")).toBe(LATER);
    const read = await lookup(src, "now@x");
    expect(src.quotaNow("now@x")).toEqual(read);
    expect(isOverQuota(src.quotaNow("now@x") as QuotaStatus, 1)).toBe(false);
    // deliverquota appends to maildirsize: the next answer is not the remembered one.
    expect(deliver(dir, 500, 2)).toBe(0);
    expect(src.quotaNow("now@x")).toBe(LATER);
    const filled = (await lookup(src, "now@x")) as QuotaStatus;
    expect(filled).toMatchObject({ count: 2, countLimit: 2 });
    expect(isOverQuota(filled, 1)).toBe(true);
    // At the limit Maildir++ wants the mailbox counted, not the file believed: never answered now.
    expect(src.quotaNow("now@x")).toBe(LATER);
    // No mailbox, and no file without a limit, need nothing more than the stat.
    expect(src.quotaNow("nobody-here@x")).toBeUndefined();
    await fx.deletedFile("now-nofile");
    expect(src.quotaNow("now-nofile@x")).toEqual(await lookup(src, "now-nofile@x"));
    // A limit from the source means a count: LATER.
    expect(source({ bytes: 100 }).source.quotaNow("now-nofile@x")).toBe(LATER);
    // An unsafe user never reaches the file system, in either path.
    expect(src.quotaNow("../now@x")).toBeUndefined();
  });

  it("through the registry: a known file answers without a promise; a delivery that fills it is seen by the next lookup", async () => {
    const dir = await oneOfTwoMessages("reg");
    const config: SourceConfig = {
      name: "mailboxes",
      type: "maildir",
      kind: "quota",
      offset: 0,
      timeoutMs: 5000,
      onError: "tempfail",
      path: fx.template,
    };
    const registry = await SourceRegistry.create(configOf([], [config]));
    try {
      const first = registry.quota("mailboxes", "reg@x");
      expect(first).toBeInstanceOf(Promise);
      expect(isOverQuota((await first) as QuotaStatus, 1)).toBe(false);
      const second = registry.quota("mailboxes", "reg@x");
      expect(second).not.toBeInstanceOf(Promise);
      expect(second).toEqual(await first);
      expect(deliver(dir, 500, 2)).toBe(0);
      const third = (await registry.quota("mailboxes", "reg@x")) as QuotaStatus;
      expect(isOverQuota(third, 1)).toBe(true);
      expect(registry.counters().get("mailboxes")).toMatchObject({ lookups: 3, misses: 3, hits: 0 });
    } finally {
      await registry.close();
    }
  });

  it("deliveries that fill the mailbox between two lookups: the second lookup says over", async () => {
    const dir = await oneOfTwoMessages("fills");
    const { source: src } = source();
    const first = (await lookup(src, "fills@x")) as QuotaStatus;
    expect(first).toMatchObject({ count: 1, countLimit: 2 });
    expect(isOverQuota(first, 1)).toBe(false);
    expect(deliver(dir, 500, 2)).toBe(0);
    const second = (await lookup(src, "fills@x")) as QuotaStatus;
    expect(second).toMatchObject({ usage: 1000, count: 2, countLimit: 2 });
    expect(isOverQuota(second, 1)).toBe(true);
  });

  it("a recalculation renamed over the file is seen, even with the same size and mtime", async () => {
    const box = await fx.underQuota("renamed");
    const { source: src } = source();
    expect(await lookup(src, "renamed@x")).toMatchObject({ usage: 3000, limit: 50000 });
    // maildirmake -q recounts into a new file renamed over maildirsize (a new inode).
    const before = await stat(join(box.dir, "maildirsize"));
    maildirmake(box.dir, "2000S");
    expect((await stat(join(box.dir, "maildirsize"))).ino).not.toBe(before.ino);
    const lowered = (await lookup(src, "renamed@x")) as QuotaStatus;
    expect(lowered).toMatchObject({ usage: 3000, limit: 2000 });
    expect(isOverQuota(lowered, 1)).toBe(true);
    // Same length, same mtime, only the inode (and ctime) differ: still read again.
    const file = join(box.dir, "maildirsize");
    const old = await stat(file);
    const replacement = `9000S\n${pad(3000, 3)}`;
    expect(replacement.length).toBe(old.size);
    await writeFile(join(box.dir, "tmp", "maildirsize.new"), replacement);
    await utimes(join(box.dir, "tmp", "maildirsize.new"), old.atime, old.mtime);
    await rename(join(box.dir, "tmp", "maildirsize.new"), file);
    expect(await lookup(src, "renamed@x")).toMatchObject({ usage: 3000, limit: 9000 });
  });

  it("a mailbox removed, or its Maildir renamed away, after a lookup: no such mailbox", async () => {
    const removed = await fx.underQuota("removed");
    const moved = await fx.underQuota("moved");
    const { source: src } = source();
    expect(await lookup(src, "removed@x")).toMatchObject({ usage: 3000 });
    expect(await lookup(src, "moved@x")).toMatchObject({ usage: 3000 });
    await rm(removed.dir, { recursive: true });
    await rename(moved.dir, `${moved.dir}.old`);
    expect(await lookup(src, "removed@x")).toBeUndefined();
    expect(await lookup(src, "moved@x")).toBeUndefined();
  });

  it("a mailbox made after a lookup said 'no such mailbox' is found by the next one (only paths are remembered)", async () => {
    const { source: src } = source();
    for (const how of ["quota", "quotaNow"] as const) {
      const user = `late-${how}`;
      const ask = async () => (how === "quota" ? lookup(src, `${user}@x`) : src.quotaNow(`${user}@x`));
      expect(await ask()).toBeUndefined();
      await fx.underQuota(user);
      expect(await lookup(src, `${user}@x`)).toMatchObject({ usage: 3000 });
      expect(await ask()).toMatchObject({ usage: 3000 });
    }
    // An unsafe address stays refused when asked again.
    expect(await lookup(src, "a/b@x")).toBeUndefined();
    expect(src.quotaNow("a/b@x")).toBeUndefined();
  });

  it("a trailing slash or doubled slashes in the path template name the same maildirsize", async () => {
    const box = await fx.underQuota("slashed");
    const { source: src } = source(undefined, { template: `${fx.template.replace("/{user}", "//{user}")}/` });
    expect(await lookup(src, "slashed@x")).toMatchObject({ usage: 3000 });
    await deliver(box.dir, 500);
    expect(src.quotaNow("slashed@x")).toBe(LATER);
    expect(await lookup(src, "slashed@x")).toMatchObject({ usage: 3500 });
  });

  it("a count is reused while the directories it read are unchanged (and were quiet)", async () => {
    const box = await fx.deletedFile("count-cache");
    const quiet = async () => {
      for (const d of [box.dir, join(box.dir, "new"), join(box.dir, "cur")]) await age(d, 1);
    };
    await quiet();
    const { source: src } = source({ bytes: 100000 });
    expect(await lookup(src, "count-cache@x")).toMatchObject({ usage: 2400, count: 2 });
    expect(await lookup(src, "count-cache@x")).toMatchObject({ usage: 2400, count: 2 });
    expect(src.stats).toMatchObject({ counts: 1, countCacheHits: 1 });
    // deliverquota without maildirsize delivers and creates no file: new/ changes, so we count again.
    deliver(box.dir, 100, 3);
    expect(await lookup(src, "count-cache@x")).toMatchObject({ usage: 2500, count: 3 });
    expect(src.stats.counts).toBe(2);
    // Just changed directories are not trusted for reuse (timestamp granularity): counted again.
    expect(await lookup(src, "count-cache@x")).toMatchObject({ usage: 2500, count: 3 });
    expect(src.stats.counts).toBe(3);
  });

  it("concurrent lookups of one untrusted maildir share one count", async () => {
    const dir = await fx.handWritten("shared", `1000000S\nhello\n`, { "new/1.M1.h,S=100": 100 });
    const { source: src } = source();
    const results = await Promise.all(["shared@x", "shared@y", "shared@z"].map((a) => lookup(src, a)));
    expect(results.map((r) => r?.usage)).toEqual([100, 100, 100]);
    expect(src.stats.counts).toBe(1);
    expect(dir).toContain("shared");
  });
});

/** Runs one lookup in a child process as user nobody (uid 65534), with the built dist/. */
async function runAsNobody(template: string, address: string): Promise<{ status?: unknown; error?: string }> {
  const module = new URL("../../dist/sources/maildir.js", import.meta.url).href;
  const script = `
    const { createMaildirSource } = await import(${JSON.stringify(module)});
    const logger = { info() {}, warn() {}, error() {} };
    const source = createMaildirSource(
      { name: "m", type: "maildir", kind: "quota", offset: 0, timeoutMs: 2000, onError: "tempfail", path: ${JSON.stringify(template)} },
      { configPath: "/nonexistent/rules.yaml", logger },
    );
    try {
      process.stdout.write(JSON.stringify({ status: await source.quota(${JSON.stringify(address)}, AbortSignal.timeout(5000)) }));
    } catch (error) {
      process.stdout.write(JSON.stringify({ error: error.message }));
    }
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    uid: 65534,
    gid: 65534,
    stdio: ["ignore", "pipe", "pipe"],
    cwd: "/",
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    err += d.toString();
  });
  await new Promise((resolve) => child.on("close", resolve));
  if (out === "") throw new Error(`child as nobody printed nothing: ${err}`);
  return JSON.parse(out) as { status?: unknown; error?: string };
}
