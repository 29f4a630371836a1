/**
 * A strict parser of the Prometheus text exposition format (version 0.0.4), for tests that scrape
 * `/metrics`: every line is a HELP, a TYPE, a sample or blank; a family's HELP and TYPE come once,
 * before its samples, which are contiguous; sample names fit the family's type (`_bucket`, `_sum`,
 * `_count` for histograms and summaries); label values are properly escaped; values are floats.
 * Anything else throws, naming the line.
 */

export type MetricType = "counter" | "gauge" | "histogram" | "summary" | "untyped";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: MetricType;
  help: string;
  samples: Sample[];
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set<MetricType>(["counter", "gauge", "histogram", "summary", "untyped"]);
const SUFFIXES: Record<MetricType, string[]> = {
  counter: [""],
  gauge: [""],
  untyped: [""],
  histogram: ["_bucket", "_sum", "_count"],
  summary: ["", "_sum", "_count"],
};

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  let current: Family | undefined;
  const lines = text.split("\n");
  if (lines.pop() !== "") throw new Error("the exposition must end with a newline");
  lines.forEach((line, index) => {
    const fail = (why: string): never => {
      throw new Error(`line ${index + 1}: ${why}: ${JSON.stringify(line)}`);
    };
    if (line === "") return;
    const comment = new RegExp(`^# (HELP|TYPE) (${NAME}) (.*)$`).exec(line);
    if (comment !== null) {
      const [, kind, name, rest] = comment as unknown as [string, string, string, string];
      let family = families.get(name);
      if (family === undefined) {
        family = { name, type: "untyped", help: "", samples: [] };
        families.set(name, family);
      } else if (family !== current || family.samples.length > 0)
        fail(`${kind} of ${name} after its samples`);
      current = family;
      if (kind === "TYPE") {
        if (!TYPES.has(rest as MetricType)) fail(`unknown type '${rest}'`);
        family.type = rest as MetricType;
      } else family.help = rest;
      return;
    }
    if (line.startsWith("#")) fail("a comment that is neither HELP nor TYPE");
    const sample = parseSample(line, fail);
    const family = familyOf(sample.name, current);
    if (family === undefined) fail(`sample of no family declared just before (${current?.name ?? "none"})`);
    (family as Family).samples.push(sample);
  });
  return families;
}

function familyOf(sample: string, current: Family | undefined): Family | undefined {
  if (current === undefined) return undefined;
  return SUFFIXES[current.type].some((suffix) => sample === current.name + suffix) ? current : undefined;
}

function parseSample(line: string, fail: (why: string) => never): Sample {
  const head = new RegExp(`^(${NAME})`).exec(line);
  if (head === null) return fail("not a sample");
  const name = head[1] as string;
  let rest = line.slice(name.length);
  const labels: Record<string, string> = {};
  if (rest.startsWith("{")) {
    rest = rest.slice(1);
    while (!rest.startsWith("}")) {
      const pair = /^([^=]+)="((?:[^"\\\n]|\\[\\"n])*)"(,?)/.exec(rest);
      if (pair === null) return fail("bad label");
      const [whole, key, raw, comma] = pair as unknown as [string, string, string, string];
      if (!LABEL_NAME.test(key) || key in labels) fail(`bad or repeated label name '${key}'`);
      labels[key] = raw.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
      rest = rest.slice(whole.length);
      if (comma === "" && !rest.startsWith("}")) fail("labels not separated by a comma");
    }
    rest = rest.slice(1);
  }
  const value = /^ (\S+)( -?\d+)?$/.exec(rest);
  if (value === null) return fail("no value after the name and labels");
  const number = parseValue(value[1] as string);
  if (number === undefined) return fail(`'${value[1]}' is not a float`);
  return { name, labels, value: number };
}

function parseValue(text: string): number | undefined {
  if (text === "NaN") return Number.NaN;
  if (text === "+Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  return /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text) ? Number(text) : undefined;
}

/** The value of the sample of `name` whose labels include `labels`; undefined when none. */
export function sampleValue(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const family of families.values()) {
    for (const sample of family.samples) {
      if (sample.name !== name) continue;
      if (Object.entries(labels).every(([k, v]) => sample.labels[k] === v)) return sample.value;
    }
  }
  return undefined;
}
