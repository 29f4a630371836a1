import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type Diagnostic, SourceFile } from "../../src/common/diagnostics.js";
import { parseConfig, readConfigFile } from "../../src/config/load.js";
import { SOURCE_CATALOG } from "../../src/sources/catalog.js";

const BROKEN = new URL("./broken/", import.meta.url);

/** `line:col: severity: message (hint)`, as the CLI prints it after the file name. */
function show(d: Diagnostic): string {
  return `${d.line}:${d.column}: ${d.severity}: ${d.message}${d.hint ? ` (${d.hint})` : ""}`;
}

/**
 * Every file of test/config/broken/ (its first line says what is wrong with it) and exactly the
 * diagnostics it must give, in order. Lines and columns are 1-based, as printed.
 */
const EXPECTED: Record<string, string[]> = {
  "alias-bomb.yaml": [
    "3:8: error: aliases expand to too much data (more than 100 expansions) (this looks like a YAML alias bomb; write the values out)",
  ],
  "bad-dns-server.yaml": [
    "3:29: error: entry 2 of 'servers' must be a name server address like 127.0.0.1, 127.0.0.1:53 or [::1]:53",
    "3:42: error: entry 3 of 'servers' must be a name server address like 127.0.0.1, 127.0.0.1:53 or [::1]:53",
  ],
  "bad-dnsbl-code.yaml": [
    "6:26: error: entry 2 of 'codes' must be an answer inside 127.0.0.0/8 like 127.0.0.2, or a range like 127.0.0.2-127.0.0.11",
  ],
  "bad-duration.yaml": ["6:14: error: 'timeout' must be a duration like 500ms, 2s or 5m"],
  "bad-error-reply.yaml": [
    "3:16: error: 'error_reply' must be a 4xx reply like \"451 4.3.0 Temporary lookup failure, try again later\"",
  ],
  "bad-listen-mode.yaml": ["3:14: error: 'listen_mode' must be an octal file mode like \"0660\""],
  "bad-listen-port.yaml": ["2:9: error: 'listen': port 99999 is out of range 1-65535"],
  "bad-mode.yaml": ["6:11: error: 'mode' must be enforce or shadow (did you mean 'shadow'?)"],
  "bad-name-and-structure.yaml": [
    "4:3: error: source name 'a--b' is not valid (start with a letter; then letters, digits, '_', and single '-' between words; at most 64 characters)",
    "11:7: error: unknown key 'windw' in 'health' of source 'spamhaus' (did you mean 'window'?)",
    "15:5: error: unknown key 'nmae' in rule 1 (did you mean 'name'?)",
    "16:5: error: rule 2 must be text ('on STAGES: ...') or a mapping with 'on' and 'then'",
  ],
  "bad-on-error.yaml": ["3:13: error: 'on_error' must be tempfail or continue (did you mean 'tempfail'?)"],
  "bad-on-stage.yaml": ["3:16: error: unknown stage 'rpct' (did you mean 'rcpt'?)"],
  "bad-size.yaml": [
    "6:12: error: 'quota' must be a size like 200MB or 1GiB, or {bytes: 200MB, messages: 10000}",
  ],
  "bad-source-name.yaml": [
    "3:3: error: source name 'my spool' is not valid (start with a letter; then letters, digits, '_', and single '-' between words; at most 64 characters)",
  ],
  "dnsbl-code-range-reversed.yaml": ["6:26: error: range '127.0.0.11-127.0.0.4' ends before it starts"],
  "duplicate-rule-name.yaml": [
    "6:11: error: rule name 'quota' is already used by rule 1 (names identify rules in logs and metrics)",
  ],
  "empty-value.yaml": [
    "2:1: error: 'defaults' is empty; it must be a mapping (indented 'key: value' lines)",
    "3:1: error: 'rules' is empty; it must be a list of rules, each starting with '- ' (or [] for none)",
  ],
  "empty.yaml": [
    "1:1: error: the configuration is empty (it needs at least 'sources:' and 'rules:'; see the example in the README)",
  ],
  "health-ratio.yaml": [
    "7:17: error: 'interval' must be a duration like 500ms, 2s or 5m",
    "8:15: error: 'window' must be at least 1",
    "9:25: error: 'max_listed_ratio' must be at most 1",
    "10:31: error: 'require_positive_probe' must be true or false, not text",
  ],
  "ldap-both-passwords.yaml": [
    "8:5: error: source 'directory' sets both 'password_file' and 'password_env' (keep only one)",
  ],
  "list-items-and-file.yaml": [
    "6:5: error: source 'trusted' sets both 'items' and 'file' (keep only one)",
    "7:3: error: source 'blocked' of type list needs 'items' or 'file'",
  ],
  "list-not-mapping.yaml": [
    "2:1: error: the configuration must be a mapping of keys (listen:, sources:, rules:, ...), not a list",
  ],
  "mbox-missing-quota.yaml": ["3:3: error: source 'spool' of type mbox needs 'quota'"],
  "missing-on.yaml": ["3:5: error: rule 1 needs 'on' (the stages it runs at, e.g. on: rcpt)"],
  "missing-path.yaml": ["3:3: error: source 'mailboxes' of type maildir needs 'path'"],
  "missing-space-after-colon.yaml": ["5:5: error: expected 'key: value' here (put a space after ':')"],
  "missing-then.yaml": ["3:5: error: rule 1 needs 'then'"],
  "missing-type.yaml": [
    "3:3: error: source 'spool' needs 'type' (one of maildir, mbox, http, ldap, dnsbl, list)",
  ],
  "missing-url.yaml": ["3:3: error: source 'backend' of type http needs 'url'"],
  "missing-zone.yaml": ["3:3: error: source 'spamhaus' of type dnsbl needs 'zone'"],
  "multiple-documents.yaml": [
    "3:1: error: the file holds more than one YAML document ('---') (the configuration must be a single document)",
  ],
  "nested-too-deep.yaml": ["2:71: error: the YAML is nested more than 64 levels deep"],
  "option-of-other-type.yaml": [
    "6:5: error: unknown key 'quota' in source 'backend' ('quota' is an option of maildir and mbox sources, not http)",
  ],
  "quota-server-unknown-source.yaml": ["8:11: error: unknown source 'mailbox' (did you mean 'mailboxes'?)"],
  "rules-not-a-list.yaml": ["2:8: error: 'rules' must be a list of rules, each starting with '- ', not text"],
  "shorthand-nested.yaml": [
    "4:7: error: rule 1: write the statement on the same line as 'on rcpt:', or make the whole rule one text with '- |'",
  ],
  "source-not-mapping.yaml": [
    "3:10: error: source 'spool' must be a mapping with 'type:' and the source's options",
  ],
  "fuse-bad-values.yaml": [
    "3:51: error: 'min_events' must be at least 1",
    "3:64: error: 'cooldown' must be a duration like 500ms, 2s or 5m",
    "8:23: error: 'max_rate' must be a percentage like 50%",
    "8:29: error: unknown key 'windw' in 'fuse' (did you mean 'window'?)",
  ],
  "fuse-out-of-range.yaml": [
    "3:21: error: 'max_rate' must be more than 0% and less than 100%",
    "3:35: error: 'window' must be at least 1s",
    "3:49: error: 'cooldown' must be at least 1s",
    "8:36: error: 'max_rate' must be more than 0% and less than 100%",
  ],
  "journal-bad-settings.yaml": [
    "2:1: error: 'journal' needs 'path'",
    "3:13: error: 'max_size' must be a size like 200MB or 1GiB, or a number of bytes",
    "4:9: error: 'keep' must be at least 0",
  ],
  "journal-too-small.yaml": ["4:13: error: 'max_size' must be at least 1KB"],
  "greylist-bad-duration.yaml": [
    "3:10: error: 'delay' must be a duration like 500ms, 2s or 5m",
    "4:3: error: unknown key 'retry_windw' in 'greylist' (did you mean 'retry_window'?)",
  ],
  "greylist-window-before-delay.yaml": [
    "4:17: error: 'retry_window' (30m) must be longer than 'delay' (1h) (a retry must be able to come after the delay and within the window)",
    "5:13: error: 'pass_ttl' must be at least 1ms",
  ],
  "state-bad-url.yaml": [
    "4:10: error: 'redis://127.0.0.1:6379/zero': '/zero' is not a database number (redis://HOST:PORT/0)",
    "4:41: error: 'redis://:secret@/0': not a valid URL (redis://HOST[:PORT][/DB])",
  ],
  "state-memory-with-url.yaml": [
    "3:3: error: 'url' is an option of 'type: redis' state (add 'type: redis' to keep the state on a Redis server)",
    "4:3: error: 'key_prefix' is an option of 'type: redis' state (add 'type: redis' to keep the state on a Redis server)",
  ],
  "state-redis-without-url.yaml": [
    "3:3: error: 'type: redis' state needs 'url' (or 'urls')",
    "4:12: error: 'timeout' must be at least 1ms",
  ],
  "state-sentinel-and-cluster.yaml": [
    "5:3: error: state sets both 'url' and 'urls' (keep only one)",
    "7:12: error: state sets both 'sentinel' and 'cluster: true' (a Redis is reached through Sentinel or is a Cluster, not both)",
  ],
  "state-unknown-key.yaml": ["4:3: error: unknown key 'on_eror' in 'state' (did you mean 'on_error'?)"],
  "state-urls-without-mode.yaml": [
    "4:3: error: state lists 2 urls for one Redis server (several urls are the Sentinels (with 'sentinel: NAME') or a Cluster's nodes (with 'cluster: true'); one server is 'url')",
  ],
  "state-url-scheme.yaml": ["4:8: error: 'url' must be a Redis URL like redis://127.0.0.1:6379/0"],
  "unknown-placeholder.yaml": ["5:40: error: unknown placeholder '{usr}' in 'url' (did you mean '{user}'?)"],
  "unknown-source-key.yaml": ["5:5: error: unknown key 'zon' in source 'spamhaus' (did you mean 'zone'?)"],
  "unknown-source-type.yaml": ["4:11: error: unknown source type 'ldpa' (did you mean 'ldap'?)"],
  "unknown-top-level-key.yaml": ["2:1: error: unknown top-level key 'lisen' (did you mean 'listen'?)"],
  "unquoted-colon.yaml": [
    "3:68: error: a value containing ': ' must be quoted (or written as a block with '|' on the line of its key)",
  ],
  "unresolved-alias.yaml": [
    "8:14: error: alias '*defaults_timeout' has no anchor '&defaults_timeout' before it",
  ],
  "url-placeholder-in-host.yaml": [
    "5:18: error: 'url' of source 'backend' has placeholder '{domain}' in its host: only the path and query may hold placeholders (a recipient address must not choose the server asked)",
  ],
  "url-placeholder-in-port.yaml": [
    "5:27: error: 'url' of source 'backend' has placeholder '{user}' in its port: only the path and query may hold placeholders (a recipient address must not choose the server asked)",
  ],
  "url-placeholder-in-scheme.yaml": [
    "5:11: error: 'url' of source 'backend' has placeholder '{user}' in its scheme: only the path and query may hold placeholders (a recipient address must not choose the server asked)",
  ],
  "url-placeholder-in-userinfo.yaml": [
    "5:17: error: 'url' of source 'backend' has placeholder '{user}' in its userinfo: only the path and query may hold placeholders (a recipient address must not choose the server asked)",
  ],
  "wrong-type-max-connections.yaml": ["2:18: error: 'max_connections' must be a whole number, not text"],
  "yaml-bad-indent.yaml": [
    "5:4: error: bad indentation: the keys of a mapping must all start in the same column",
  ],
  "yaml-duplicate-key.yaml": ["6:5: error: duplicate key 'zone' (it is already set at line 5)"],
  "yaml-tab-indent.yaml": ["4:1: error: tab used for indentation (YAML indents with spaces only)"],
  "yaml-unclosed-quote.yaml": [
    '3:16: error: unclosed quote: this text has no closing " (inside "...", write \\" for a quote)',
  ],
  "zero-durations.yaml": [
    "2:16: error: 'event_timeout' must be at least 1ms",
    "4:12: error: 'timeout' must be at least 1ms",
    "9:14: error: 'timeout' must be at least 1ms",
    "11:17: error: 'interval' must be at least 10s",
  ],
};

describe("broken configurations", () => {
  it("every file has its expectations and every expectation its file", () => {
    const files = readdirSync(BROKEN)
      .filter((f) => f.endsWith(".yaml"))
      .sort();
    expect(files).toEqual(Object.keys(EXPECTED).sort());
    expect(files.length).toBeGreaterThanOrEqual(25);
  });

  it.each(Object.entries(EXPECTED))("%s", async (name, expected) => {
    const path = new URL(name, BROKEN).pathname;
    const file = await readConfigFile(path);
    const result = parseConfig(file, { sourceTypes: SOURCE_CATALOG });
    expect(result.diagnostics.map(show)).toEqual(expected);
    expect(result.config).toBeUndefined();
    for (const d of result.diagnostics) {
      expect(d.file).toBe(path);
      expect(d.message).not.toMatch(/must match|must NOT|should be|schema|instancePath/);
    }
  });
});

describe("files too big to be configurations", () => {
  const dir = mkdtempSync(join(tmpdir(), "filterctl-config-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("refuses a file over 10 MiB, read from disk, without parsing it", async () => {
    const path = join(dir, "huge.yaml");
    const line = `# ${"x".repeat(1021)}\n`;
    writeFileSync(path, `rules: []\n${line.repeat(10 * 1024 + 1)}`);
    const file = await readConfigFile(path);
    // Only what is needed to know it is too big is read.
    expect(file.text.length).toBe(10 * 1024 * 1024 + 1);
    const result = parseConfig(file, { sourceTypes: SOURCE_CATALOG });
    expect(result.diagnostics.map(show)).toEqual([
      "1:1: error: the file is too large (10.0 MiB; at most 10 MiB) (a configuration this big is surely a mistake)",
    ]);
  });

  it("measures the limit in bytes, not characters", () => {
    const text = `rules: []\n# ${"é".repeat(5 * 1024 * 1024 + 10)}\n`;
    const result = parseConfig(new SourceFile("utf8.yaml", text), { sourceTypes: SOURCE_CATALOG });
    expect(result.diagnostics).toHaveLength(1);
    expect(result.diagnostics[0]?.message).toMatch(/too large/);
  });

  it("refuses deep block nesting as well as deep flow nesting", () => {
    const lines = Array.from({ length: 80 }, (_, i) => `${"  ".repeat(i)}k${i}:`).join("\n");
    const result = parseConfig(new SourceFile("deep.yaml", `${lines} 1\n`), { sourceTypes: SOURCE_CATALOG });
    expect(result.diagnostics.map(show)).toEqual([
      "65:129: error: the YAML is nested more than 64 levels deep",
    ]);
  });

  it("sums up errors beyond the first 200", () => {
    const sources = Array.from({ length: 300 }, (_, i) => `  s${i}:\n    type: http\n    urll: x\n`).join("");
    const result = parseConfig(new SourceFile("many.yaml", `sources:\n${sources}`), {
      sourceTypes: SOURCE_CATALOG,
    });
    expect(result.diagnostics).toHaveLength(201);
    expect(show(result.diagnostics[0] as Diagnostic)).toBe(
      "4:5: error: unknown key 'urll' in source 's0' (did you mean 'url'?)",
    );
    expect(show(result.diagnostics[200] as Diagnostic)).toBe(
      "604:5: error: 100 more errors not shown, from here on",
    );
  });

  it("accepts a big but sane file", () => {
    const items = Array.from({ length: 20000 }, (_, i) => `      - "10.${i >> 8}.${i & 255}.0/24"`).join(
      "\n",
    );
    const text = `sources:\n  nets:\n    type: list\n    items:\n${items}\n`;
    const result = parseConfig(new SourceFile("big.yaml", text), { sourceTypes: SOURCE_CATALOG });
    expect(result.diagnostics).toEqual([]);
    const nets = result.config?.sources.get("nets");
    expect(nets?.type === "list" && nets.items?.length).toBe(20000);
  });

  it("keeps the expected text of the broken files readable", () => {
    // The first line of each broken file says what is wrong with it.
    for (const name of Object.keys(EXPECTED)) {
      expect(readFileSync(new URL(name, BROKEN), "utf8")).toMatch(/^# case: \S/);
    }
  });
});
