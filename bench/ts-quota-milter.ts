/**
 * The benchmark's TypeScript server, in its own process so its CPU time can be read from
 * /proc like the C baseline's: `MilterServer` with a handler that has only a `rcpt` method
 * (every other stage is skipped at negotiation), reading the recipient's Maildir++
 * `maildirsize` with asynchronous fs calls and answering `452 4.2.2` when over quota.
 *
 * usage: node ts-quota-milter.js PORT|0 MAILDIR_ROOT [--verdicts-in-memory]
 * Listens on 127.0.0.1 only and prints "READY <port>". `--verdicts-in-memory` is a diagnostic
 * for `npm run bench -- --diagnose`: every file is read once at start-up and RCPT is answered
 * from memory, which measures the milter library without the per-recipient file reads.
 */
import { close, constants, open, read, readdirSync, readFileSync } from "node:fs";
import { type MilterHandler, MilterServer, reply } from "../src/milter/index.js";
import { evaluateMaildirsize, MAX_READ, mailboxOf, type QuotaVerdict } from "./maildirsize.js";

const OVER_QUOTA = reply.tempfail(452, "4.2.2", "Mailbox over quota");
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** Read buffers are reused; at most this many are kept for reuse. */
const spareBuffers: Buffer[] = [];
const MAX_SPARE_BUFFERS = 256;

function ignore(): void {}

/** open, one read of at most 5121 bytes, close: three thread-pool calls, never blocking the loop. */
function readQuota(path: string): Promise<QuotaVerdict> {
  return new Promise((resolve) => {
    open(path, OPEN_FLAGS, (openError, fd) => {
      // A missing file means no quota; any other failure is "unknown", never a refusal.
      if (openError !== null) return resolve(openError.code === "ENOENT" ? "ok" : "unknown");
      const buffer = spareBuffers.pop() ?? Buffer.allocUnsafe(MAX_READ);
      read(fd, buffer, 0, MAX_READ, null, (readError, bytesRead) => {
        // The verdict does not wait for the close.
        close(fd, ignore);
        const verdict = readError === null ? evaluateMaildirsize(buffer.subarray(0, bytesRead)) : "unknown";
        if (spareBuffers.length < MAX_SPARE_BUFFERS) spareBuffers.push(buffer);
        resolve(verdict);
      });
    });
  });
}

function fileHandler(root: string): MilterHandler {
  return {
    rcpt(recipient) {
      const mailbox = mailboxOf(recipient);
      if (mailbox === undefined) return undefined;
      return readQuota(`${root}/${mailbox}/maildirsize`).then((verdict) =>
        verdict === "over" ? OVER_QUOTA : undefined,
      );
    },
  };
}

/** Diagnostic only: start-up reads everything (synchronously, before listening), RCPT never touches the disk. */
function memoryHandler(root: string): MilterHandler {
  const over = new Set<string>();
  for (const name of readdirSync(root)) {
    let content: Buffer;
    try {
      content = readFileSync(`${root}/${name}/maildirsize`);
    } catch {
      continue;
    }
    if (evaluateMaildirsize(content.subarray(0, MAX_READ)) === "over") over.add(name);
  }
  return {
    rcpt(recipient) {
      const mailbox = mailboxOf(recipient);
      return mailbox !== undefined && over.has(mailbox) ? OVER_QUOTA : undefined;
    },
  };
}

function main(): void {
  const [portText, root, mode] = process.argv.slice(2);
  const port = Number(portText);
  if (root === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write("usage: ts-quota-milter PORT|0 MAILDIR_ROOT [--verdicts-in-memory]\n");
    process.exit(2);
  }
  // The handler keeps no per-connection state, so one object serves every connection.
  const handler = mode === "--verdicts-in-memory" ? memoryHandler(root) : fileHandler(root);
  const server = new MilterServer(() => handler);
  server.listen({ kind: "tcp", host: "127.0.0.1", port, family: 4 }).then(
    (bound) => {
      process.stdout.write(`READY ${bound.kind === "tcp" ? bound.port : 0}\n`);
    },
    (error: unknown) => {
      process.stderr.write(`${String(error)}\n`);
      process.exit(1);
    },
  );
  const stop = () => {
    server.shutdown(500).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main();
