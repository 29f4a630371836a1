/**
 * Actions: reply codes that agree with their verb, valid header names, texts (texts.ts), and
 * warnings for actions the MTA would ignore.
 */
import type { Action } from "../ast.js";
import type { RuleScope } from "./scope.js";
import { Texts } from "./texts.js";

/** Valid header field names (RFC 5322: printable ASCII but colon). */
const HEADER_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

/** Whether an action ends the stage (anything but continue, add header, log). */
export function decides(action: Action): boolean {
  return action.verb !== "continue" && action.verb !== "add header" && action.verb !== "log";
}

export class Actions {
  private readonly texts: Texts;

  constructor(private readonly scope: RuleScope) {
    this.texts = new Texts(scope);
  }

  check(action: Action): void {
    switch (action.verb) {
      case "reject":
      case "tempfail":
        this.replyCode(action);
        if (action.text) this.texts.check(action.text, "reply text");
        break;
      case "quarantine":
        this.texts.check(action.reason, "quarantine reason");
        break;
      case "log":
        this.texts.check(action.text, "log text");
        break;
      case "add header":
        if (!HEADER_NAME.test(action.name.text) || action.name.text.includes("{"))
          this.scope.report(action.name.span, "error", `'${action.name.text}' is not a valid header name`);
        this.texts.check(action.value, "header value");
        break;
      case "discard":
        for (const stage of this.scope.stages) {
          if (stage === "connect" || stage === "helo") {
            const message = `'discard' at '${stage}' is ignored by the MTA: it discards messages, not connections`;
            this.scope.report(action.span, "warning", message);
          }
        }
        break;
      default:
        break;
    }
  }

  /** A reject needs a 5xx code, a tempfail a 4xx one, and the enhanced code's class must agree. */
  private replyCode(action: Extract<Action, { verb: "reject" | "tempfail" }>): void {
    const klass = action.verb === "reject" ? 5 : 4;
    const code = action.code?.value;
    if (action.code === undefined || code === undefined) return;
    if (!Number.isInteger(code) || code < 100 || code > 999) {
      // Not an SMTP reply code at all: its class means nothing, so say only that.
      this.scope.report(
        action.code.span,
        "error",
        `reply code ${code} is not a three-digit SMTP code`,
        `e.g. ${action.verb} ${action.verb === "reject" ? "550 5.7.1" : "451 4.7.1"}`,
      );
    } else if (Math.floor(code / 100) !== klass) {
      // The code is the mistake to fix first; its enhanced code follows it.
      this.scope.report(
        action.code.span,
        "error",
        `${action.verb} needs a ${klass}xx reply code, not ${code}`,
        action.verb === "reject"
          ? "reject 550 5.7.1, or tempfail 4xx for a temporary failure"
          : "tempfail 451 4.7.1, or reject 5xx for a permanent one",
      );
    } else if (action.enhancedCode !== undefined && Number(action.enhancedCode.value[0]) !== klass) {
      const enhanced = action.enhancedCode;
      this.scope.report(
        enhanced.span,
        "error",
        `enhanced status code ${enhanced.value} does not agree with reply code ${code}`,
        `use ${klass}${enhanced.value.slice(1)}`,
      );
    }
  }
}
