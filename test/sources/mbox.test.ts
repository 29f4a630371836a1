import { execFileSync, spawn } from "node:child_process";
import { appendFile, chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { QuotaLimit } from "../../src/config/types.js";
import { isOverQuota, type QuotaStatus } from "../../src/runtime/lookups.js";
import type { MboxSourceConfig } from "../../src/sources/mbox.js";
import {
  createMboxSource,
  FromLineCounter,
  type MboxQuotaSource,
  type MboxSourceOptions,
} from "../../src/sources/mbox.js";

let root: string;

function source(
  quota?: QuotaLimit,
  options: MboxSourceOptions & { template?: string } = {},
): MboxQuotaSource {
  const config: MboxSourceConfig = {
    name: "spool",
    type: "mbox",
    kind: "quota",
    offset: 0,
    timeoutMs: 5000,
    onError: "tempfail",
    path: options.template ?? join(root, "{user}"),
    ...(quota ? { quota } : {}),
  };
  const logger = { info: vi.fn(), warn: vi.fn(), error: vi.fn() };
  return createMboxSource(
    config,
    { configPath: join(root, "rules.yaml"), logger },
    options,
  ) as MboxQuotaSource;
}

const lookup = (src: MboxQuotaSource, address: string) => src.quota(address, AbortSignal.timeout(10_000));

function mboxMessage(n: number, body = "hello\n"): string {
  return `From sender${n}@example.org Thu Nov 26 14:00:00 2026\nFrom: sender${n}@example.org\nSubject: ${n}\n\n${body}\n`;
}

/** The reference count: `From ` at the start or after an empty line. */
function referenceCount(text: string): number {
  const lines = text.split("\n");
  let count = 0;
  for (let i = 0; i < lines.length; i++) {
    if ((lines[i] as string).startsWith("From ") && (i === 0 || lines[i - 1] === "")) count++;
  }
  return count;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "filterctl-mbox-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("mbox source", () => {
  it("usage is the spool's size, the limit the source's quota", async () => {
    const text = mboxMessage(1) + mboxMessage(2);
    await writeFile(join(root, "alice"), text);
    const status = await lookup(source({ bytes: 200 }), "alice@example.org");
    expect(status).toEqual({ usage: Buffer.byteLength(text), limit: 200, count: 0, countLimit: 0 });
    expect(isOverQuota(status as QuotaStatus, 1)).toBe(Buffer.byteLength(text) + 1 > 200);
    expect(await lookup(source(), "alice@example.org")).toMatchObject({ limit: 0, countLimit: 0 });
  });

  it("a missing spool is a user without mail: usage 0", async () => {
    expect(await lookup(source({ bytes: 1000, messages: 5 }), "empty@example.org")).toEqual({
      usage: 0,
      limit: 1000,
      count: 0,
      countLimit: 5,
    });
  });

  it("counts messages only when a message limit is set: From lines at the start or after an empty line", async () => {
    const text = [
      mboxMessage(1, "Hello\nFrom the start of a line, but not after an empty line\n>From escaped\n"),
      mboxMessage(2, "\n>From escaped after an empty line\n"),
      mboxMessage(3),
    ].join("");
    await writeFile(join(root, "bob"), text);
    const status = await lookup(source({ bytes: 1_000_000, messages: 3 }), "bob@example.org");
    expect(status).toEqual({ usage: Buffer.byteLength(text), limit: 1_000_000, count: 3, countLimit: 3 });
    expect(isOverQuota(status as QuotaStatus, 1)).toBe(true);
  });

  it("counts the same across chunk boundaries, and caches by inode/size/mtime", async () => {
    const text = Array.from({ length: 40 }, (_, i) => mboxMessage(i)).join("");
    await writeFile(join(root, "carol"), text);
    for (const chunkBytes of [1, 2, 6, 7, 8, 64, 4096]) {
      expect(
        await lookup(source({ messages: 100 }, { chunkBytes }), "carol@x"),
        `chunk ${chunkBytes}`,
      ).toMatchObject({
        count: 40,
      });
    }
    const src = source({ messages: 100 });
    await lookup(src, "carol@x");
    await lookup(src, "carol@x");
    expect(src.stats).toEqual({ countReads: 1, countCacheHits: 1 });
    await appendFile(join(root, "carol"), mboxMessage(41));
    expect(await lookup(src, "carol@x")).toMatchObject({ count: 41 });
    expect(src.stats).toEqual({ countReads: 2, countCacheHits: 1 });
  });

  it("a spool too big to count is an error, not a guess", async () => {
    await writeFile(join(root, "dave"), mboxMessage(1).repeat(100));
    await expect(lookup(source({ messages: 10 }, { maxCountBytes: 1000 }), "dave@x")).rejects.toThrow(
      /more than the 1000/,
    );
    // Size alone needs no reading.
    expect(await lookup(source({ bytes: 10 }, { maxCountBytes: 1000 }), "dave@x")).toMatchObject({
      count: 0,
    });
  });

  it("unsafe users answer 'no such mailbox'; relative templates resolve against the rules file", async () => {
    await writeFile(join(root, ".hidden"), mboxMessage(1));
    const src = source({ bytes: 10 });
    for (const user of [".hidden", "..", "../etc/passwd", "a/b", "a\u0000b", "", "y".repeat(256)]) {
      expect(await lookup(src, `${user}@x`), JSON.stringify(user)).toBeUndefined();
    }
    await writeFile(join(root, "erin"), mboxMessage(1));
    expect(await lookup(source({ bytes: 10 }, { template: "{user}" }), "erin@x")).toMatchObject({
      usage: Buffer.byteLength(mboxMessage(1)),
    });
  });

  it("refuses a symbolic link, a directory and a FIFO as spool", async () => {
    await writeFile(join(root, "target"), "From x\n");
    await symlink(join(root, "target"), join(root, "linked"));
    await mkdir(join(root, "adir"));
    execFileSync("mkfifo", [join(root, "afifo")]);
    const src = source({ bytes: 10, messages: 1 });
    await expect(lookup(src, "linked@x")).rejects.toThrow(/symbolic link/);
    await expect(lookup(src, "adir@x")).rejects.toThrow(/not a regular file/);
    await expect(lookup(src, "afifo@x")).rejects.toThrow(/not a regular file/);
  });

  it("a spool nobody may examine or read (EACCES, as user nobody) is an error", async () => {
    const dir = join(root, "private");
    await mkdir(dir);
    await writeFile(join(dir, "frank"), mboxMessage(1));
    await chmod(root, 0o755);
    await chmod(dir, 0o755);
    await chmod(join(dir, "frank"), 0o600);
    const template = join(dir, "{user}");
    // Counting messages needs to read the file.
    expect(await runAsNobody(template, { bytes: 1000, messages: 10 }, "frank@x")).toMatchObject({
      error: expect.stringMatching(/EACCES/),
    });
    // A size-only limit needs just the size (stat needs no read permission on the file).
    expect(await runAsNobody(template, { bytes: 1000 }, "frank@x")).toMatchObject({
      status: { usage: Buffer.byteLength(mboxMessage(1)) },
    });
    // A directory nobody may search: unknown, an error (not "no mail").
    await chmod(dir, 0o700);
    expect(await runAsNobody(template, { bytes: 1000 }, "frank@x")).toMatchObject({
      error: expect.stringMatching(/EACCES/),
    });
  });
});

describe("From line counter", () => {
  it("matches the line-by-line reference for any split into chunks", () => {
    const line = fc.constantFrom("From a@b Thu", "", "From ", ">From x", "text", "From", " From x", "FromX");
    fc.assert(
      fc.property(
        fc.array(line, { maxLength: 60 }),
        fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1 }),
        (lines, cuts) => {
          const text = lines.join("\n");
          const bytes = Buffer.from(text, "latin1");
          const counter = new FromLineCounter();
          let at = 0;
          let i = 0;
          while (at < bytes.length) {
            const size = cuts[i++ % cuts.length] as number;
            counter.add(bytes.subarray(at, at + size));
            at += size;
          }
          expect(counter.count).toBe(referenceCount(text));
        },
      ),
    );
  });
});

/** One lookup in a child process as user nobody, with the built dist/. */
async function runAsNobody(
  template: string,
  quota: QuotaLimit,
  address: string,
): Promise<{ status?: unknown; error?: string }> {
  const module = new URL("../../dist/sources/mbox.js", import.meta.url).href;
  const script = `
    const { createMboxSource } = await import(${JSON.stringify(module)});
    const logger = { info() {}, warn() {}, error() {} };
    const source = createMboxSource(
      { name: "s", type: "mbox", kind: "quota", offset: 0, timeoutMs: 2000, onError: "tempfail", path: ${JSON.stringify(template)}, quota: ${JSON.stringify(quota)} },
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
