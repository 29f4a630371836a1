/**
 * `filterctl lsp [--stdio]`: the language server for editors, over stdin and stdout. stdout
 * carries the protocol only, so nothing else may write to it.
 */
import { createConnection, ProposedFeatures } from "vscode-languageserver/node";
import { startServer } from "../lsp/server.js";

export function lspCommand(): void {
  startServer(createConnection(ProposedFeatures.all, process.stdin, process.stdout));
}
