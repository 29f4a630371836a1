/**
 * The SMTP stages a rule can run at, in the order a transaction meets them. The one list of them:
 * the config's error messages, the parser, the checker and the engine all read it from here.
 */
export const STAGES = ["connect", "helo", "mail", "rcpt", "data", "header", "eoh", "body", "eom"] as const;
export type Stage = (typeof STAGES)[number];
export const STAGE_ORDER: Record<Stage, number> = Object.fromEntries(STAGES.map((s, i) => [s, i])) as Record<
  Stage,
  number
>;
