// Real-editor test: the packaged extension in code-server (VS Code 1.139 in a browser), typed into
// by headless Chromium. It waits for the ghost text, accepts it with Tab, saves, and checks the
// saved file holds exactly the suggestion, then that VS Code ran the item's `diffill.accepted`
// command (the status notification counts one accept). Run by scripts/e2e.sh, which installs
// code-server, Chromium and playwright-core.
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
  // code-server is a "remote": machine-scoped settings (diffill.server.*) come from Machine/.
  fs.mkdirSync(path.join(dirs.user, "Machine"));
  fs.writeFileSync(path.join(dirs.user, "Machine", "settings.json"),
    JSON.stringify({ "diffill.server.command": opt.server }));
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

async function acceptedCount(page) {
  await page.keyboard.press("F1");
  await page.keyboard.type("diffill: Show Status");
  await page.waitForSelector(".quick-input-list .monaco-list-row", { timeout: 30_000 });
  await page.keyboard.press("Enter");
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
