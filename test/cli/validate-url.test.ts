/**
 * URL templates through the real binary: `validate` refuses placeholders outside path and query,
 * and `dry-run` never asks an HTTP quota service with a '.' or '..' value (a real node:http server
 * records what arrives).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, runCli } from "./run.js";

let dir: string;
let server: Server;
let port: number;
const targets: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "filterctl-url-"));
  server = createServer((req, res) => {
    targets.push(req.url ?? "");
    // Anything asked is over quota, so a lookup that was made shows in the decision.
    res.writeHead(200, { "content-type": "text/plain" }).end("OVERQUOTA someone 200 100 1 0\n");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function configWithUrl(name: string, url: string): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    [
      "sources:",
      "  backend:",
      "    type: http",
      `    url: "${url}"`,
      "rules:",
      '  - on rcpt: if quota(rcpt, backend) over then tempfail 452 4.2.2 "Over quota"',
      "",
    ].join("\n"),
  );
  return file;
}

describe("filterctl validate: placeholders in a URL", () => {
  it.each([
    ["http://{domain}:8026/quota", "{domain}", "host", 18],
    ["http://127.0.0.1:{user}/quota", "{user}", "port", 28],
    ["{user}://127.0.0.1:8025/quota", "{user}", "scheme", 11],
    ["http://{user}@127.0.0.1:8025/quota", "{user}", "userinfo", 18],
  ])("%s: exit 1, at the placeholder, saying which and where", (url, placeholder, part, column) => {
    const file = configWithUrl(`${part}.yaml`, url);
    const message = `'url' of source 'backend' has placeholder '${placeholder}' in its ${part}: only the path and query may hold placeholders`;
    const result = runCli(["validate", "--config", file]);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe(
      [
        `${file}:4:${column}: error: ${message} (a recipient address must not choose the server asked)`,
        ` 4 |     url: "${url}"`,
        `   |${" ".repeat(column)}^`,
        `${file}: invalid (1 error, 0 warnings)`,
        "",
      ].join("\n"),
    );
    const asJson = runCli(["validate", "--config", file, "--json"]);
    expect(asJson.status).toBe(1);
    expect(JSON.parse(asJson.stdout)).toEqual({
      ok: false,
      diagnostics: [
        {
          file,
          line: 4,
          column,
          severity: "error",
          message,
          hint: "a recipient address must not choose the server asked",
        },
      ],
    });
  });

  it("placeholders in path and query are fine", () => {
    const file = configWithUrl("fine.yaml", "http://127.0.0.1:8025/q/{domain}/{user}?a={address}");
    const result = runCli(["validate", "--config", file]);
    expect(result.stdout).toMatch(/: OK: 1 rule \(rcpt 1\), 1 source, 0 errors, 0 warnings\n$/);
    expect(result.status).toBe(0);
  });
});

/** `filterctl dry-run --json` without blocking this process (the server answers in it). */
function dryRun(file: string, rcpt: string): Promise<{ status: number | null; stdout: string }> {
  const child = spawn(
    process.execPath,
    [
      BIN,
      "dry-run",
      "--config",
      file,
      "--client-ip",
      "192.0.2.1",
      "--from",
      "a@example.com",
      "--rcpt",
      rcpt,
      "--json",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString("utf8");
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  return new Promise((resolve) =>
    child.once("exit", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout });
    }),
  );
}

describe("filterctl dry-run: what reaches the quota service", () => {
  it.each([
    ["..@example.org", []],
    [".@example.org", []],
    ["a/b@example.org", ["/q/a%2Fb/example.org"]],
    ["%2e%2e@example.org", ["/q/%252e%252e/example.org"]],
  ])("%s asks %j", async (rcpt, expected) => {
    const file = configWithUrl("dry-run.yaml", `http://127.0.0.1:${port}/q/{user}/{domain}`);
    targets.length = 0;
    const result = await dryRun(file, rcpt);
    expect(result.status).toBe(0);
    expect(targets).toEqual(expected);
    const report = JSON.parse(result.stdout) as {
      recipients: { decision: string; reply: string | null }[];
      stages: { stage: string; lookups: { result: unknown }[] }[];
    };
    // Not asked: no such mailbox, never over; asked: the service's OVERQUOTA.
    if (expected.length === 0) {
      expect(report.recipients[0]).toMatchObject({ decision: "continue", reply: null });
      const rcptStage = report.stages.find((stage) => stage.stage === "rcpt");
      expect(rcptStage?.lookups.map((lookup) => lookup.result)).toEqual(["no such mailbox"]);
    } else {
      expect(report.recipients[0]).toMatchObject({ decision: "tempfail", reply: "452 4.2.2 Over quota" });
    }
  });
});
