// Starts `filterctl lsp --stdio` for rules*.yaml: diagnostics exactly as `filterctl validate`
// gives them, completion, hover, definitions and formatting of the rule language, while the YAML
// keys are left to the YAML extension and the JSON Schema (contributes.yamlValidation).

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

/** @type {LanguageClient | undefined} */
let client;

function serverOptions() {
  const command = vscode.workspace.getConfiguration("filterctl").get("path") || "filterctl";
  // `shell: false`: the configured path is one program, never a command line.
  return { command, args: ["lsp", "--stdio"], transport: TransportKind.stdio, options: { shell: false } };
}

async function start(context) {
  const files = vscode.workspace.getConfiguration("filterctl").get("files") || "**/rules*.yaml";
  client = new LanguageClient("filterctl", "filterctl rules", serverOptions(), {
    documentSelector: [
      { scheme: "file", language: "yaml", pattern: files },
      { scheme: "untitled", language: "yaml" },
    ],
    outputChannelName: "filterctl",
  });
  try {
    await client.start();
  } catch (error) {
    const path = serverOptions().command;
    vscode.window.showErrorMessage(
      `filterctl: could not start '${path} lsp --stdio' (${error.message}). Set "filterctl.path" to the filterctl program.`,
    );
  }
  context.subscriptions.push(client);
}

async function activate(context) {
  await start(context);
  // A new filterctl.path or files setting takes effect without reloading the window.
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (!event.affectsConfiguration("filterctl")) return;
      if (client !== undefined) await client.stop().catch(() => undefined);
      await start(context);
    }),
  );
}

async function deactivate() {
  if (client !== undefined) await client.stop();
}

module.exports = { activate, deactivate };
