"""Errors the engine raises on purpose. Each message names the problem in one line;
the CLI and the language server print it as is, never a traceback."""


class DiffillError(Exception):
    """Base for every expected failure: bad input, bad files, bad settings."""


class ModelLoadError(DiffillError):
    """A model folder, checkpoint, graph or tokenizer is missing, corrupt or mismatched."""


class InputError(DiffillError):
    """A request the engine cannot serve: bad text, positions past the end, empty context."""


class Cancelled(DiffillError):
    """The caller's cancel check fired between denoising steps."""


class BackendError(DiffillError):
    """An online backend failed: refused, timed out, rejected the request or answered garbage.

    `auth` marks a rejected key (401/403): retrying cannot help until the settings change."""

    def __init__(self, message: str, auth: bool = False) -> None:
        super().__init__(message)
        self.auth = auth
