// diffill for VS Code: starts `diffill lsp` over stdio and lets vscode-languageclient show its
// textDocument/inlineCompletion answers as ghost text. All logic lives in the server; this file
// only wires settings (diffill.* -> initializationOptions, changes -> didChangeConfiguration),
// three commands and the status bar. A server that stops is restarted as recovery.ts says.
import * as vscode from "vscode";
import { LanguageClient, LanguageClientOptions, ServerOptions, State } from "vscode-languageclient/node";
import { DiffillClient, Recovery } from "./recovery";
import { StatusBar } from "./statusBar";

let client: LanguageClient | undefined;

/** The diffill.* settings as plain JSON, in the shape the server reads. */
function settings(): Record<string, unknown> {
  return JSON.parse(JSON.stringify(vscode.workspace.getConfiguration("diffill"))) as Record<
    string,
    unknown
  >;
}

function createClient(statusBar: StatusBar, recovery: Recovery): LanguageClient {
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
  const created = new DiffillClient(server, options, recovery);
  created.onDidChangeState(({ newState }) => {
    if (newState === State.Starting) statusBar.starting();
    if (newState === State.Running) statusBar.refreshSoon();
  });
  return created;
}

async function toggle(): Promise<void> {
  const config = vscode.workspace.getConfiguration("diffill");
  await config.update("enable", !config.get<boolean>("enable", true), vscode.ConfigurationTarget.Global);
}

/** (Re)start the server with the current diffill.server.* settings and the whole restart budget. */
async function start(statusBar: StatusBar, recovery: Recovery): Promise<void> {
  await client?.stop().catch(() => undefined);
  recovery.reset();
  client = createClient(statusBar, recovery);
  await client.start().then(() => statusBar.refreshSoon(), (error) => statusBar.failed(String(error)));
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const statusBar = new StatusBar(() => client, () => recovery.restarts());
  const recovery = new Recovery((message) => statusBar.failed(message));
  context.subscriptions.push(
    statusBar,
    vscode.commands.registerCommand("diffill.toggle", toggle),
    vscode.commands.registerCommand("diffill.showStatus", () => statusBar.show()),
    vscode.commands.registerCommand("diffill.restartServer", () => start(statusBar, recovery)),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("diffill.server")) {
        void start(statusBar, recovery); // a new command or args needs a new process
      }
    }),
  );
  await start(statusBar, recovery);
}

export function deactivate(): Thenable<void> | undefined {
  return client?.stop();
}
