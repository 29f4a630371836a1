import { describe, expect, it } from "vitest";
import {
  CONTEXT_STAGES,
  MACRO_STAGE_FOR,
  type MacroStage,
  STAGE_FACTS,
  STAGE_ORDER,
  STAGES,
} from "../../src/common/stages.js";
import { MACRO_STAGE_NUMBER, STAGES as MILTER_STAGES } from "../../src/milter/constants.js";

describe("the stage list", () => {
  it("is the milter protocol's events in the same order, less 'unknown'", () => {
    expect([...STAGES]).toEqual(MILTER_STAGES.filter((s) => s !== "unknown"));
    expect(STAGES.map((s) => STAGE_ORDER[s])).toEqual(STAGES.map((_, i) => i));
    expect(Object.keys(STAGE_FACTS)).toEqual([...STAGES]);
  });

  it("reads each stage's macros from itself when the MTA sends a list for it, else the nearest earlier", () => {
    const sent = new Set<string>(Object.keys(MACRO_STAGE_NUMBER));
    const expected: Record<string, MacroStage> = {};
    let last: MacroStage | undefined;
    for (const stage of STAGES) {
      if (sent.has(stage)) last = stage as MacroStage;
      if (last !== undefined) expected[stage] = last;
    }
    expect(MACRO_STAGE_FOR).toEqual(expected);
    expect(new Set(Object.values(MACRO_STAGE_FOR))).toEqual(sent);
  });

  it("always observes connect, mail and rcpt for the logs' context", () => {
    expect(CONTEXT_STAGES).toEqual(["connect", "mail", "rcpt"]);
  });
});
