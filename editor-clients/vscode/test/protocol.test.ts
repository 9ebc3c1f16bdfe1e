// The server through Microsoft's own LSP protocol library (the one vscode-languageclient uses):
// the real `diffill lsp` (DIFFILL_SERVER, default `diffill` on PATH) over stdio with the real model.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  ClientCapabilities,
  CompletionItem,
  CompletionRequest,
  createProtocolConnection,
  ExecuteCommandRequest,
  ExitNotification,
  InitializedNotification,
  InitializeRequest,
  InlineCompletionItem,
  InlineCompletionList,
  InlineCompletionRequest,
  InlineCompletionTriggerKind,
  ProtocolConnection,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
  DidOpenTextDocumentNotification,
  TextEdit,
} from "vscode-languageserver-protocol/node";
import type { Status } from "../src/statusBar";

const URI = "file:///tmp/diffill-protocol-test/sample.py";
const TEXT = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    ret";
const END = { line: 5, character: 7 };
const ALTERNATIVES = 2;
const LIMIT = { timeout: 240_000 }; // fail instead of hanging; the first model load is slow

function itemsOf(result: InlineCompletionList | InlineCompletionItem[] | null): InlineCompletionItem[] {
  return result === null ? [] : Array.isArray(result) ? result : result.items;
}

async function status(connection: ProtocolConnection): Promise<Status> {
  return connection.sendRequest<Status>("diffill/status", {});
}

/** Poll diffill/status until the model has loaded (the first load can take a while). */
async function ready(connection: ProtocolConnection): Promise<Status> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const current = await status(connection);
    if (current.state !== "loading" || Date.now() > deadline) {
      return current;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

interface Server {
  connection: ProtocolConnection;
  exited: Promise<number | null>;
  kill: () => void;
}

function startServer(): Server {
  const command = process.env.DIFFILL_SERVER ?? "diffill";
  const server = spawn(command, ["lsp"], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise<number | null>((resolve) => server.on("exit", resolve));
  const connection = createProtocolConnection(
    new StreamMessageReader(server.stdout),
    new StreamMessageWriter(server.stdin),
  );
  connection.listen();
  return { connection, exited, kill: () => server.kill() };
}

/** Run `body` against a fresh server; shut it down cleanly, or kill it if `body` failed. */
async function withServer(capabilities: ClientCapabilities, body: (c: ProtocolConnection) => Promise<void>) {
  const { connection, exited, kill } = startServer();
  try {
    await initialize(connection, capabilities);
    await body(connection);
    await connection.sendRequest(ShutdownRequest.type);
    await connection.sendNotification(ExitNotification.type);
    assert.equal(await exited, 0, "the server exits with 0 after shutdown + exit");
  } finally {
    connection.dispose();
    kill();
  }
}

async function initialize(connection: ProtocolConnection, capabilities: ClientCapabilities): Promise<void> {
  const init = await connection.sendRequest(InitializeRequest.type, {
    processId: process.pid,
    rootUri: null,
    capabilities,
    initializationOptions: { alternatives: ALTERNATIVES },
  });
  assert.ok(init.capabilities.inlineCompletionProvider, "inlineCompletionProvider advertised");
  assert.ok(init.capabilities.completionProvider, "completionProvider advertised");
  await connection.sendNotification(InitializedNotification.type, {});
  assert.equal((await ready(connection)).state, "ready");
  await connection.sendNotification(DidOpenTextDocumentNotification.type, {
    textDocument: { uri: URI, languageId: "python", version: 1, text: TEXT },
  });
}

async function inline(
  connection: ProtocolConnection,
  triggerKind: InlineCompletionTriggerKind,
): Promise<InlineCompletionItem[]> {
  return itemsOf(await connection.sendRequest(InlineCompletionRequest.type, {
    textDocument: { uri: URI }, position: END, context: { triggerKind },
  }));
}

async function completionItems(connection: ProtocolConnection): Promise<CompletionItem[]> {
  const result = await connection.sendRequest(CompletionRequest.type, {
    textDocument: { uri: URI }, position: END,
  });
  return result === null ? [] : Array.isArray(result) ? result : result.items;
}

void test("an inline-capable client (like VS Code): inline items, accept count, no list", LIMIT, async () => {
  await withServer({ textDocument: { inlineCompletion: {}, completion: {} } }, async (connection) => {
    const automatic = await inline(connection, InlineCompletionTriggerKind.Automatic);
    assert.equal(automatic.length, 1, "Automatic trigger: one item");
    const [item] = automatic;
    assert.equal(typeof item.insertText, "string");
    assert.match(item.insertText as string, /\S/);
    assert.equal(item.command?.command, "diffill.accepted");
    const invoked = await inline(connection, InlineCompletionTriggerKind.Invoked);
    assert.ok(invoked.length >= 1 && invoked.length <= ALTERNATIVES, `Invoked: ${invoked.length} items`);

    const before = (await status(connection)).accepted ?? 0;
    await connection.sendRequest(ExecuteCommandRequest.type, {
      command: item.command.command, arguments: item.command.arguments,
    });
    assert.equal((await status(connection)).accepted, before + 1, "diffill.accepted counted");
    // The ghost text already shows the suggestion: the completion list must not repeat it.
    assert.deepEqual(await completionItems(connection), []);
  });
});

void test("a client without inline completion gets the completion-list fallback", LIMIT, async () => {
  await withServer({ textDocument: { completion: {} } }, async (connection) => {
    const items = await completionItems(connection);
    assert.equal(items.length, 1);
    const edit = items[0].textEdit as TextEdit;
    assert.match(edit.newText, /\S/);
    assert.deepEqual(edit.range.start, END);
    assert.equal(items[0].command?.command, "diffill.accepted");
  });
});
