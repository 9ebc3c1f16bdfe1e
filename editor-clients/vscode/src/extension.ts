// diffill for VS Code: starts `diffill lsp` over stdio and lets vscode-languageclient show its
// textDocument/inlineCompletion answers as ghost text. All logic lives in the server; this file
// only wires settings (diffill.* -> initializationOptions, changes -> didChangeConfiguration),
// three commands and the status bar.
import * as vscode from "vscode";
import {
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
} from "vscode-languageclient/node";
import { StatusBar } from "./statusBar";

let client: LanguageClient | undefined;

/** The diffill.* settings as plain JSON, in the shape the server reads. */
function settings(): Record<string, unknown> {
  return JSON.parse(JSON.stringify(vscode.workspace.getConfiguration("diffill"))) as Record<
    string,
    unknown
  >;
}

function createClient(statusBar: StatusBar): LanguageClient {
  const config = vscode.workspace.getConfiguration("diffill.server");
  const server: ServerOptions = {
    command: config.get<string>("command", "diffill"),
    // No `transport`: TransportKind.stdio would append `--stdio`; stdio is the default anyway.
    args: config.get<string[]>("args", ["lsp"]),
  };
  const options: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    initializationOptions: settings(),
    synchronize: { configurationSection: "diffill" },
    middleware: {
      // Refresh the latency shown in the status bar once each completion is answered.
      provideInlineCompletionItems: async (document, position, context, token, next) => {
        const items = await next(document, position, context, token);
        statusBar.refreshSoon();
        return items;
      },
    },
  };
  return new LanguageClient("diffill", "diffill", server, options);
}

async function toggle(): Promise<void> {
  const config = vscode.workspace.getConfiguration("diffill");
  await config.update("enable", !config.get<boolean>("enable", true), vscode.ConfigurationTarget.Global);
}

/** (Re)start the server with the current diffill.server.* settings. */
async function start(statusBar: StatusBar): Promise<void> {
  await client?.stop().catch(() => undefined);
  client = createClient(statusBar);
  await client.start().then(() => statusBar.refreshSoon(), (error) => statusBar.failed(String(error)));
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const statusBar = new StatusBar(() => client);
  context.subscriptions.push(
    statusBar,
    vscode.commands.registerCommand("diffill.toggle", toggle),
    vscode.commands.registerCommand("diffill.showStatus", () => statusBar.show()),
    vscode.commands.registerCommand("diffill.restartServer", () => start(statusBar)),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("diffill.server")) {
        void start(statusBar); // a new command or args needs a new process
      }
    }),
  );
  await start(statusBar);
}

export function deactivate(): Thenable<void> | undefined {
  return client?.stop();
}
