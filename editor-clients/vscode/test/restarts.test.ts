// The restart budget of src/restarts.ts, the logic vscode-languageclient's error handler asks
// when the server stops (src/recovery.ts); plain Node, no server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { giveUpMessage, LastLine, MAX_RESTARTS, RESTART_WINDOW_MS, RestartBudget } from "../src/restarts";

const MINUTE = 60_000;

void test("a server that keeps stopping gets MAX_RESTARTS restarts, then none", () => {
  const budget = new RestartBudget();
  const granted = Array.from({ length: MAX_RESTARTS + 3 }, (_, i) => budget.grant(i * 1000));
  assert.deepEqual(granted, [...Array<boolean>(MAX_RESTARTS).fill(true), false, false, false]);
  assert.equal(budget.used(MAX_RESTARTS * 1000), MAX_RESTARTS);
});

void test("restarts older than the window no longer count", () => {
  const budget = new RestartBudget(2, 3 * MINUTE);
  assert.ok(budget.grant(0));
  assert.ok(budget.grant(1 * MINUTE));
  assert.equal(budget.grant(2 * MINUTE), false, "a third stop within 3 minutes gives up");
  assert.ok(budget.grant(3 * MINUTE), "the first restart left the window");
  assert.equal(budget.used(3 * MINUTE), 2);
  assert.equal(budget.grant(3 * MINUTE + 1), false);
});

void test("a manual restart resets the budget", () => {
  const budget = new RestartBudget(1, RESTART_WINDOW_MS);
  assert.ok(budget.grant(0));
  assert.equal(budget.grant(1), false);
  budget.reset();
  assert.equal(budget.used(2), 0);
  assert.ok(budget.grant(2));
});

void test("the give-up message names the count, the window, the reason and the way out", () => {
  const budget = new RestartBudget(4, 3 * MINUTE);
  const message = giveUpMessage(budget, "diffill: error: unrecognized arguments: --bogus");
  assert.match(message, /stopped 5 times within 3 minutes/);
  assert.match(message, /Its last error: diffill: error: unrecognized arguments: --bogus\./);
  assert.match(message, /"diffill: Restart Server"/);
  assert.match(giveUpMessage(budget, undefined), /It wrote no error output\./);
});

void test("the reason is the last non-blank stderr line of the current process", () => {
  const stderr = new LastLine();
  for (const line of ["usage: diffill lsp [-h]", "diffill lsp: error: bad flag ", "   "]) stderr.add(line);
  assert.equal(stderr.value, "diffill lsp: error: bad flag");
  stderr.clear();
  assert.equal(stderr.value, undefined);
});
