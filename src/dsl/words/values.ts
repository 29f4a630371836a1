/**
 * The values of a transaction, each declared once: its type, stages, documentation, the dry-run
 * option that fills it, and how it is read from the Transaction (runtime/transaction.ts). A new
 * value is one entry here (and a field of the Transaction when it is new data).
 */
import {
  type AddressParts,
  type LocalPartMode,
  localPartContent,
  normalizeAddress,
  normalizeAddressParts,
  splitAddress,
} from "../../common/address.js";
import { networkOf } from "../../common/ip.js";
import { incomingSize } from "../../runtime/transaction.js";
import type { EvalEnv, Value } from "../evaluation.js";
import type { DryRunOption, ValueWord } from "./types.js";

const CLIENT_IP_OPTION: DryRunOption = {
  flag: "--client-ip",
  argument: "<ip>",
  help: "the SMTP client's address",
  required: true,
};
const FROM_OPTION: DryRunOption = {
  flag: "--from",
  argument: "<address>",
  help: "envelope sender; '' is the null sender <>",
  required: true,
};
const RCPT_OPTION: DryRunOption = {
  flag: "--rcpt",
  argument: "<address>",
  help: "recipient (repeat for several)",
  required: true,
  repeatable: true,
};
export const HEADER_OPTION: DryRunOption = {
  flag: "--header",
  argument: "<'Name: value'>",
  help: "a header (repeatable)",
  repeatable: true,
};

type Which = "from" | "rcpt";
type Part = "address" | "local" | "domain";

const given = (which: Which) =>
  which === "from" ? (env: EvalEnv) => env.tx.from : (env: EvalEnv) => env.tx.rcpt;

/**
 * The last address of a kind (`from` or `rcpt`) normalised, shared by every reader of that kind in
 * a local-part mode: `from.domain`, `from` and `from.local` in the rules of one event split and
 * fold the address once, not once each. The function is pure, so a stale entry can only miss,
 * never mislead (whatever ruleset, transaction or reload reads it).
 */
class NormalizedAddress {
  private given = "";
  private parts: AddressParts = { local: "", domain: undefined };
  private address: string | undefined = "";
  private local: string | undefined = "";

  constructor(private readonly mode: LocalPartMode) {}

  private of(text: string): AddressParts {
    if (text !== this.given) {
      this.parts = normalizeAddressParts(text, this.mode);
      this.address = undefined;
      this.local = undefined;
      this.given = text;
    }
    return this.parts;
  }

  /** normalizeAddress(text, mode) */
  addressOf(text: string): string {
    const parts = this.of(text);
    this.address ??= parts.domain === undefined ? parts.local : `${parts.local}@${parts.domain}`;
    return this.address;
  }

  /** normalizeAddressParts(text, mode).domain ?? "" */
  domainOf(text: string): string {
    return this.of(text).domain ?? "";
  }

  /** normalizeLocalContent(splitAddress(text).local, mode) */
  localOf(text: string): string {
    const parts = this.of(text);
    this.local ??= localPartContent(parts.local);
    return this.local;
  }
}

const NORMALIZED: Record<Which, Record<LocalPartMode, NormalizedAddress>> = {
  from: { insensitive: new NormalizedAddress("insensitive"), sensitive: new NormalizedAddress("sensitive") },
  rcpt: { insensitive: new NormalizedAddress("insensitive"), sensitive: new NormalizedAddress("sensitive") },
};

/**
 * `from`, `rcpt` and their `.local` (the unquoted name) and `.domain`, normalised (common/address),
 * so neither case nor quoting changes what matches.
 */
function readAddress(which: Which, part: Part) {
  return (mode: LocalPartMode): ((env: EvalEnv) => Value) => {
    const cache = NORMALIZED[which][mode];
    if (which === "from") {
      if (part === "address") return (env) => cache.addressOf(env.tx.from);
      if (part === "local") return (env) => cache.localOf(env.tx.from);
      return (env) => cache.domainOf(env.tx.from);
    }
    if (part === "address") return (env) => cache.addressOf(env.tx.rcpt);
    if (part === "local") return (env) => cache.localOf(env.tx.rcpt);
    return (env) => cache.domainOf(env.tx.rcpt);
  };
}

/** In texts, as the client wrote it ("Quota exceeded for Bob@Example.ORG"), as the MTA's own replies do. */
function showAddress(which: Which, part: Part) {
  return (): ((env: EvalEnv) => Value) => {
    const read = given(which);
    if (part === "local") return (env) => splitAddress(read(env)).local;
    if (part === "domain") return (env) => splitAddress(read(env)).domain ?? "";
    return read;
  };
}

function addressValues(which: Which, option: DryRunOption, docs: Record<Part, string>): ValueWord[] {
  const type = { address: "address", local: "localpart", domain: "domain" } as const;
  return (["address", "local", "domain"] as const).map((part) => {
    const word: ValueWord = {
      name: part === "address" ? which : `${which}.${part}`,
      type: type[part],
      from: which === "from" ? "mail" : "rcpt",
      needs: [which === "from" ? "mail" : "rcpt"],
      doc: docs[part],
      dryRun: option,
      read: readAddress(which, part),
      show: showAddress(which, part),
    };
    if (which === "rcpt") word.only = "rcpt";
    return word;
  });
}

export const VALUES: readonly ValueWord[] = [
  {
    name: "client.ip",
    type: "ip",
    from: "connect",
    needs: ["connect"],
    doc: "the SMTP client's IP address (in comparisons and tables, IPv6 in any spelling is the same address, and `::ffff:192.0.2.1` is `192.0.2.1`)",
    dryRun: CLIENT_IP_OPTION,
    read: () => (env) => env.tx.client.ip,
  },
  {
    name: "client.name",
    type: "string",
    from: "connect",
    needs: ["connect"],
    doc: "the client's host name",
    dryRun: { flag: "--client-name", argument: "<name>", help: "the client's host name" },
    read: () => (env) => env.tx.client.name,
  },
  {
    name: "client.port",
    type: "number",
    from: "connect",
    needs: ["connect"],
    doc: "the client's TCP port",
    read: () => (env) => env.tx.client.port,
  },
  {
    name: "client.net",
    type: "string",
    from: "connect",
    needs: ["connect"],
    doc: 'the client\'s network as a CIDR text: the /24 of an IPv4 address (`192.0.2.0/24`), the /64 of an IPv6 one (`2001:db8:1:2::/64`); `""` for a client with no IP address (a unix socket)',
    dryRun: CLIENT_IP_OPTION,
    read: () => {
      // Every rule of a connection reads the same client: the last answer is kept.
      let lastIp = "";
      let lastNet = "";
      return (env) => {
        const ip = env.tx.client.ip;
        if (ip !== lastIp) {
          lastNet = networkOf(ip);
          lastIp = ip;
        }
        return lastNet;
      };
    },
  },
  {
    name: "helo",
    type: "string",
    from: "helo",
    needs: ["helo"],
    doc: "the HELO/EHLO argument",
    dryRun: { flag: "--helo", argument: "<name>", help: "HELO/EHLO argument" },
    read: () => (env) => env.tx.helo,
  },
  {
    name: "auth.user",
    type: "string",
    from: "mail",
    needs: ["mail"],
    macros: [{ stage: "mail", names: ["{auth_authen}"] }],
    doc: 'the SASL login, `""` when none',
    dryRun: { flag: "--auth", argument: "<user>", help: "SASL login of the client" },
    read: () => (env) => env.tx.authUser,
  },
  ...addressValues("from", FROM_OPTION, {
    address: 'the envelope sender without angle brackets; `""` for the null sender `<>`',
    local: 'the sender\'s local part, unquoted (`"Bob Smith"` is `bob smith`); `""` for `<>`',
    domain: 'the sender\'s domain; `""` for `<>`',
  }),
  {
    name: "size",
    type: "size",
    from: "mail",
    needs: ["mail"],
    extraNeeds: { ifRuleAt: "eom", stages: ["header", "body"] },
    doc: "`SIZE=` of MAIL FROM (0 if absent); at `eom`, the whole message: its header lines (`Name: value` and CRLF each), the blank line and the body",
    dryRun: { flag: "--size", argument: "<bytes>", help: "SIZE= announced at MAIL FROM", bytes: true },
    read: () => (env) => incomingSize(env.tx),
  },
  ...addressValues("rcpt", RCPT_OPTION, {
    address: "the recipient being decided",
    local: "the recipient's local part, unquoted",
    domain: "the recipient's domain",
  }),
  {
    name: "rcpts",
    type: "address list",
    from: "data",
    needs: ["rcpt"],
    doc: "the accepted recipients (a list: `X in rcpts`, `count(rcpts)`, `{rcpts}` in texts)",
    dryRun: RCPT_OPTION,
    read: (mode) => (env) => env.tx.rcpts.map((address) => normalizeAddress(address, mode)),
    show: () => (env) => env.tx.rcpts,
  },
  {
    name: "header.name",
    type: "string",
    from: "header",
    only: "header",
    needs: ["header"],
    doc: "the current header's name",
    dryRun: HEADER_OPTION,
    read: () => (env) => env.tx.header.name,
  },
  {
    name: "header.value",
    type: "string",
    from: "header",
    only: "header",
    needs: ["header"],
    doc: "the current header's value",
    dryRun: HEADER_OPTION,
    read: () => (env) => env.tx.header.value,
  },
];
