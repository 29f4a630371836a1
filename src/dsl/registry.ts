/**
 * What exists in the language: the index of its words. Values (words/values.ts) and functions
 * (words/functions.ts) are each declared once there, with everything about them; the checker,
 * the compiler, the reserved source names, dry-run's options and the README's table of values all
 * read them through this index, and none of them names a word.
 */

import type { EvalEnv } from "./evaluation.js";
import { FUNCTIONS } from "./words/functions.js";
import type { DryRunOption, FunctionWord, ValueWord } from "./words/types.js";
import { VALUES } from "./words/values.js";

export { DNSBL_ATTRIBUTES } from "./source-kinds.js";
export type { FunctionWord, ValueType, ValueWord } from "./words/types.js";
export { isList, isNumeric, isTextual, QUOTA_MEMBERS } from "./words/types.js";

/** A dry-run option and the words it fills in. */
export interface DryRunInput extends DryRunOption {
  /** `--client-ip <ip>`, as commander takes it. */
  flags: string;
  /** Values and functions it feeds (`from`, `from.local`, `from.domain`). */
  feeds: string[];
}

/** A placeholder a function gives the texts of a rule that calls it (`{quota.usage}`). */
export interface FunctionPlaceholder {
  word: FunctionWord;
  read: (env: EvalEnv) => string;
}

export class Registry {
  private readonly valueWords = new Map<string, ValueWord>();
  private readonly functionWords = new Map<string, FunctionWord>();
  private readonly placeholderWords = new Map<string, FunctionPlaceholder>();

  constructor(values: readonly ValueWord[], functions: readonly FunctionWord[]) {
    for (const value of values) this.valueWords.set(value.name, value);
    for (const word of functions) {
      this.functionWords.set(word.name, word);
      for (const [name, read] of Object.entries(word.placeholders ?? {}))
        this.placeholderWords.set(name, { word, read });
    }
  }

  /** This registry and one more value (a value of the same name is replaced). */
  withValue(value: ValueWord): Registry {
    return new Registry([...this.values(), value], this.functions());
  }

  /** This registry and one more function (a function of the same name is replaced). */
  withFunction(word: FunctionWord): Registry {
    return new Registry(this.values(), [...this.functions(), word]);
  }

  value(name: string): ValueWord | undefined {
    return this.valueWords.get(name);
  }

  fn(name: string): FunctionWord | undefined {
    return this.functionWords.get(name);
  }

  placeholder(name: string): FunctionPlaceholder | undefined {
    return this.placeholderWords.get(name);
  }

  values(): ValueWord[] {
    return [...this.valueWords.values()];
  }

  functions(): FunctionWord[] {
    return [...this.functionWords.values()];
  }

  /** Values whose names are prefixes of others are still usable alone (`from`, `rcpt`). */
  valueNames(): string[] {
    return [...this.valueWords.keys()];
  }

  functionNames(): string[] {
    return [...this.functionWords.keys()];
  }

  placeholderNames(): string[] {
    return [...this.placeholderWords.keys()];
  }

  /** Names that win over a source's name in rules: the values' first parts and the functions. */
  heads(): string[] {
    const heads = new Set(this.valueNames().map((name) => name.split(".")[0] as string));
    for (const name of this.functionNames()) heads.add(name);
    return [...heads];
  }

  /** The `filterctl dry-run` options that fill words in, in the order of the words. */
  dryRunInputs(): DryRunInput[] {
    const inputs = new Map<string, DryRunInput>();
    for (const word of [...this.values(), ...this.functions()]) {
      if (word.dryRun === undefined) continue;
      const name = "usage" in word ? `${word.name}()` : word.name;
      const known = inputs.get(word.dryRun.flag);
      if (known !== undefined) known.feeds.push(name);
      else
        inputs.set(word.dryRun.flag, {
          ...word.dryRun,
          flags: `${word.dryRun.flag} ${word.dryRun.argument}`,
          feeds: [name],
        });
    }
    return [...inputs.values()];
  }
}

/** The language's words. */
export const REGISTRY = new Registry(VALUES, FUNCTIONS);

/** The dry-run options that fill values in (`--client-ip`, `--from`, `--rcpt`...), for the CLI. */
export const DRY_RUN_INPUTS: readonly DryRunInput[] = REGISTRY.dryRunInputs();

/** The MTA sends the macro stage lists for some stages only; the others borrow (common/stages.ts). */
export { MACRO_STAGE_FOR } from "../common/stages.js";
