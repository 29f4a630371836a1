import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { request } from "undici";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { urlPartAt, urlSpans } from "../../src/config/url-template.js";
import { createHttpSource } from "../../src/sources/http.js";
import { fillUrl, valuesFor } from "../../src/sources/placeholders.js";

describe("the parts of a URL template", () => {
  it("splits scheme, userinfo, host, port, path, query and fragment as the URL parser does", () => {
    const template = "http://u:p@h:80/a/b?x=1#f";
    const parts = urlSpans(template).map((s) => [s.part, template.slice(s.start, s.end)]);
    expect(parts).toEqual([
      ["scheme", "http"],
      ["userinfo", "u:p"],
      ["host", "h"],
      ["port", "80"],
      ["path", "/a/b"],
      ["query", "x=1"],
      ["fragment", "f"],
    ]);
  });

  it.each([
    ["{user}://h/q", "scheme"],
    ["http://{domain}:8026/q", "host"],
    ["http://h.{domain}/q", "host"],
    ["http://h:{user}/q", "port"],
    ["http://[::1]:{user}/q", "port"],
    ["http://{user}@h/q", "userinfo"],
    ["http://a:{user}@h/q", "userinfo"],
    ["http://{user}@{domain}@h/q", "userinfo"],
    ["http:///{domain}/q", "host"],
    ["http:\\\\{domain}/q", "host"],
    ["http://h/q#{user}", "fragment"],
    ["http://h/q/{user}@x", "path"],
    ["http://h\\q/{user}", "path"],
    ["http://h/q/{user}", "path"],
    ["http://h?u={user}", "query"],
    ["http://h/q?u={user}@x:1", "query"],
  ])("%s: the placeholder is in the %s", (template, part) => {
    expect(urlPartAt(template, template.indexOf("{"))).toBe(part);
  });

  it("agrees with the WHATWG parser on where a marker in each part lands", () => {
    const cases: [string, keyof URL][] = [
      ["http://ZZ@h/q", "username"],
      ["http://h.ZZ:1/q", "hostname"],
      ["http:///ZZ/q", "hostname"],
      ["http://h/q/ZZ@x", "pathname"],
      ["http://h?u=ZZ", "search"],
      ["http://h/q#ZZ", "hash"],
    ];
    for (const [url, field] of cases) {
      expect(String(new URL(url)[field]).toLowerCase()).toContain("zz");
      const part = urlPartAt(url, url.indexOf("ZZ"));
      expect({ url, part }).toEqual({
        url,
        part: {
          username: "userinfo",
          hostname: "host",
          pathname: "path",
          search: "query",
          hash: "fragment",
        }[field as string],
      });
    }
  });
});

describe("filling a URL", () => {
  const fill = (template: string, address: string) => fillUrl(template, valuesFor(address));

  it("URL-encodes values, '/' and '%' included", () => {
    expect(fill("http://h/q/{user}?d={domain}", "a/b@example.org")).toBe("http://h/q/a%2Fb?d=example.org");
    expect(fill("http://h/q/{user}", "%2e%2e@example.org")).toBe("http://h/q/%252e%252e");
    expect(fill("http://h/q/{user}", "%2E.@example.org")).toBe("http://h/q/%252E.");
    expect(fill("http://h/q/{user}", "...@example.org")).toBe("http://h/q/...");
    expect(fill("http://h/q/{user}", "a\\b@example.org")).toBe("http://h/q/a%5Cb");
  });

  it.each([
    ["http://h/q/{user}", "..@example.org"],
    ["http://h/q/{user}", ".@example.org"],
    ["http://h/q/{user}/{domain}", "..@example.org"],
    ["http://h/q/{domain}/x", "bob@.."],
    ["http://h/q?u={user}", "..@example.org"],
    ["http://h/q?u={user}", ".@example.org"],
    // A value that is not a dot itself but makes one with the template around it.
    ["http://h/q/.{user}/x", "@example.org"],
    ["http://h/q/{user}%2e/x", "@example.org"],
    ["http://h/q/%2e{user}", "@example.org"],
    ["http://h/q\\.{user}", "@example.org"],
    // Never from a checked configuration, but never a host chosen by a recipient either.
    ["http://{domain}:8026/q", "bob@example.org"],
    ["http://{user}@h/q", "bob@example.org"],
  ])("%s with %s: no URL (no such mailbox)", (template, address) => {
    expect(fill(template, address)).toBeUndefined();
  });

  it("keeps templates whose own dots are fixed and values that are ordinary", () => {
    expect(fill("http://h/q/{user}.json", "..@example.org")).toBeUndefined();
    expect(fill("http://h/q/{user}.json", "bob@example.org")).toBe("http://h/q/bob.json");
    expect(fill("http://h/q/.{user}/x", "bob@example.org")).toBe("http://h/q/.bob/x");
    expect(fill("http://h/q/{address}", "..@example.org")).toBe("http://h/q/..%40example.org");
  });
});

/** A quota service that records the request line's target exactly as it arrives. */
let server: Server;
let base: string;
const targets: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    targets.push(req.url ?? "");
    res.writeHead(200, { "content-type": "text/plain" }).end("OK someone 1 100 1 0\n");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

beforeEach(() => {
  targets.length = 0;
});

const ctx = { configPath: "rules.yaml", logger: { info() {}, warn() {}, error() {} } };
const signal = () => AbortSignal.timeout(2000);

/** Decoded once, as a server would before routing: is any segment `.` or `..`? */
function hasDotSegment(path: string): boolean {
  return path.split("/").some((segment) => {
    let decoded = segment;
    try {
      decoded = decodeURIComponent(segment);
    } catch {}
    return /^\.{1,2}$/.test(segment) || /^\.{1,2}$/.test(decoded) || /^(\.|%2e){1,2}$/i.test(segment);
  });
}

describe("what reaches a real HTTP server", () => {
  it("the trap: undici sends a %2e%2e segment as a parent step (so dots cannot just be encoded)", async () => {
    const response = await request(`${base}/q/%2e%2e/example.org`);
    await response.body.dump();
    expect(targets).toEqual(["/example.org"]);
  });

  it.each([
    "..@example.org",
    ".@example.org",
    "a/b@example.org",
    "%2e%2e@example.org",
    "%2E%2E@example.org",
    ".%2e@example.org",
    "%2e.@example.org",
    "%2e@example.org",
    "../..@example.org",
    "..%2f..@example.org",
    "a\\..@example.org",
    "@example.org",
    "bob@..",
  ])("%s: asked for its own path under /q/, or not asked", async (address) => {
    for (const path of ["/q/{user}/{domain}", "/q/{user}", "/q/.{user}/x", "/q/{domain}/{user}"]) {
      targets.length = 0;
      const source = createHttpSource(
        {
          name: "backend",
          type: "http",
          kind: "quota",
          url: `${base}${path}`,
          timeoutMs: 1000,
          onError: "tempfail",
          offset: 0,
        },
        ctx,
      );
      const answer = await source.quota(address, signal());
      await source.close();
      const expectedSegments = path.split("/").length;
      for (const target of targets) {
        expect({ path, target, prefix: target.startsWith("/q/") }).toEqual({ path, target, prefix: true });
        expect({ path, target, dots: hasDotSegment(target) }).toEqual({ path, target, dots: false });
        expect({ path, target, segments: target.split("/").length }).toEqual({
          path,
          target,
          segments: expectedSegments,
        });
      }
      // Not asked means "no such mailbox"; asked means the service's answer.
      expect(answer === undefined).toBe(targets.length === 0);
    }
  });

  it("asks nothing for '..' and '.' and asks with the value encoded otherwise", async () => {
    const url = `${base}/q/{user}/{domain}`;
    const source = createHttpSource(
      { name: "backend", type: "http", kind: "quota", url, timeoutMs: 1000, onError: "tempfail", offset: 0 },
      ctx,
    );
    for (const address of ["..@example.org", ".@example.org", "a/b@example.org", "%2e%2e@example.org"]) {
      await source.quota(address, signal());
    }
    await source.close();
    expect(targets).toEqual(["/q/a%2Fb/example.org", "/q/%252e%252e/example.org"]);
  });
});
