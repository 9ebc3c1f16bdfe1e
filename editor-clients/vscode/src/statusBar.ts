// The status bar item: server state and the last completion latency, read from the server's
// `diffill/status` request (polled after completions, never on a timer while idle).
import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node";

/** The part of the `diffill/status` answer shown here (see lsp_server/status.py). */
export interface Status {
  state: "loading" | "ready" | "failed";
  error?: string | null;
  model?: { name?: string; model?: string; runtime?: string } | string;
  mode?: string;
  enabled?: boolean;
  latencyMs?: { last?: number[]; p50?: number | null; p95?: number | null };
  accepted?: number;
}

export function lastLatency(status: Status): number | undefined {
  const last = status.latencyMs?.last ?? [];
  return last.length > 0 ? last[last.length - 1] : undefined;
}

/** One line for people: state, model, mode, latencies, accepted count, automatic restarts. */
export function describe(status: Status, restarts = 0): string {
  const model = typeof status.model === "object" ? (status.model?.name ?? status.model?.model) : status.model;
  const ms = (value: number | null | undefined) => (value == null ? "-" : `${value.toFixed(1)} ms`);
  const parts = [
    `diffill: ${status.state}`,
    `model ${model ?? "?"}`,
    `mode ${status.mode ?? "?"}`,
    `last ${ms(lastLatency(status))}`,
    `p50 ${ms(status.latencyMs?.p50)}`,
    `accepted ${status.accepted ?? 0}`,
    ...(restarts > 0 ? [`restarted ${restarts}`] : []),
  ];
  return status.error ? `${parts.join(", ")}; error: ${status.error}` : parts.join(", ");
}

export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  private pending: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: () => LanguageClient | undefined,
    private readonly restarts: () => number, // automatic restarts in the current window
  ) {
    this.item.command = "diffill.showStatus";
    this.item.text = "$(loading~spin) diffill";
    this.item.show();
  }

  /** Ask for the status shortly after a completion (many completions, one request). */
  refreshSoon(): void {
    if (this.pending === undefined) {
      this.pending = setTimeout(() => {
        this.pending = undefined;
        void this.refresh();
      }, 500);
    }
  }

  async refresh(): Promise<Status | undefined> {
    const client = this.client();
    if (!client?.isRunning()) {
      return undefined;
    }
    try {
      const status = await client.sendRequest<Status>("diffill/status", {});
      this.render(status);
      return status;
    } catch (error) {
      this.failed(String(error));
      return undefined;
    }
  }

  async show(): Promise<void> {
    const status = await this.refresh();
    const text = status ? describe(status, this.restarts()) : "diffill: the server is not running";
    void vscode.window.showInformationMessage(text);
  }

  /** A server process is being started (the first, or a restart). */
  starting(): void {
    this.item.text = "$(loading~spin) diffill";
    this.item.tooltip = "diffill: starting the server";
    this.item.accessibilityInformation = { label: "diffill starting" };
  }

  failed(reason: string): void {
    this.item.text = "$(error) diffill";
    this.item.tooltip = reason;
    this.item.accessibilityInformation = { label: `diffill failed: ${reason}` };
  }

  private render(status: Status): void {
    if (status.state === "loading") {
      this.refreshSoon(); // keep asking until the model is ready or has failed
    }
    const latency = lastLatency(status);
    const icon = status.state === "ready" ? (status.enabled === false ? "$(circle-slash)" : "$(sparkle)")
      : status.state === "loading" ? "$(loading~spin)" : "$(error)";
    this.item.text = `${icon} diffill${latency === undefined ? "" : ` ${Math.round(latency)} ms`}`;
    this.item.tooltip = describe(status, this.restarts());
    const state = status.enabled === false ? "disabled" : status.state;
    const why = status.error ? `: ${status.error}` : "";
    const restarts = this.restarts();
    const restarted = restarts > 0 ? `, restarted ${restarts}` : "";
    this.item.accessibilityInformation = { label: `diffill ${state}${why}${restarted}` };
  }

  dispose(): void {
    clearTimeout(this.pending);
    this.item.dispose();
  }
}
