/**
 * A word is added in one place: a value and a function declared here, in the test, and nowhere
 * else, are checked (types, stages, arguments), compiled and run by the real checker and
 * compiler, and documented on the registry, exactly as the language's own words are.
 */
import { describe, expect, it } from "vitest";
import { formatDiagnostic } from "../../src/common/diagnostics.js";
import { compileConfig } from "../../src/dsl/compile.js";
import { andThen, stringify } from "../../src/dsl/evaluation.js";
import { REGISTRY } from "../../src/dsl/registry.js";
import { reservedNames } from "../../src/dsl/reserved.js";
import type { FunctionWord, ValueWord } from "../../src/dsl/words/types.js";
import { isTextual } from "../../src/dsl/words/types.js";
import { FakeLookups, transaction } from "../runtime/helpers.js";
import { configOf } from "./helpers.js";

/** A new value: the client's address family, read from data the Transaction already has. */
const clientFamily: ValueWord = {
  name: "client.family",
  type: "string",
  from: "connect",
  needs: ["connect"],
  doc: '`"ipv4"` or `"ipv6"`',
  read: () => (env) => (env.tx.client.ip.includes(":") ? "ipv6" : "ipv4"),
};

/** A new function: `upper(TEXT)`, its signature check and its implementation together. */
const upper: FunctionWord = {
  name: "upper",
  usage: "upper(TEXT)",
  from: "connect",
  needs: [],
  returns: "string",
  doc: "the text in upper case",
  check(call) {
    const [arg, ...extra] = call.call.args;
    if (arg === undefined || extra.length > 0) {
      call.report(call.call.span, "error", "upper() takes one text: upper(helo)");
      return undefined;
    }
    const type = call.typeOf(arg);
    if (type === undefined) return undefined;
    if (!isTextual(type)) {
      call.report(arg.span, "error", `upper() needs text, not a value of type ${type}`);
      return undefined;
    }
    return {
      type: "string",
      compile: (compiler) => {
        const text = compiler.value(arg);
        return (env) => andThen(text(env), (t) => stringify(t).toUpperCase());
      },
    };
  },
};

const registry = REGISTRY.withValue(clientFamily).withFunction(upper);

function compile(rules: string[], words = registry) {
  return compileConfig(configOf(rules, []), { registry: words });
}

describe("a value and a function added in one place", () => {
  it("are checked, compiled and run like the language's own words", async () => {
    const compiled = compile([
      'on helo: if upper(helo) == "MX.EXAMPLE.ORG" and client.family == "ipv6" then reject 550 5.7.1 "{client.family} {helo}"',
    ]);
    expect(compiled.diagnostics.map(formatDiagnostic)).toEqual([]);
    const ruleset = compiled.ruleset;
    if (ruleset === undefined) throw new Error("no ruleset");
    const run = (ip: string, helo: string) =>
      ruleset.evaluate("helo", transaction({ client: { ip, name: "", port: 0 }, helo }), new FakeLookups());
    expect((await run("2001:db8::1", "MX.Example.ORG")).decision?.text).toBe("ipv6 MX.Example.ORG");
    expect((await run("192.0.2.1", "MX.Example.ORG")).decision).toBeUndefined();
    expect(ruleset.needs.stages.get("connect")).toBe("observe");
  });

  it("their mistakes are reported by the checker, with the registry's names", () => {
    const diagnostics = compile([
      "on helo: if upper(size) then reject",
      'on helo: if uppr(helo) == "" then reject',
      'on helo: if client.famly == "" then reject',
    ]).diagnostics.map((d) => `${d.line}:${d.column} ${d.message}${d.hint ? ` (${d.hint})` : ""}`);
    expect(diagnostics).toEqual([
      "1:19 'size' is not known yet at stage 'helo': it is known from 'mail' on",
      "2:13 unknown function 'uppr' (did you mean 'upper'?)",
      "3:13 unknown name 'client.famly' (did you mean 'client.family'?)",
    ]);
  });

  it("do not exist for the standard registry, which knows only its own words", () => {
    const messages = compile(['on helo: if upper(helo) == "" then reject'], REGISTRY).diagnostics.map(
      (d) => d.message,
    );
    expect(messages).toEqual(["unknown function 'upper'"]);
    expect(REGISTRY.fn("upper")).toBeUndefined();
  });

  it("are documented and reserved by the same entry", () => {
    expect(registry.value("client.family")?.doc).toBe('`"ipv4"` or `"ipv6"`');
    expect(registry.fn("upper")?.usage).toBe("upper(TEXT)");
    expect(reservedNames(registry)).toContain("upper");
    expect(reservedNames(REGISTRY)).not.toContain("upper");
  });
});
