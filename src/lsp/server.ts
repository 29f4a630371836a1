/**
 * `filterctl lsp`: the Language Server Protocol over a connection (stdio from the CLI). Wires the
 * editor's requests to the features of this folder; keeps the open documents' text
 * (TextDocuments) and validates each one ~150 ms after its last change. Nothing here opens a
 * source: an editor must not make the network calls serve makes.
 */
import { fileURLToPath } from "node:url";
import {
  type CompletionItem,
  type Connection,
  type Location,
  type Diagnostic as LspDiagnostic,
  MarkupKind,
  type Range,
  TextDocumentSyncKind,
  TextDocuments,
} from "vscode-languageserver/node";
import { TextDocument } from "vscode-languageserver-textdocument";
import { completionsAt, toItem } from "./completion.js";
import { toEditor, validateText } from "./diagnostics.js";
import { RulesDocument } from "./document.js";
import { formatRules } from "./format.js";
import { hoverAt } from "./hover.js";
import { definitionAt, referencesAt } from "./navigation.js";

export const DEBOUNCE_MS = 150;

/** The path validate would be given: relative file names in the rules resolve against its folder. */
export function pathOf(uri: string): string {
  return uri.startsWith("file:") ? fileURLToPath(uri) : "rules.yaml";
}

class Workspace {
  readonly documents = new TextDocuments(TextDocument);
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly models = new Map<string, { version: number; doc: RulesDocument }>();
  relatedInformation = false;

  constructor(private readonly connection: Connection) {
    this.documents.onDidChangeContent(({ document }) => this.schedule(document));
    this.documents.onDidClose(({ document }) => {
      clearTimeout(this.timers.get(document.uri));
      this.timers.delete(document.uri);
      this.models.delete(document.uri);
      void connection.sendDiagnostics({ uri: document.uri, diagnostics: [] });
    });
  }

  model(uri: string): { text: TextDocument; doc: RulesDocument } | undefined {
    const text = this.documents.get(uri);
    if (text === undefined) return undefined;
    const known = this.models.get(uri);
    if (known?.version === text.version) return { text, doc: known.doc };
    const doc = new RulesDocument(text.getText());
    this.models.set(uri, { version: text.version, doc });
    return { text, doc };
  }

  private schedule(document: TextDocument): void {
    clearTimeout(this.timers.get(document.uri));
    const timer = setTimeout(() => {
      this.timers.delete(document.uri);
      void this.publish(document.uri);
    }, DEBOUNCE_MS);
    this.timers.set(document.uri, timer);
  }

  private async publish(uri: string): Promise<void> {
    const document = this.documents.get(uri);
    if (document === undefined) return;
    const { version } = document;
    const text = document.getText();
    let found: Awaited<ReturnType<typeof validateText>>;
    try {
      found = await validateText(pathOf(uri), text);
    } catch (error) {
      this.connection.console.error(`filterctl: validating ${uri} failed: ${(error as Error).stack}`);
      return;
    }
    // An edit made while validating is validated next; this answer is about older text.
    if (this.documents.get(uri)?.version !== version) return;
    const lines = text.split("\n");
    const diagnostics: LspDiagnostic[] = found.map((d) => {
      const { hint, ...shown } = toEditor(d, lines);
      const diagnostic: LspDiagnostic = shown;
      if (hint !== undefined && this.relatedInformation)
        diagnostic.relatedInformation = [{ location: { uri, range: shown.range }, message: hint }];
      return diagnostic;
    });
    await this.connection.sendDiagnostics({ uri, version, diagnostics });
  }
}

function rangeOf(text: TextDocument, start: number, end: number): Range {
  return { start: text.positionAt(start), end: text.positionAt(end) };
}

function addFeatures(connection: Connection, workspace: Workspace): void {
  connection.onCompletion(({ textDocument, position }): CompletionItem[] => {
    const model = workspace.model(textDocument.uri);
    if (model === undefined) return [];
    const offset = model.text.offsetAt(position);
    const found = completionsAt(model.doc, offset);
    if (found === undefined) return [];
    const range = rangeOf(model.text, found.from, offset);
    return found.offers.map((offer) => toItem(offer, range));
  });
  connection.onHover(({ textDocument, position }) => {
    const model = workspace.model(textDocument.uri);
    const hover = model && hoverAt(model.doc, model.text.offsetAt(position));
    if (model === undefined || hover === undefined) return null;
    return {
      contents: { kind: MarkupKind.Markdown, value: hover.markdown },
      range: rangeOf(model.text, hover.start, hover.end),
    };
  });
  connection.onDefinition(({ textDocument, position }): Location | null => {
    const model = workspace.model(textDocument.uri);
    const target = model && definitionAt(model.doc, model.text.offsetAt(position));
    if (model === undefined || target === undefined) return null;
    return { uri: textDocument.uri, range: rangeOf(model.text, target.start, target.end) };
  });
  connection.onReferences(({ textDocument, position, context }): Location[] => {
    const model = workspace.model(textDocument.uri);
    if (model === undefined) return [];
    const found = referencesAt(model.doc, model.text.offsetAt(position), context.includeDeclaration);
    return found.map((r) => ({ uri: textDocument.uri, range: rangeOf(model.text, r.start, r.end) }));
  });
  connection.onDocumentFormatting(({ textDocument }) => {
    const text = workspace.documents.get(textDocument.uri);
    if (text === undefined) return [];
    return formatRules(pathOf(textDocument.uri), text.getText()).map((edit) => ({
      range: rangeOf(text, edit.start, edit.end),
      newText: edit.newText,
    }));
  });
}

/** Serves the protocol on `connection` until the client's `exit`. */
export function startServer(connection: Connection): void {
  const workspace = new Workspace(connection);
  connection.onInitialize(({ capabilities }) => {
    workspace.relatedInformation = capabilities.textDocument?.publishDiagnostics?.relatedInformation === true;
    return {
      capabilities: {
        textDocumentSync: TextDocumentSyncKind.Incremental,
        completionProvider: { triggerCharacters: [" ", ".", "{", "(", ",", ":"] },
        hoverProvider: true,
        definitionProvider: true,
        referencesProvider: true,
        documentFormattingProvider: true,
      },
      serverInfo: { name: "filterctl" },
    };
  });
  // The first validation compiles the JSON Schema (over a second on a busy machine): done while
  // the editor is still opening its first file, not after.
  connection.onInitialized(() => {
    void validateText(pathOf("untitled:warm-up"), "rules: []\n").catch(() => undefined);
  });
  addFeatures(connection, workspace);
  workspace.documents.listen(connection);
  connection.listen();
}
