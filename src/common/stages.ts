/**
 * The SMTP stages a rule can run at, in the order a transaction meets them. The one list of them:
 * the config's error messages, the parser, the checker and the engine all read it from here, and
 * what differs per stage is in STAGE_FACTS below (the JSON Schema's enum is tested equal to it).
 */
export const STAGES = ["connect", "helo", "mail", "rcpt", "data", "header", "eoh", "body", "eom"] as const;
export type Stage = (typeof STAGES)[number];
export const STAGE_ORDER: Record<Stage, number> = Object.fromEntries(STAGES.map((s, i) => [s, i])) as Record<
  Stage,
  number
>;

/** The stages the MTA sends a macro list for (milter SMFIM_*). */
export type MacroStage = "connect" | "helo" | "mail" | "rcpt" | "data" | "eoh" | "eom";

interface StageFacts {
  /** Whose macro list the stage reads: its own, else the nearest earlier stage that has one. */
  macros: MacroStage;
  /**
   * The logs show its facts (client, sender, recipient): observed, or, when no rule needs the
   * stage, read from the RCPT macros instead (engine/milter-handler.ts).
   */
  context: boolean;
}

export const STAGE_FACTS: Readonly<Record<Stage, StageFacts>> = {
  connect: { macros: "connect", context: true },
  helo: { macros: "helo", context: false },
  mail: { macros: "mail", context: true },
  rcpt: { macros: "rcpt", context: true },
  data: { macros: "data", context: false },
  header: { macros: "data", context: false },
  eoh: { macros: "eoh", context: false },
  body: { macros: "eoh", context: false },
  eom: { macros: "eom", context: false },
};

/** The stage whose macro list each stage reads. */
export const MACRO_STAGE_FOR: Readonly<Record<Stage, MacroStage>> = Object.fromEntries(
  STAGES.map((s) => [s, STAGE_FACTS[s].macros]),
) as Record<Stage, MacroStage>;

/** The stages always observed for the logs' context, in order. */
export const CONTEXT_STAGES: readonly Stage[] = STAGES.filter((s) => STAGE_FACTS[s].context);
