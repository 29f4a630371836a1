import { describe, expect, it } from "vitest";
import { AddressError, formatListenAddress, parseListenAddress } from "../../src/milter/index.js";

describe("socket specifications", () => {
  it.each([
    ["inet:8890@127.0.0.1", { kind: "tcp", host: "127.0.0.1", port: 8890, family: 4 }],
    ["inet:127.0.0.1:8890", { kind: "tcp", host: "127.0.0.1", port: 8890, family: 4 }],
    ["inet:8890", { kind: "tcp", host: "0.0.0.0", port: 8890, family: 4 }],
    ["inet:8890@localhost", { kind: "tcp", host: "localhost", port: 8890, family: 4 }],
    ["inet6:8890@::1", { kind: "tcp", host: "::1", port: 8890, family: 6 }],
    ["inet6:8890@[::1]", { kind: "tcp", host: "::1", port: 8890, family: 6 }],
    ["inet6:[::1]:8890", { kind: "tcp", host: "::1", port: 8890, family: 6 }],
    ["unix:/run/filterctl.sock", { kind: "unix", path: "/run/filterctl.sock" }],
    ["local:/run/filterctl.sock", { kind: "unix", path: "/run/filterctl.sock" }],
  ])("%s", (spec, expected) => {
    expect(parseListenAddress(spec)).toEqual(expected);
  });

  it.each([
    ["8890", "expected inet:PORT@HOST"],
    ["tcp:127.0.0.1:8890", "unknown socket type 'tcp'"],
    ["inet:70000@127.0.0.1", "out of range"],
    ["inet:0@127.0.0.1", "out of range"],
    ["inet:abc@127.0.0.1", "is not a number"],
    ["inet:8890@mail.example", "not an IP address"],
    ["inet:8890@::1", "not an IPv4 address"],
    ["inet6:8890@127.0.0.1", "not an IPv6 address"],
    ["unix:", "path is empty"],
    ["inet:@127.0.0.1", "is not a number"],
  ])("refuses %s", (spec, message) => {
    const result = parseListenAddress(spec);
    expect(result).toBeInstanceOf(AddressError);
    expect((result as AddressError).message).toContain(message);
  });

  it("formats in Sendmail notation", () => {
    expect(formatListenAddress({ kind: "tcp", host: "::1", port: 25, family: 6 })).toBe("inet6:25@::1");
  });
});
