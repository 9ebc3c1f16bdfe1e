"""The model folder, watched while serving: new weights that land there are loaded beside the
old model and swapped in (lsp_server/server.py, `DiffillServer.start_loading`).

A copy takes a while and arrives in many writes, so a batch of changes is handed on only
after the folder has been quiet for SETTLE_MS (or after MAX_WAIT_MS of constant writing).
A load that still finds a half-written file fails, the old model keeps serving, and the
write that completes the copy starts the next load. Only files a model is made of count: an
edited model card is not new weights.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from lsp_server.watcher import batches

SETTLE_MS = 600  # no change for this long: the copy is done
MAX_WAIT_MS = 10_000  # a folder written to without a pause is looked at anyway
STOP_TIMEOUT_S = 2.0
MODEL_FILE_SUFFIXES = (".safetensors", ".onnx", ".json")  # weights, graphs, config, tokenizer


def is_model_file(change: object, path: str) -> bool:
    """A watchfiles filter: a change to one of the files a model folder is loaded from."""
    return path.endswith(MODEL_FILE_SUFFIXES)


def model_folder(path_setting: str) -> Path | None:
    """The folder the path setting names (the default model's when empty), if it is one."""
    from engine.loading import default_model_path

    folder = Path(path_setting).expanduser() if path_setting else default_model_path()
    return folder.resolve() if folder.is_dir() else None


class ModelFolderWatcher:
    """One thread calling `changed()` after each settled batch of changes in `folder`, until
    `stop`; `report(message)` when watching fails."""

    def __init__(
        self, folder: Path, changed: Callable[[], None], report: Callable[[str], None]
    ) -> None:
        self.folder = folder
        self._changed, self._report = changed, report
        self._stop = threading.Event()
        self.ready = threading.Event()  # the watch is set up: changes from now on are seen
        self._thread = threading.Thread(target=self._run, name="diffill-model-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(STOP_TIMEOUT_S)

    def _run(self) -> None:
        try:
            folder = [os.fspath(self.folder)]
            changes = batches(folder, self._stop, is_model_file, MAX_WAIT_MS, SETTLE_MS)
            for batch in changes:
                if batch and self.ready.is_set() and not self._stop.is_set():
                    self._changed()
                self.ready.set()  # the first wake-up, a timeout, comes once the watch is set
        except Exception as exc:  # the thread's boundary: say why watching stopped
            self._report(f"watching the model folder {self.folder} stopped: {exc}")
