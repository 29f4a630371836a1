import { describe, expect, it } from "vitest";
import { Command, MacroTable } from "../../src/milter/index.js";

describe("MacroTable", () => {
  it("finds single-letter macros with or without braces, latest stage first", () => {
    const table = new MacroTable();
    table.set(Command.Connect, [
      ["j", "mx.example"],
      ["{daemon_name}", "smtpd"],
    ]);
    table.set(Command.Mail, [
      ["i", "QID1"],
      ["j", "later"],
    ]);
    expect(table.get("{i}")).toBe("QID1");
    expect(table.get("i")).toBe("QID1");
    expect(table.get("j")).toBe("later");
    expect(table.get("{daemon_name}")).toBe("smtpd");
    expect(table.get("missing")).toBeUndefined();
  });

  it("drops later stages when an earlier command arrives, and message macros on clearMessage", () => {
    const table = new MacroTable();
    table.set(Command.Connect, [["j", "mx"]]);
    table.set(Command.Mail, [["{mail_addr}", "a@b"]]);
    table.set(Command.Rcpt, [["{rcpt_addr}", "c@d"]]);
    table.enterStage(Command.Mail);
    expect(table.get("{rcpt_addr}")).toBeUndefined();
    expect(table.get("{mail_addr}")).toBe("a@b");
    table.clearMessage();
    expect(table.get("{mail_addr}")).toBeUndefined();
    expect(table.get("j")).toBe("mx");
    table.clearAll();
    expect(table.get("j")).toBeUndefined();
  });

  it("replaces a stage's macros when the MTA sends them again, and ignores unknown stage bytes", () => {
    const table = new MacroTable();
    table.set(Command.Rcpt, [["{rcpt_addr}", "one@x"]]);
    table.set(Command.Rcpt, [["{rcpt_addr}", "two@x"]]);
    table.set(0x7a, [["x", "y"]]);
    expect(table.forStage(Command.Rcpt)).toEqual({ "{rcpt_addr}": "two@x" });
    expect(table.get("x")).toBeUndefined();
  });

  it("keeps only wanted names, braces or not, when told which", () => {
    const table = new MacroTable();
    table.keepOnly(["{i}", "{auth_authen}"]);
    table.set(Command.Mail, [
      ["i", "QID1"],
      ["{auth_authen}", "alice"],
      ["{mail_host}", "mx.example"],
    ]);
    expect(table.forStage(Command.Mail)).toEqual({ i: "QID1", "{auth_authen}": "alice" });
    expect(table.size).toBe("i".length + 4 + "{auth_authen}".length + 5);
  });

  it("holds at most its size in names and values; what does not fit is dropped and counted", () => {
    const table = new MacroTable(100);
    expect(table.set(Command.Connect, [["j", "x".repeat(60)]])).toBe(0);
    expect(
      table.set(Command.Mail, [
        ["a", "y".repeat(30)],
        ["b", "z".repeat(30)],
      ]),
    ).toBe(1);
    expect(table.get("a")).toBe("y".repeat(30));
    expect(table.get("b")).toBeUndefined();
    // Replacing a stage's macros frees what it held.
    expect(table.set(Command.Mail, [["b", "z".repeat(30)]])).toBe(0);
    expect(table.get("b")).toBe("z".repeat(30));
    table.clearMessage();
    expect(table.size).toBe(61);
    table.clearAll();
    expect(table.size).toBe(0);
  });
});
