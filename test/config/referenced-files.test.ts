/**
 * Files a configuration names (list files, LDAP password files) must be regular files of a
 * bounded size: a FIFO, device, folder or oversized file is a `validate` error at the value that
 * names it, through the real command line, and the reader never blocks on them.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ConfigReadError,
  LIST_FILE_LIMIT,
  PASSWORD_FILE_LIMIT,
  readBoundedFile,
  readConfigFile,
} from "../../src/config/load.js";
import { runCli } from "../cli/run.js";

const dir = mkdtempSync(join(tmpdir(), "filterctl-files-"));
let socketServer: Server | undefined;

beforeAll(async () => {
  execFileSync("mkfifo", [join(dir, "fifo")]);
  mkdirSync(join(dir, "folder"));
  // Sparse: 70 MiB (over the list limit) and 5000 bytes (over the password limit), nothing written.
  execFileSync("truncate", ["-s", "70M", join(dir, "huge.txt")]);
  execFileSync("truncate", ["-s", "5000", join(dir, "long.secret")]);
  writeFileSync(join(dir, "ok.txt"), "192.0.2.1\n");
  writeFileSync(join(dir, "ok.secret"), "s3cret\n");
  symlinkSync("/dev/zero", join(dir, "zero-link"));
  socketServer = createServer();
  await new Promise<void>((resolve) => socketServer?.listen(join(dir, "socket"), resolve));
});

afterAll(async () => {
  await new Promise<void>((resolve) => (socketServer ? socketServer.close(() => resolve()) : resolve()));
  rmSync(dir, { recursive: true, force: true });
});

function listConfig(file: string): string {
  const path = join(dir, `list-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    path,
    `sources:\n  blocked:\n    type: list\n    file: ${file}\nrules:\n  - on connect: if client.ip in blocked then reject\n`,
  );
  return path;
}

function ldapConfig(passwordFile: string): string {
  const path = join(dir, `ldap-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    path,
    [
      "sources:",
      "  directory:",
      "    type: ldap",
      '    url: "ldap://127.0.0.1:389"',
      '    bind_dn: "cn=postmaster,dc=mail"',
      `    password_file: ${passwordFile}`,
      '    base: "dc=mail"',
      "    tables:",
      '      addresses: "(mailLocalAddress={key})"',
      "rules:",
      "  - on rcpt: if rcpt not in directory.addresses then reject",
      "",
    ].join("\n"),
  );
  return path;
}

/** `filterctl validate`: its exit status and the diagnostic lines (the ones with file:line:col). */
function validate(config: string): { status: number | null; lines: string[]; stderr: string } {
  const started = Date.now();
  const { status, stdout, stderr } = runCli(["validate", "--config", config]);
  // A FIFO open that blocked would have run into runCli's 20 s timeout.
  expect(Date.now() - started).toBeLessThan(15_000);
  return { status, lines: stdout.split("\n").filter((l) => l.startsWith(`${config}:`)), stderr };
}

const LIST_HINT = "(a list file must be a regular file of at most 16 MiB)";
const PASSWORD_HINT = "(a password_file must be a regular file of at most 4 KiB)";

describe("filterctl validate: list files", () => {
  it.each([
    ["fifo", "is a FIFO, not a regular file", LIST_HINT],
    ["/dev/zero", "is a character device, not a regular file", LIST_HINT],
    ["zero-link", "is a character device, not a regular file", LIST_HINT],
    ["folder", "is a folder, not a regular file", LIST_HINT],
    ["socket", "is a socket, not a regular file", LIST_HINT],
    ["huge.txt", "is 70.0 MiB, over the 16 MiB limit for list files", ""],
  ])("%s: exit 1, an error at the value of 'file'", (file, reason, hint) => {
    const config = listConfig(file);
    const { status, lines, stderr } = validate(config);
    const path = file.startsWith("/") ? file : join(dir, file);
    expect(stderr).toBe("");
    expect(lines).toEqual([
      `${config}:4:11: error: source 'blocked': list file ${path}: ${reason}${hint ? ` ${hint}` : ""}`,
      `${config}: invalid (1 error, 0 warnings)`,
    ]);
    expect(status).toBe(1);
  });

  it("a regular file passes; a missing one is left to serve (validate may run elsewhere)", () => {
    expect(validate(listConfig("ok.txt")).status).toBe(0);
    expect(validate(listConfig("not-there.txt")).status).toBe(0);
  });
});

describe("filterctl validate: password_file", () => {
  it.each([
    ["fifo", "is a FIFO, not a regular file", PASSWORD_HINT],
    ["/dev/zero", "is a character device, not a regular file", PASSWORD_HINT],
    ["folder", "is a folder, not a regular file", PASSWORD_HINT],
    ["long.secret", "is 5000 bytes, over the 4 KiB limit for password files", ""],
  ])("%s: exit 1, an error at the value of 'password_file'", (file, reason, hint) => {
    const config = ldapConfig(file);
    const { status, lines, stderr } = validate(config);
    const path = file.startsWith("/") ? file : join(dir, file);
    expect(stderr).toBe("");
    expect(lines).toEqual([
      `${config}:6:20: error: source 'directory': password_file ${path}: ${reason}${hint ? ` ${hint}` : ""}`,
      `${config}: invalid (1 error, 0 warnings)`,
    ]);
    expect(status).toBe(1);
  });

  it("a regular file passes", () => {
    expect(validate(ldapConfig("ok.secret")).status).toBe(0);
  });
});

describe("the bounded reader", () => {
  async function refusal(path: string, limit = LIST_FILE_LIMIT): Promise<ConfigReadError> {
    const error = await readBoundedFile(path, limit).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigReadError);
    return error as ConfigReadError;
  }

  it("refuses a FIFO at once, without waiting for a writer", async () => {
    const started = Date.now();
    expect((await refusal(join(dir, "fifo"))).message).toBe(
      `${join(dir, "fifo")}: is a FIFO, not a regular file`,
    );
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("refuses an oversized file before reading it", async () => {
    expect((await refusal(join(dir, "long.secret"), PASSWORD_FILE_LIMIT)).message).toBe(
      `${join(dir, "long.secret")}: is 5000 bytes, over the 4 KiB limit for password files`,
    );
  });

  it("bounds what it reads even when fstat says 0 bytes", async () => {
    // /proc files are regular files of size 0 with content: the bound holds while reading.
    const status = await readBoundedFile("/proc/self/status", { maxBytes: 1 << 20, what: "x" });
    expect(status.toString()).toContain("VmRSS");
    expect((await refusal("/proc/self/status", { maxBytes: 100, what: "test files" })).message).toBe(
      "/proc/self/status: is more than 100 bytes, over the 100 bytes limit for test files",
    );
  });

  it("reads the rules file the same way: a FIFO is refused at once", async () => {
    const error = await readConfigFile(join(dir, "fifo")).catch((e: unknown) => e);
    expect((error as Error).message).toBe(`${join(dir, "fifo")}: is a FIFO, not a regular file`);
    const cli = runCli(["validate", "--config", join(dir, "fifo")]);
    expect(cli.stderr).toBe(`filterctl: ${join(dir, "fifo")}: is a FIFO, not a regular file\n`);
    expect(cli.status).toBe(2);
  });
});
