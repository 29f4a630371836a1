/**
 * dnsbl: a DNS block list, health-checked (SPEC "DNSBL health"). In rules: `client.ip in NAME`,
 * `NAME.zone`, `NAME.reason`.
 */
import { record } from "../../config/build.js";
import type { SourceBuildContext } from "../../config/types.js";
import type { SourceDescriptor } from "../descriptor.js";
import { createDnsblSource, type DnsblHealthConfig, type DnsblSourceConfig } from "../dnsbl.js";

declare module "../../config/types.js" {
  interface SourceConfigs {
    dnsbl: DnsblSourceConfig;
  }
}

export const DEFAULT_HEALTH: DnsblHealthConfig = {
  intervalMs: 5 * 60_000,
  window: 50,
  maxListedRatio: 0.9,
  requirePositiveProbe: true,
};

function health(raw: unknown, ctx: SourceBuildContext): DnsblHealthConfig {
  const options = record(raw);
  return {
    intervalMs: ctx.duration(options.interval, ["health", "interval"], 10_000, DEFAULT_HEALTH.intervalMs),
    window: typeof options.window === "number" ? options.window : DEFAULT_HEALTH.window,
    maxListedRatio:
      typeof options.max_listed_ratio === "number" ? options.max_listed_ratio : DEFAULT_HEALTH.maxListedRatio,
    requirePositiveProbe:
      typeof options.require_positive_probe === "boolean"
        ? options.require_positive_probe
        : DEFAULT_HEALTH.requirePositiveProbe,
  };
}

/** The schema checks each code; a range that ends before it starts is left to say here. */
function codes(raw: unknown, ctx: SourceBuildContext): string[] | undefined {
  if (!Array.isArray(raw)) return undefined;
  const all = raw.map(String);
  const number = (ip: string): number => ip.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
  all.forEach((code, index) => {
    const [from, to] = code.split("-");
    if (to === undefined || from === undefined) return;
    if (number(from) > number(to)) ctx.error(["codes", index], `range '${code}' ends before it starts`);
  });
  return all;
}

export const dnsbl: SourceDescriptor<DnsblSourceConfig> = {
  type: "dnsbl",
  kind: "dnsbl",
  label: "DNSBL",
  // A list that cannot be asked must not hold the mail back: it is one opinion among others.
  onError: "continue",
  ttlMs: { positive: 300_000, negative: 300_000 },
  schema: {
    summary: "dnsbl (DNS block list)",
    typeDescription: "dnsbl: a DNS block list.",
    definition: {
      description:
        "A DNS block list, health-checked (a list that lists everything or answers nothing is turned off).",
      required: ["zone"],
      properties: {
        zone: {
          description: "The list's DNS zone, e.g. zen.spamhaus.org.",
          type: "string",
          pattern:
            "^([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.?$",
          patternErrorMessage:
            "A DNS zone: labels of letters, digits, '-' and '_' joined by dots, e.g. zen.spamhaus.org.",
        },
        codes: {
          description:
            "Answers that count as listed: addresses (127.0.0.2) or ranges (127.0.0.2-127.0.0.11) inside 127.0.0.0/8. Default: any answer in 127/8 but error codes.",
          type: "array",
          minItems: 1,
          items: {
            $ref: "#/definitions/dnsblCode",
          },
        },
        health: {
          description: "Health checking of the list.",
          type: "object",
          additionalProperties: false,
          properties: {
            interval: {
              $ref: "#/definitions/duration",
              description: "Time between probes. Default 5m.",
            },
            window: {
              description: "Number of recent distinct lookups the listed ratio is computed over. Default 50.",
              type: "integer",
              minimum: 1,
              maximum: 100000,
              default: 50,
            },
            max_listed_ratio: {
              description:
                "When more than this share of the window came back listed, probe at once. Default 0.9.",
              type: "number",
              exclusiveMinimum: 0,
              maximum: 1,
              default: 0.9,
            },
            require_positive_probe: {
              description:
                "127.0.0.2 must be listed for the list to be healthy; false for lists that do not publish it. Default true.",
              type: "boolean",
              default: true,
            },
          },
        },
        on_error: {
          $ref: "#/definitions/sourceOnError",
          description: "tempfail or continue when a lookup fails. Default continue for DNSBLs.",
        },
      },
    },
    definitions: {
      dnsblCode: {
        description: "An answer inside 127.0.0.0/8 (127.0.0.2) or a range of them (127.0.0.2-127.0.0.11).",
        type: "string",
        pattern:
          "^127(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}(-127(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3})?$",
        patternErrorMessage:
          "An address in 127.0.0.0/8 (127.0.0.2) or a range of them (127.0.0.2-127.0.0.11).",
      },
    },
    messages: {
      "#/definitions/dnsblSource/properties/zone": (what) =>
        `${what} must be a DNS zone like zen.spamhaus.org`,
      "#/definitions/dnsblCode": (what) =>
        `${what} must be an answer inside 127.0.0.0/8 like 127.0.0.2, or a range like 127.0.0.2-127.0.0.11`,
    },
  },
  build: (raw, base, ctx) => ({
    ...base,
    type: "dnsbl",
    zone: String(raw.zone).replace(/\.$/, ""),
    codes: codes(raw.codes, ctx),
    health: health(raw.health, ctx),
  }),
  create: (config, ctx) => createDnsblSource(config, ctx),
};
