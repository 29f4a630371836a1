/**
 * Maildir++ fixtures made by the real tools (Debian `maildrop`: `maildirmake`,
 * `maildirmake -q`, `deliverquota`), in a temporary directory, plus helpers for the
 * hand-written edge cases. `scripts/install-test-deps.sh` installs maildrop.
 *
 * What the tools do (maildrop 2.9.3, checked when writing these):
 * - `maildirmake -q QUOTA DIR` writes `maildirsize` as the definition plus ONE total line from
 *   a fresh count (it recalculates), Courier-padded (`%12d %12d`); `-q 0S` leaves the file as
 *   it is (creates none).
 * - `deliverquota DIR` appends one padded line per delivery, names the file `…,S=<bytes>` in
 *   `new/`, exits 77 ("Mail quota exceeded.") when over quota and then delivers nothing; it
 *   rebuilds a file of 5120 bytes or more at the next delivery. Its second argument is a
 *   quota, not a folder: deliver into `DIR/.Folder` to reach a folder (the line goes into the
 *   root's `maildirsize`; a delivery into `.Trash` adds no line).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rename, rm, stat, unlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const MAILDIRMAKE = "/usr/bin/maildirmake";
export const DELIVERQUOTA = "/usr/sbin/deliverquota";
export const HAVE_MAILDROP = existsSync(MAILDIRMAKE) && existsSync(DELIVERQUOTA);

/** deliverquota's exit status when the mailbox is over quota. */
export const EX_OVERQUOTA = 77;

/** A message of exactly `bytes` bytes (LF line endings), numbered so files differ. */
export function message(bytes: number, n = 0): Buffer {
  const head = `From: sender@example.org\nTo: user@example.org\nSubject: fixture ${n}\n\n`;
  if (bytes < head.length + 1) throw new Error(`a message needs at least ${head.length + 1} bytes`);
  let body = "";
  const line = "The quick brown fox jumps over the lazy dog.\n";
  while (head.length + body.length + line.length <= bytes) body += line;
  body += `${"x".repeat(bytes - head.length - body.length - 1)}\n`;
  const text = head + body;
  if (text.length !== bytes) throw new Error("message size mismatch");
  return Buffer.from(text, "latin1");
}

export function maildirmake(dir: string, quota?: string): void {
  execFileSync(MAILDIRMAKE, quota === undefined ? [dir] : ["-q", quota, dir], { stdio: "pipe" });
}

export function makeFolder(dir: string, folder: string): void {
  execFileSync(MAILDIRMAKE, ["-f", folder, dir], { stdio: "pipe" });
}

/** Delivers one message with deliverquota; answers its exit status (0, or 77 over quota). */
export function deliver(dir: string, bytes: number, n = 0): number {
  return deliverRaw(dir, message(bytes, n));
}

/** Delivers these bytes as they are (a 1-byte "message" probes Courier's own quota check). */
export function deliverRaw(dir: string, content: Buffer): number {
  const result = spawnSync(DELIVERQUOTA, [dir], {
    input: content,
    stdio: ["pipe", "pipe", "pipe"],
  });
  if (result.status !== 0 && result.status !== EX_OVERQUOTA) {
    throw new Error(`deliverquota ${dir} exited ${result.status}: ${result.stderr?.toString()}`);
  }
  return result.status;
}

/** Message files (cur/ and new/) of the maildir or folder at `dir`. */
export async function messageFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const sub of ["new", "cur"]) {
    for (const name of await readdir(join(dir, sub))) out.push(join(dir, sub, name));
  }
  return out.sort();
}

/** Sets a file's (or directory's) mtime `minutes` into the past. */
export async function age(path: string, minutes: number): Promise<void> {
  const when = new Date(Date.now() - minutes * 60_000);
  await utimes(path, when, when);
}

export interface Mailbox {
  /** The Maildir directory. */
  dir: string;
  /** What the mailbox holds, for assertions. */
  usage: number;
  count: number;
}

/** A temporary tree of mailboxes: `<root>/<user>/Maildir`. */
export class MaildirFixtures {
  private constructor(readonly root: string) {}

  static async create(prefix = "filterctl-maildir-"): Promise<MaildirFixtures> {
    return new MaildirFixtures(await mkdtemp(join(tmpdir(), prefix)));
  }

  /** The path template a source uses for these mailboxes. */
  get template(): string {
    return join(this.root, "{user}", "Maildir");
  }

  dirOf(user: string): string {
    return join(this.root, user, "Maildir");
  }

  private async fresh(user: string, quota?: string): Promise<string> {
    const dir = this.dirOf(user);
    await mkdir(join(this.root, user), { recursive: true });
    maildirmake(dir);
    if (quota !== undefined) maildirmake(dir, quota);
    return dir;
  }

  /** 50000S,100C with three 1000-byte messages: 3000 bytes, 3 messages. */
  async underQuota(user = "under"): Promise<Mailbox> {
    const dir = await this.fresh(user, "50000S,100C");
    for (let i = 0; i < 3; i++) if (deliver(dir, 1000, i) !== 0) throw new Error("delivery refused");
    return { dir, usage: 3000, count: 3 };
  }

  /** Three 1000-byte messages delivered under 50000S, then the quota lowered to 2000S. */
  async overBytes(user = "overbytes"): Promise<Mailbox> {
    const dir = await this.fresh(user, "50000S,100C");
    for (let i = 0; i < 3; i++) if (deliver(dir, 1000, i) !== 0) throw new Error("delivery refused");
    maildirmake(dir, "2000S");
    return { dir, usage: 3000, count: 3 };
  }

  /** 1000000S,2C holding two 500-byte messages (a third is refused by deliverquota: exit 77). */
  async overCount(user = "overcount"): Promise<Mailbox & { thirdDelivery: number }> {
    const dir = await this.fresh(user, "1000000S,2C");
    for (let i = 0; i < 2; i++) if (deliver(dir, 500, i) !== 0) throw new Error("delivery refused");
    const thirdDelivery = deliver(dir, 500, 2);
    return { dir, usage: 1000, count: 2, thirdDelivery };
  }

  /** Two 1200-byte messages delivered, then maildirsize deleted (Courier: no quota any more). */
  async deletedFile(user = "nofile"): Promise<Mailbox> {
    const dir = await this.fresh(user, "50000S,100C");
    for (let i = 0; i < 2; i++) deliver(dir, 1200, i);
    await unlink(join(dir, "maildirsize"));
    return { dir, usage: 2400, count: 2 };
  }

  /**
   * 300-byte deliveries until maildirsize reaches 5120 bytes (196 of them with Courier's
   * 26-byte lines); then ten messages removed behind deliverquota's back, as a quota-unaware
   * client would, so the file's sum (file*) overstates the real usage.
   */
  async grown(user = "grown"): Promise<Mailbox & { fileUsage: number; fileCount: number; fileSize: number }> {
    const dir = await this.fresh(user, "10000000S,1000C");
    let n = 0;
    while ((await stat(join(dir, "maildirsize"))).size < 5120) {
      if (deliver(dir, 300, n++) !== 0) throw new Error("delivery refused");
    }
    const files = await messageFiles(dir);
    for (const file of files.slice(0, 10)) await unlink(file);
    return {
      dir,
      usage: (n - 10) * 300,
      count: n - 10,
      fileUsage: n * 300,
      fileCount: n,
      fileSize: (await stat(join(dir, "maildirsize"))).size,
    };
  }

  /**
   * 100000S,100C with folders: two 1000-byte messages in the root (one moved to cur/ as seen,
   * one to cur/ flagged T = deleted), one 2000-byte in .Work, one 4000-byte in .Trash (not
   * counted), plus a 700-byte message renamed without its S= (stat()ed) and a dot-file.
   * Counted: 1000 (root, seen) + 2000 (.Work) + 700 (no S=) = 3700 bytes, 3 messages.
   */
  async withFolders(user = "folders"): Promise<Mailbox & { fileUsage: number; fileCount: number }> {
    const dir = await this.fresh(user, "100000S,100C");
    makeFolder(dir, "Work");
    makeFolder(dir, "Trash");
    deliver(dir, 1000, 1);
    deliver(dir, 1000, 2);
    deliver(join(dir, ".Work"), 2000, 3);
    deliver(join(dir, ".Trash"), 4000, 4);
    deliver(dir, 700, 5);
    const rootNew = (await readdir(join(dir, "new"))).sort();
    const [seen, deleted, noSize] = await Promise.all(
      rootNew.map(async (name) => ({ name, size: (await stat(join(dir, "new", name))).size })),
    ).then((files) => [
      files.filter((f) => f.size === 1000)[0],
      files.filter((f) => f.size === 1000)[1],
      files.find((f) => f.size === 700),
    ]);
    if (seen === undefined || deleted === undefined || noSize === undefined)
      throw new Error("fixture: deliveries missing");
    await rename(join(dir, "new", seen.name), join(dir, "cur", `${seen.name}:2,S`));
    await rename(join(dir, "new", deleted.name), join(dir, "cur", `${deleted.name}:2,ST`));
    await rename(join(dir, "new", noSize.name), join(dir, "cur", `${noSize.name.replace(/,S=\d+/, "")}:2,`));
    await writeFile(join(dir, "cur", ".hidden,S=99999"), "not mail\n");
    // deliverquota's lines: 1000 + 1000 + 2000 (Work) + 700; Trash added none.
    return { dir, usage: 3700, count: 3, fileUsage: 4700, fileCount: 4 };
  }

  /**
   * No quota ever: maildirmake without -q (so no maildirsize) and deliverquota, which then writes
   * none either. 20480 bytes in the root and 20480 in .Work count; 4000 in .Trash do not:
   * 40960 bytes, 2 messages.
   */
  async unlimited(user = "unlimited"): Promise<Mailbox> {
    const dir = await this.fresh(user);
    makeFolder(dir, "Work");
    makeFolder(dir, "Trash");
    for (const [target, bytes, n] of [
      [dir, 20480, 1],
      [join(dir, ".Work"), 20480, 2],
      [join(dir, ".Trash"), 4000, 3],
    ] as const) {
      if (deliver(target, bytes, n) !== 0) throw new Error("delivery refused");
    }
    if (existsSync(join(dir, "maildirsize"))) throw new Error("fixture: deliverquota wrote a maildirsize");
    return { dir, usage: 40960, count: 2 };
  }

  /** A mailbox made by maildirmake whose maildirsize is then replaced by `content` (hand-written edge cases). */
  async handWritten(
    user: string,
    content: string | Buffer,
    files: Record<string, number> = {},
  ): Promise<string> {
    const dir = await this.fresh(user);
    await writeFile(join(dir, "maildirsize"), content);
    for (const [name, bytes] of Object.entries(files)) await writeFile(join(dir, name), message(bytes));
    return dir;
  }

  async cleanup(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }
}
