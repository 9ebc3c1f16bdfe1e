// When the server process stops on its own, vscode-languageclient asks the client's error
// handler whether to start it again. This budget answers: yes for MAX_RESTARTS restarts within
// RESTART_WINDOW_MS, then no, so a server that dies at start-up does not loop. No vscode import:
// test/protocol.test.ts runs it in plain Node.

/** Restarts allowed within RESTART_WINDOW_MS; the next stop in that window gives up. */
export const MAX_RESTARTS = 4;
/** The sliding window the restarts are counted in (the languageclient default's 3 minutes). */
export const RESTART_WINDOW_MS = 3 * 60_000;

export class RestartBudget {
  private restarts: number[] = []; // when each restart was granted, oldest first

  constructor(
    readonly maxRestarts: number = MAX_RESTARTS,
    readonly windowMs: number = RESTART_WINDOW_MS,
  ) {}

  /** The server stopped at `now` (ms): true grants a restart, false means give up. */
  grant(now: number): boolean {
    this.restarts = this.restarts.filter((time) => now - time < this.windowMs);
    if (this.restarts.length >= this.maxRestarts) {
      return false;
    }
    this.restarts.push(now);
    return true;
  }

  /** Restarts granted within the window before `now`. */
  used(now: number): number {
    return this.restarts.filter((time) => now - time < this.windowMs).length;
  }

  /** A manual restart (or new server settings) starts with the whole budget. */
  reset(): void {
    this.restarts = [];
  }
}

/** The one message shown when the budget is spent; `reason` is the server's last error line. */
export function giveUpMessage(budget: RestartBudget, reason: string | undefined): string {
  const minutes = budget.windowMs / 60_000;
  const why = reason ? `Its last error: ${reason}.` : "It wrote no error output.";
  return `diffill: the server stopped ${budget.maxRestarts + 1} times within ${minutes} minutes, so it` +
    ` is not restarted again. ${why} Fix it, then run "diffill: Restart Server".`;
}

/** Remembers the last non-blank line a stream of lines carried (the server's stderr). */
export class LastLine {
  private line: string | undefined;

  add(line: string): void {
    if (line.trim() !== "") {
      this.line = line.trim();
    }
  }

  get value(): string | undefined {
    return this.line;
  }

  clear(): void {
    this.line = undefined;
  }
}
