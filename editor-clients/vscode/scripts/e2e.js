// Real-editor test: the packaged extension in code-server (VS Code 1.139 in a browser), typed into
// by headless Chromium. It waits for the ghost text, accepts it with Tab, saves, and checks the
// saved file holds exactly the suggestion, then that VS Code ran the item's `diffill.accepted`
// command (the status notification counts one accept). Then recovery: it kills the server
// process (SIGKILL) and checks that the extension starts a new one that answers with ghost text;
// and it switches to a server command that exits at start-up and checks that the extension
// starts it 1 + MAX_RESTARTS times, shows one error with the server's own error line, and that
// "diffill: Restart Server" starts over with the whole budget. Run by scripts/e2e.sh, which
// installs code-server, Chromium and playwright-core.
"use strict";
const { spawn, spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const http = require("node:http");
const { chromium } = require("playwright-core");

const SAMPLE = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    ";
const TYPED = "ret";
const TIMEOUT = Number(process.env.DIFFILL_E2E_TIMEOUT_MS ?? 180_000); // the first completion waits for the server to load the model
const MAX_RESTARTS = 4; // src/restarts.ts
const BAD_OPTION = "--no-such-option"; // makes `diffill lsp` exit with code 2 at start-up

function args() {
  const out = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, "")] = argv[i + 1];
  for (const key of ["code-server", "vsix", "server", "chromium", "screenshot"]) {
    if (!out[key]) throw new Error(`missing --${key}`);
  }
  return out;
}

const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);

function prepare(opt) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "diffill-e2e-"));
  const dirs = { root, user: path.join(root, "user"), ext: path.join(root, "ext"), ws: path.join(root, "ws") };
  fs.mkdirSync(path.join(dirs.user, "User"), { recursive: true });
  fs.mkdirSync(dirs.ws);
  fs.writeFileSync(path.join(dirs.ws, "sample.py"), SAMPLE);
  // The server command is a wrapper that logs each start, so the test can count them.
  dirs.starts = path.join(root, "starts.log");
  dirs.wrapper = path.join(root, "diffill-server");
  fs.writeFileSync(dirs.wrapper, `#!/bin/sh\necho "$$" >> '${dirs.starts}'\nexec '${opt.server}' "$@"\n`,
    { mode: 0o755 });
  fs.mkdirSync(path.join(dirs.user, "Machine"));
  serverSettings(dirs, ["lsp"]);
  fs.writeFileSync(path.join(dirs.user, "User", "settings.json"), JSON.stringify({
    "workbench.startupEditor": "none",
    "security.workspace.trust.enabled": false,
    "telemetry.telemetryLevel": "off",
    "update.mode": "none",
    "extensions.autoUpdate": false,
    "editor.inlineSuggest.enabled": true,
    "editor.wordBasedSuggestions": "off",
    "chat.disableAIFeatures": true,
    "workbench.secondarySideBar.defaultVisibility": "hidden",
  }, null, 2));
  const install = spawnSync(opt["code-server"], ["--user-data-dir", dirs.user,
    "--extensions-dir", dirs.ext, "--install-extension", opt.vsix], { encoding: "utf8" });
  if (install.status !== 0) throw new Error(`install-extension failed: ${install.stderr}`);
  log(`extension installed: ${install.stdout.trim().split("\n").pop()}`);
  return dirs;
}

// code-server is a "remote": machine-scoped settings (diffill.server.*) come from Machine/.
function serverSettings(dirs, args) {
  fs.writeFileSync(path.join(dirs.user, "Machine", "settings.json"),
    JSON.stringify({ "diffill.server.command": dirs.wrapper, "diffill.server.args": args }));
}

function starts(dirs) {
  return fs.existsSync(dirs.starts) ? fs.readFileSync(dirs.starts, "utf8").trim().split("\n").length : 0;
}

// The diffill servers under code-server: descendants of its process running the wrapper.
function serverPids(rootPid) {
  const parent = new Map();
  const argv = new Map();
  for (const name of fs.readdirSync("/proc").filter((entry) => /^\d+$/.test(entry))) {
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, "utf8");
      parent.set(Number(name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
      argv.set(Number(name), fs.readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0"));
    } catch {
      // the process ended while it was read
    }
  }
  const under = (pid) => pid > 1 && (parent.get(pid) === rootPid || under(parent.get(pid)));
  return [...argv].filter(([pid, args]) => args.includes("lsp") && args.some((a) => a.endsWith("diffill"))
    && under(pid)).map(([pid]) => pid);
}

async function until(what, check, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function listening(port) {
  return new Promise((resolve) => {
    http.get({ host: "127.0.0.1", port, path: "/healthz" }, (res) => resolve(res.statusCode < 500))
      .on("error", () => resolve(false));
  });
}

async function startCodeServer(opt, dirs) {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const proc = spawn(opt["code-server"], ["--bind-addr", `127.0.0.1:${port}`, "--auth", "none",
    "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust",
    "--user-data-dir", dirs.user, "--extensions-dir", dirs.ext, dirs.ws], { stdio: "ignore" });
  for (let i = 0; i < 300 && !(await listening(port)); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  log(`code-server on port ${port}`);
  return { proc, url: `http://127.0.0.1:${port}/?folder=${encodeURIComponent(dirs.ws)}` };
}

async function openSample(page) {
  await page.waitForSelector(".monaco-workbench", { timeout: 60_000 });
  await page.keyboard.press("Control+P");
  await page.keyboard.type("sample.py");
  await page.waitForSelector(".quick-input-list .monaco-list-row", { timeout: 30_000 });
  await page.keyboard.press("Enter");
  await page.waitForSelector(".editor-instance .view-lines", { timeout: 30_000 });
  await page.click(".editor-instance .view-lines");
  await page.keyboard.press("Control+End");
  log("editor open");
  const item = await page.waitForSelector('[aria-label="diffill ready"], [aria-label^="diffill failed"]',
    { timeout: TIMEOUT });
  const state = await item.getAttribute("aria-label");
  if (state !== "diffill ready") throw new Error(`the status bar says: ${state}`);
  log("server ready (status bar)");
}

// The ghost text as drawn: the inline part after the cursor, then the lines below it (their
// token spans share one parent element per line). Polled until two reads agree.
async function ghostText(page) {
  await page.waitForSelector(".ghost-text-decoration, .ghost-text", { timeout: TIMEOUT });
  const read = () => page.evaluate(() => {
    const inline = [...document.querySelectorAll(".ghost-text-decoration")].map((e) => e.textContent);
    const lines = new Map();
    for (const span of document.querySelectorAll(".ghost-text")) {
      lines.set(span.parentElement, (lines.get(span.parentElement) ?? "") + span.textContent);
    }
    return [inline.join(""), ...lines.values()].join("\n").replace(/\u00a0/g, " ");
  });
  let previous = await read();
  for (;;) {
    await page.waitForTimeout(200);
    const now = await read();
    if (now === previous) return now;
    previous = now;
  }
}

async function savedText(file, longerThan) {
  for (let i = 0; i < 100; i++) {
    const now = fs.readFileSync(file, "utf8");
    if (now.length > longerThan) return now;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("the completed file was not saved");
}

async function command(page, title) {
  await page.keyboard.press("F1");
  await page.keyboard.type(title);
  await page.waitForSelector(".quick-input-list .monaco-list-row", { timeout: 30_000 });
  await page.keyboard.press("Enter");
}

async function acceptedCount(page) {
  await command(page, "diffill: Show Status");
  const toast = await page.waitForSelector(".notification-toast >> text=/accepted \\d+/", { timeout: 30_000 });
  const text = await toast.textContent();
  log(`status notification: ${text}`);
  return Number(/accepted (\d+)/.exec(text)[1]);
}

async function run(opt, page, dirs) {
  await openSample(page);
  await page.keyboard.type(TYPED, { delay: 50 });
  const ghost = await ghostText(page);
  log(`ghost text: ${JSON.stringify(ghost)}`);
  fs.mkdirSync(path.dirname(opt.screenshot), { recursive: true });
  await page.screenshot({ path: opt.screenshot });
  await page.keyboard.press("Tab");
  await page.waitForSelector(".ghost-text-decoration, .ghost-text", { state: "detached" });
  await page.keyboard.press("Control+S");
  const file = path.join(dirs.ws, "sample.py");
  const saved = await savedText(file, (SAMPLE + TYPED).length);
  log(`saved: ${JSON.stringify(saved)}`);
  const added = saved.slice((SAMPLE + TYPED).length);
  if (!saved.startsWith(SAMPLE + TYPED) || added !== ghost) {
    throw new Error(`saved text ${JSON.stringify(added)} is not the ghost text ${JSON.stringify(ghost)}`);
  }
  const accepted = await acceptedCount(page);
  if (accepted < 1) throw new Error(`diffill.accepted was not run (accepted ${accepted})`);
}

// Kill the server: the extension starts a new process, which loads the model and answers.
async function recoversFromKill(page, codeServerPid) {
  const [killed, ...others] = serverPids(codeServerPid);
  if (killed === undefined || others.length > 0) throw new Error(`servers found: ${[killed, ...others]}`);
  process.kill(killed, "SIGKILL");
  const [restarted] = await until("a new server process",
    () => serverPids(codeServerPid).filter((pid) => pid !== killed).length === 1 && serverPids(codeServerPid));
  log(`killed server ${killed}; the extension started ${restarted}`);
  await page.waitForSelector('[aria-label="diffill ready, restarted 1"]', { timeout: TIMEOUT });
  await page.keyboard.press("Control+End");
  await page.keyboard.press("Enter");
  await page.keyboard.type("def mul(a, b):\n    ret", { delay: 50 });
  const ghost = await ghostText(page); // only a live server answers: the new one
  log(`ghost text from the restarted server: ${JSON.stringify(ghost)}`);
  if (!ghost.trim()) throw new Error("the restarted server drew no ghost text");
}

const GIVE_UP = "is not restarted again";

// The messages in the notification center (toasts can be hidden while many arrive).
async function notifications(page) {
  await command(page, "Notifications: Show Notifications");
  const center = ".notifications-center .notification-list-item-message";
  await page.waitForSelector(".notifications-center.visible", { timeout: 30_000 });
  return page.locator(center).allTextContents();
}

// A server that exits at start-up: 1 + MAX_RESTARTS starts, then one message naming its error.
async function boundsRestarts(page, dirs) {
  await command(page, "Notifications: Clear All Notifications");
  const before = starts(dirs);
  serverSettings(dirs, ["lsp", BAD_OPTION]); // a settings change starts the server anew
  await page.waitForSelector(`[aria-label^="diffill failed: diffill: the server stopped"]`, { timeout: TIMEOUT });
  const tried = starts(dirs) - before;
  if (tried !== 1 + MAX_RESTARTS) throw new Error(`started ${tried} times, not ${1 + MAX_RESTARTS}`);
  const shown = await notifications(page);
  log(`notifications after ${tried} starts: ${JSON.stringify(shown)}`);
  if (shown.length !== 1 || !shown[0].includes(GIVE_UP)) throw new Error("not one give-up message");
  if (!shown[0].includes(`unrecognized arguments: ${BAD_OPTION}`)) throw new Error("no reason in the message");

  // Its button runs "diffill: Restart Server": the whole budget again, so as many starts again.
  await page.click(".notifications-center .notification-list-item .monaco-button >> text=Restart Server");
  await until("the second give-up message", async () => (await notifications(page)).some((m) => m.includes(GIVE_UP)));
  const again = starts(dirs) - before - tried;
  if (again !== 1 + MAX_RESTARTS) throw new Error(`"Restart Server" started it ${again} times`);
  log(`"Restart Server" started it ${again} more times, then gave up again`);
}

async function main() {
  const opt = args();
  const dirs = prepare(opt);
  const server = await startCodeServer(opt, dirs);
  const browser = await chromium.launch({ executablePath: opt.chromium, headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 600 } });
    await page.goto(server.url);
    try {
      await run(opt, page, dirs);
      await recoversFromKill(page, server.proc.pid);
      await boundsRestarts(page, dirs);
    } catch (error) {
      const shot = path.join(os.tmpdir(), "diffill-e2e-failure.png");
      await page.screenshot({ path: shot });
      log(`failure screenshot: ${shot}; logs: ${path.join(dirs.user, "logs")}`);
      throw error;
    }
    log("PASS");
  } finally {
    await browser.close();
    server.proc.kill();
  }
  fs.rmSync(dirs.root, { recursive: true, force: true }); // kept on failure, for its logs
}

main().catch((error) => {
  console.error(`FAIL: ${error.stack || error}`);
  process.exit(1);
});
