// What the extension does when the server process stops on its own: vscode-languageclient
// restarts it while the RestartBudget (restarts.ts) lasts; then the user is told once, with the
// server's last stderr line as the reason, and "diffill: Restart Server" starts over.
import * as readline from "node:readline";
import type { Readable } from "node:stream";
import * as vscode from "vscode";
import {
  CloseAction,
  ErrorAction,
  ErrorHandler,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
} from "vscode-languageclient/node";
import { giveUpMessage, LastLine, RestartBudget } from "./restarts";

/** Write errors tolerated in a row before the connection is shut down (as languageclient's default). */
const WRITE_ERRORS_TOLERATED = 3;

function eachLine(input: Readable, handle: (line: string) => void): void {
  readline.createInterface({ input, crlfDelay: Infinity, terminal: false }).on("line", handle);
}

export class Recovery {
  readonly budget = new RestartBudget();
  private readonly serverError = new LastLine(); // the current process's last stderr line
  private stopped = false; // a server stopped since the last (re)start by the user

  /** `failed` shows the give-up message in the status bar. */
  constructor(private readonly failed: (message: string) => void) {}

  /** A start by the user (activation, Restart Server, new server settings): the whole budget. */
  reset(): void {
    this.budget.reset();
    this.stopped = false;
  }

  /** While restarts are under way, failed starts are reported by the give-up message alone. */
  restarting(): boolean {
    return this.stopped;
  }

  /** Restart a stopped server while the budget lasts; then say why once and stay stopped. */
  errorHandler(): ErrorHandler {
    return {
      error: (_error, _message, count) => ({
        action: count !== undefined && count <= WRITE_ERRORS_TOLERATED ? ErrorAction.Continue : ErrorAction.Shutdown,
      }),
      closed: () => {
        this.stopped = true; // before languageclient reports the start that failed, if one did
        if (this.budget.grant(Date.now())) {
          return { action: CloseAction.Restart, handled: true };
        }
        const message = giveUpMessage(this.budget, this.serverError.value);
        this.failed(message);
        void vscode.window.showErrorMessage(message, "Restart Server").then(async (choice) => {
          if (choice) await vscode.commands.executeCommand("diffill.restartServer");
        });
        return { action: CloseAction.DoNotRestart, message, handled: true };
      },
    };
  }

  /** The server's output goes to the diffill channel as before; stderr is also remembered. */
  stdioOptions(): LanguageClientOptions["stdioOptions"] {
    return {
      stdout: (input, channel) => eachLine(input, (line) => channel.info(line)),
      stderr: (input, channel) => {
        this.serverError.clear(); // a new server process
        eachLine(input, (line) => {
          channel.error(line);
          this.serverError.add(line);
        });
      },
    };
  }

  /** Restarts granted in the current window, for the status bar. */
  restarts(): number {
    return this.budget.used(Date.now());
  }
}

/** vscode-languageclient forces an error notification for every failed start and restart; while
 *  Recovery restarts a stopped server those go to the output channel only, and it tells once. */
export class DiffillClient extends LanguageClient {
  constructor(server: ServerOptions, options: LanguageClientOptions, private readonly recovery: Recovery) {
    super("diffill", "diffill", server, {
      ...options,
      errorHandler: recovery.errorHandler(),
      stdioOptions: recovery.stdioOptions(),
      initializationFailedHandler: () => false, // no extra message per failed initialize
    });
  }

  override error(message: string, data?: unknown, showNotification: boolean | "force" = true): void {
    // `recovery` is unset while the base constructor runs.
    super.error(message, data, this.recovery?.restarting() ? false : showNotification);
  }
}
