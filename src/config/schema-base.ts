/**
 * The JSON Schema of rules.yaml without the source types: the top-level keys, the shared
 * definitions, and the options every source has. schema.ts adds each source type's fragment;
 * `npm run schema` writes the whole to schema/rules.schema.json for editors.
 */
import type { JsonSchema } from "./types.js";

/** The options every source has, in every type's branch (a type may replace one's description). */
export const COMMON_SOURCE_PROPERTIES: Record<string, JsonSchema> = {
  timeout: {
    $ref: "#/definitions/timeout",
    description: "Time allowed for one lookup.",
  },
  on_error: {
    $ref: "#/definitions/sourceOnError",
    description: "tempfail or continue when a lookup fails.",
  },
  cache: {
    $ref: "#/definitions/cache",
    description: "Positive cache TTL.",
  },
  negative_cache: {
    $ref: "#/definitions/negativeCache",
    description: '"Not found" cache TTL.',
  },
  recipient_delimiter: {
    $ref: "#/definitions/recipientDelimiter",
    description: 'Address extension delimiter, e.g. "+".',
  },
};

const BASE: JsonSchema = {
  $schema: "http://json-schema.org/draft-07/schema#",
  $id: "https://filterctl.invalid/schema/rules.schema.json",
  title: "filterctl rules.yaml",
  description:
    "Configuration of filterctl: where the milter listens, the data sources rules look things up in, and the rules themselves. Add `# yaml-language-server: $schema=<path to>/schema/rules.schema.json` as the first line of rules.yaml for completion and checks in your editor.",
  type: "object",
  additionalProperties: false,
  patternProperties: {
    "^x-": {
      description:
        "Ignored: a place for YAML anchors to reuse elsewhere, e.g. `x-common: &common {timeout: 3s}` then `<<: *common` in sources.",
    },
  },
  properties: {
    listen: {
      description:
        "Socket the milter listens on, in Postfix/Sendmail notation: inet:PORT@HOST, inet:HOST:PORT, inet6:PORT@HOST, inet6:[HOST]:PORT, unix:/path or local:/path. `filterctl serve --listen` overrides it.",
      type: "string",
      pattern: "^(inet6?|unix|local|INET6?|UNIX|LOCAL):\\S+$",
      patternErrorMessage:
        "A socket: inet:PORT@HOST, inet:HOST:PORT, inet6:PORT@HOST, inet6:[HOST]:PORT, unix:/path or local:/path.",
      examples: ["inet:127.0.0.1:8890", "inet:8890@127.0.0.1", "unix:/run/filterctl/milter.sock"],
    },
    listen_mode: {
      description:
        'File mode of a unix socket, in octal; quote it ("0660") so YAML keeps the leading zero. Default "0660".',
      type: ["string", "integer"],
      pattern: "^(0o?)?[0-7]{3}$",
      patternErrorMessage: 'Three octal digits, quoted so YAML keeps the leading zero: "0660".',
      default: "0660",
    },
    workers: {
      description:
        "Processes serving the one listening socket (`serve --workers` overrides it): a number, or `auto` for one per core. Each worker has its own sources, cache and `state: memory`; use `state: redis` when rules count with rate() or greylist(). Default 1 (one process, no workers).",
      type: ["integer", "string"],
      minimum: 1,
      maximum: 1024,
      pattern: "^auto$",
      patternErrorMessage: "A number of processes like 2, or auto for one per core.",
      default: 1,
    },
    max_connections: {
      description:
        "Most concurrent milter connections accepted; further connections are closed at once and the MTA applies its own failure policy (Postfix: milter_default_action). Default 4096.",
      type: "integer",
      minimum: 1,
      maximum: 1000000,
      default: 4096,
    },
    max_buffered_input: {
      $ref: "#/definitions/size",
      description:
        "MTA input held unprocessed across all milter connections (packets being received, commands waiting for a busy rule). A connection that would pass it is not read until others let go; one that cannot finish its packet is closed 30s after the packet's first byte. At least 1MiB. Default 64MiB.",
    },
    shutdown_timeout: {
      $ref: "#/definitions/duration",
      description:
        "On SIGTERM, how long sessions in flight may take to finish before they are closed. Default 30s.",
    },
    event_timeout: {
      $ref: "#/definitions/duration",
      description:
        "Deadline for the rules of one milter event (connect, rcpt, ...); past it the event takes `defaults.on_error`. Default 10s.",
    },
    defaults: {
      description: "Defaults for every source.",
      type: "object",
      additionalProperties: false,
      properties: {
        on_error: {
          $ref: "#/definitions/onError",
          description:
            "What a rule does when one of its lookups fails or times out: tempfail (answer `error_reply`) or continue (the condition is false). Default tempfail; DNSBL sources default to continue.",
        },
        error_reply: {
          description:
            'Reply given when a lookup fails and on_error is tempfail: a 4xx code, an optional 4.x.x enhanced code and a text. Default "451 4.3.0 Temporary lookup failure, try again later".',
          type: "string",
          pattern: "^4[0-9][0-9]( 4\\.[0-9]{1,3}\\.[0-9]{1,3})?( [^\\r\\n]*)?$",
          patternErrorMessage:
            'A 4xx reply code, an optional 4.x.x enhanced code and a text on one line: "451 4.3.0 Try again later".',
          default: "451 4.3.0 Temporary lookup failure, try again later",
        },
        timeout: {
          $ref: "#/definitions/duration",
          description: "Time allowed for one lookup, for sources that do not set their own. Default 2s.",
        },
        local_part: {
          description:
            "How addresses' local parts compare: insensitive (default; Bob@example.org is bob@example.org, as in Postfix's tables) or sensitive (kept exact). Domains always compare case-insensitively, and a quoted local part that needs no quotes is the same unquoted either way. Rules, lists and the {user}, {address} and {key} placeholders all use this form.",
          type: "string",
          enum: ["insensitive", "sensitive"],
          default: "insensitive",
        },
        fuse: {
          $ref: "#/definitions/fuse",
          description: "The reject-rate fuse of every rule that sets none of its own. Default: off.",
        },
      },
    },
    dns: {
      description: "DNS resolver settings, for DNSBL lookups.",
      type: "object",
      additionalProperties: false,
      properties: {
        servers: {
          description: "Name servers to ask, as IP or IP:PORT ([IPv6]:PORT). Default: the system resolver.",
          type: "array",
          minItems: 1,
          items: {
            $ref: "#/definitions/dnsServer",
          },
        },
      },
    },
    sources: {
      description:
        "Data sources the rules look things up in, by name. The name is what rules use: `quota(rcpt, backend)`, `from in directory.addresses`.",
      type: "object",
      propertyNames: {
        $ref: "#/definitions/sourceName",
      },
      additionalProperties: {
        $ref: "#/definitions/source",
      },
    },
    rules: {
      description:
        "The rules, in the order they run. Each is either text (`on rcpt: if ... then ...`) or a mapping with name, on, if, then, else and mode.",
      type: "array",
      items: {
        $ref: "#/definitions/rule",
      },
    },
    state: {
      description:
        "Where rate() and greylist() keep their counts: `type: memory` (the default: in the process, lost on restart, not shared) or `type: redis` (a Redis 6+ / Valkey server every filterctl naming it shares).",
      type: "object",
      additionalProperties: false,
      properties: {
        type: {
          description: "memory (default) or redis.",
          type: "string",
          enum: ["memory", "redis"],
          default: "memory",
        },
        url: {
          $ref: "#/definitions/redisUrl",
          description:
            "The Redis server (type redis): redis://[:PASSWORD@]HOST[:PORT][/DB], rediss:// for TLS.",
        },
        urls: {
          description:
            "Several Redis URLs (type redis): the Sentinels with `sentinel`, or the Cluster's nodes with `cluster: true`.",
          type: "array",
          minItems: 1,
          items: { $ref: "#/definitions/redisUrl" },
        },
        sentinel: {
          description: "The Sentinel master's name; `url`/`urls` are then the Sentinels.",
          type: "string",
          pattern: "^\\S+$",
          patternErrorMessage: "The Sentinel master's name, without spaces.",
        },
        cluster: {
          description: "`url`/`urls` are nodes of a Redis Cluster.",
          type: "boolean",
        },
        key_prefix: {
          description: 'Prefix of every key filterctl writes. Default "filterctl:".',
          type: "string",
          maxLength: 100,
          default: "filterctl:",
        },
        timeout: {
          $ref: "#/definitions/duration",
          description:
            "Time allowed for one rate() or greylist() call; past it the rule takes `on_error`. Default 200ms.",
        },
        on_error: {
          $ref: "#/definitions/onError",
          description:
            "What a rule does when the state cannot answer (Redis down or slower than `timeout`): continue (default: the condition is false) or tempfail (`defaults.error_reply`).",
          default: "continue",
        },
      },
    },
    greylist: {
      description: "Greylisting settings, for greylist(KEY...).",
      type: "object",
      additionalProperties: false,
      properties: {
        delay: {
          $ref: "#/definitions/duration",
          description: "A triplet first seen less than this ago is deferred. Default 5m.",
        },
        retry_window: {
          $ref: "#/definitions/duration",
          description:
            "A retry after `delay` passes when it comes within this long of the first sight; later, it starts over. Default 48h.",
        },
        pass_ttl: {
          $ref: "#/definitions/duration",
          description: "A triplet that passed keeps passing this long after its last pass. Default 35d.",
        },
      },
    },
    journal: {
      description:
        "`filterctl serve` appends one JSON line per finished transaction to this file (envelope, headers rules read, lookups with their answers, decisions), for `filterctl replay`. `serve --journal FILE` overrides `path`. Only a restart applies a change.",
      type: "object",
      additionalProperties: false,
      required: ["path"],
      properties: {
        path: {
          description:
            "The journal file, relative to this file's folder; old files are FILE.1 (newest) to FILE.keep.",
          type: "string",
          minLength: 1,
        },
        max_size: {
          $ref: "#/definitions/size",
          description: "The file is rotated before it would grow past this size. Default 100MB.",
        },
        keep: {
          description: "Rotated files kept (FILE.1 … FILE.keep); 0 keeps none. Default 5.",
          type: "integer",
          minimum: 0,
          maximum: 1000,
          default: 5,
        },
      },
    },
    quota_server: {
      description: "Settings of `filterctl quota-server`, the back-end quota HTTP service.",
      type: "object",
      additionalProperties: false,
      required: ["source"],
      properties: {
        listen: {
          description:
            "HOST:PORT the quota service listens on. Default 127.0.0.1:8025; `filterctl quota-server --listen` overrides it.",
          type: "string",
          pattern: "^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9._-]+):[0-9]{1,5}$",
          patternErrorMessage: "HOST:PORT, e.g. 127.0.0.1:8025 or [::1]:8025.",
          default: "127.0.0.1:8025",
        },
        source: {
          $ref: "#/definitions/sourceName",
          description: "Name of the maildir or mbox source whose quota the service reports.",
        },
      },
    },
  },
  definitions: {
    fuse: {
      description:
        "Reject-rate fuse: when, within `window`, at least `min_events` evaluations of the rule were made and more than `max_rate` of them rejected or tempfailed, the rule runs in shadow mode (logged at error level) until `cooldown` passed or the rules are reloaded.",
      type: "object",
      additionalProperties: false,
      required: ["max_rate"],
      properties: {
        max_rate: {
          description: "Share of evaluations that may reject or tempfail, as a percentage: 50%.",
          type: "string",
          pattern: "^[0-9]+(\\.[0-9]+)?%$",
          patternErrorMessage: "A percentage like 50%.",
        },
        window: {
          $ref: "#/definitions/duration",
          description: "The sliding window the rate is measured over. Default 10m.",
        },
        min_events: {
          description: "Evaluations needed in the window before the fuse can trip. Default 200.",
          type: "integer",
          minimum: 1,
          default: 200,
        },
        cooldown: {
          $ref: "#/definitions/duration",
          description: "How long a tripped rule stays in shadow mode before it is re-armed. Default 1h.",
        },
      },
    },
    duration: {
      description: "A duration: a number and a unit, ms, s, m, h or d (500ms, 2s, 5m, 1h).",
      type: "string",
      pattern: "^[0-9]+(\\.[0-9]+)?(ms|s|m|h|d)$",
      patternErrorMessage: "A number and a unit, ms, s, m, h or d: 500ms, 2s, 5m, 1h, 7d.",
    },
    size: {
      description:
        "A size: a number of bytes, or a number and a unit (200MB = 200\u00b710\u2076 bytes, 200MiB = 200\u00b72\u00b2\u2070; B, KB, MB, GB, TB, KiB, MiB, GiB, TiB).",
      type: ["string", "integer"],
      minimum: 0,
      pattern: "^([0-9]+|[0-9]+(\\.[0-9]+)?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB))$",
      patternErrorMessage:
        "A number of bytes, or a number and a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB): 200MB, 1.5GiB.",
    },
    redisUrl: {
      description: "A Redis URL: redis://[USER:PASSWORD@]HOST[:PORT][/DB], rediss:// for TLS.",
      type: "string",
      pattern: "^rediss?://\\S+$",
      patternErrorMessage: "A Redis URL: redis://HOST:PORT/DB, rediss:// for TLS.",
    },
    onError: {
      description:
        "tempfail: answer the error reply (the client retries later); continue: treat the condition as false.",
      type: "string",
      enum: ["tempfail", "continue"],
    },
    sourceName: {
      description:
        "A name: a letter, then letters, digits and '_', with single '-' between words (mail-boxes); at most 64 characters. Not a word of the rule language (from, rcpt, in, not, ...).",
      type: "string",
      pattern: "^[A-Za-z][A-Za-z0-9_]*(-[A-Za-z0-9_]+)*$",
      patternErrorMessage:
        "A letter, then letters, digits and '_', with single '-' between words: backend, mail-boxes.",
      maxLength: 64,
    },
    tableName: {
      description:
        "A table name: a letter, then letters, digits and '_', with single '-' between words; at most 64 characters.",
      type: "string",
      pattern: "^[A-Za-z][A-Za-z0-9_]*(-[A-Za-z0-9_]+)*$",
      patternErrorMessage:
        "A letter, then letters, digits and '_', with single '-' between words: addresses, local-domains.",
      maxLength: 64,
    },
    dnsServer: {
      description: "A name server: 127.0.0.1, 127.0.0.1:53, ::1 or [::1]:53.",
      type: "string",
      pattern:
        "^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}(:[0-9]{1,5})?|\\[[0-9A-Fa-f:.]+\\](:[0-9]{1,5})?|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)$",
      patternErrorMessage: "An IP address with an optional port: 127.0.0.1, 127.0.0.1:53, ::1 or [::1]:53.",
    },
    quota: {
      description: "The quota limit: a size (200MB), or {bytes: SIZE, messages: COUNT}; 0 means no limit.",
      if: {
        type: "object",
      },
      then: {
        $ref: "#/definitions/quotaLimits",
      },
      else: {
        $ref: "#/definitions/size",
      },
    },
    quotaLimits: {
      description: "Byte and message-count limits; 0 or absent means no limit.",
      type: "object",
      additionalProperties: false,
      minProperties: 1,
      properties: {
        bytes: {
          $ref: "#/definitions/size",
          description: "Byte limit, e.g. 200MB.",
        },
        messages: {
          description: "Message-count limit.",
          type: "integer",
          minimum: 0,
        },
      },
    },
    // The kinds of source, and a branch per kind: schema.ts fills them in from the source types.
    sourceType: {},
    timeout: {
      $ref: "#/definitions/duration",
      description: "Time allowed for one lookup in this source. Default: defaults.timeout.",
    },
    sourceOnError: {
      $ref: "#/definitions/onError",
      description:
        "What a rule does when a lookup in this source fails: tempfail or continue. Default: defaults.on_error (continue for dnsbl sources).",
    },
    cache: {
      $ref: "#/definitions/duration",
      description: "How long a found answer is remembered (positive cache TTL); 0s disables it.",
    },
    negativeCache: {
      $ref: "#/definitions/duration",
      description: 'How long a "not found" answer is remembered; 0s disables it.',
    },
    recipientDelimiter: {
      description:
        'Address extension delimiter(s), e.g. "+": {user} is then the local part without its +detail.',
      type: "string",
      pattern: '^[^\\s@"]{1,8}$',
      patternErrorMessage: 'One to eight characters, none of them a space, @ or ": "+" or "+-".',
    },
    pathTemplate: {
      description:
        "Path of the mailbox; {user}, {domain}, {address} are replaced (a value with /, .., NUL or a leading dot is never used).",
      type: "string",
      pattern: "^\\S",
      patternErrorMessage: "A path that does not start with a space, e.g. /var/mail/{user}/Maildir.",
    },
    source: {
      description: "A data source; `type` says which kind, and which other keys apply.",
      type: "object",
      required: ["type"],
      properties: {
        type: {
          $ref: "#/definitions/sourceType",
          description: "",
        },
      },
      allOf: [],
    },
    stage: {
      description: "An SMTP stage: connect, helo, mail, rcpt, data, header, eoh, body or eom.",
      type: "string",
      enum: ["connect", "helo", "mail", "rcpt", "data", "header", "eoh", "body", "eom"],
    },
    ruleText: {
      description: "A rule in text form: `[shadow] on STAGES: if CONDITION then ACTION [else ACTION]`.",
      type: "string",
      pattern: "\\S",
      patternErrorMessage: "A rule is not empty: on STAGES: if CONDITION then ACTION.",
    },
    ruleShorthand: {
      description: "A one-line text rule that YAML reads as a mapping: `- on connect: if ... then ...`.",
      type: "object",
      additionalProperties: {
        description: "The statement after `on STAGES:`.",
        type: "string",
        pattern: "\\S",
        patternErrorMessage: "The statement after on STAGES: is not empty: if CONDITION then ACTION.",
      },
    },
    ruleMapping: {
      description: "A rule in structured form.",
      type: "object",
      additionalProperties: false,
      required: ["on", "then"],
      properties: {
        name: {
          description: "Name shown in logs, metrics and dry-run; default rule-N.",
          type: "string",
          pattern: "^[^\\x00-\\x1f\\x7f]+$",
          patternErrorMessage: "A name on one line, without control characters.",
          maxLength: 100,
        },
        on: {
          description: 'Stage(s) the rule runs at: rcpt, "mail, rcpt" or [mail, rcpt].',
          if: {
            type: "array",
          },
          then: {
            type: "array",
            minItems: 1,
            items: {
              $ref: "#/definitions/stage",
            },
          },
          else: {
            type: "string",
            pattern:
              "^[\\s,]*(connect|helo|mail|rcpt|data|header|eoh|body|eom)([\\s,]+(connect|helo|mail|rcpt|data|header|eoh|body|eom))*[\\s,]*$",
            patternErrorMessage:
              'Stages separated by commas or spaces, among connect, helo, mail, rcpt, data, header, eoh, body and eom: "mail, rcpt".',
          },
        },
        if: {
          description: "The condition, e.g. quota(rcpt, backend) over.",
          type: "string",
          pattern: "\\S",
          patternErrorMessage: "The condition is not empty, e.g. quota(rcpt, backend) over.",
        },
        then: {
          description:
            'Action when the condition holds (or always, without `if`), e.g. tempfail 452 4.2.2 "Quota exceeded".',
          type: "string",
          pattern: "\\S",
          patternErrorMessage: 'The action is not empty, e.g. reject 550 5.7.1 "No".',
        },
        else: {
          description: "Action when the condition does not hold.",
          type: "string",
          pattern: "\\S",
          patternErrorMessage: "The action is not empty, e.g. continue.",
        },
        mode: {
          description:
            "enforce (default), or shadow: evaluated, logged and counted, but never changes what the MTA is told.",
          type: "string",
          enum: ["enforce", "shadow"],
          default: "enforce",
        },
        fuse: {
          $ref: "#/definitions/fuse",
          description: "This rule's reject-rate fuse, instead of defaults.fuse.",
        },
      },
    },
    rule: {
      description:
        "A rule: text (`on rcpt: if ... then ...`) or a mapping with on, if, then, else, name and mode.",
      if: {
        type: "string",
      },
      then: {
        $ref: "#/definitions/ruleText",
      },
      else: {
        if: {
          type: "object",
          minProperties: 1,
          maxProperties: 1,
          propertyNames: {
            pattern: "^\\s*(shadow\\s+)?on\\s",
            patternErrorMessage: "A key starting with on: - on connect: if ... then ...",
          },
        },
        then: {
          $ref: "#/definitions/ruleShorthand",
        },
        else: {
          $ref: "#/definitions/ruleMapping",
        },
      },
    },
  },
};

/** A fresh copy: the assembler adds to it. */
export function baseSchema(): JsonSchema {
  return structuredClone(BASE);
}
