"""The one interface between the language server and any model backend.

The server builds a `CompletionRequest`, calls `Completer.complete`, and gets text back
with timings. Whether the tokens come from the embedded diffusion model under ONNX Runtime
or torch, from an open-weight checkpoint, or from a remote endpoint is invisible above this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

# Denoising steps per canvas block that serving, `diffill complete` and `diffill eval` use
# unless told otherwise (0 there, None in a request: one step per canvas position). 4 of 16
# was chosen by `diffill eval --steps 4` against 16: the same edit similarity (0.072 against
# 0.071 on 120 held-out examples) in a quarter of the steps; revisit it with a skilled model.
DEFAULT_STEPS = 4

Mode = Literal["diffusion", "ar"]
Length = Literal["blocks", "predicted", "full"]  # how the gap ends (engine/sampler.py)


def never_cancelled() -> bool:
    return False


@dataclass(frozen=True)
class CompletionRequest:
    prefix: str
    suffix: str
    max_tokens: int = 64
    mode: Mode = "diffusion"
    max_steps: int | None = None  # per canvas block; None means the canvas size
    threshold: float = 0.9  # diffusion: unmask every position at least this confident
    num_candidates: int = 1
    temperature: float = 0.0  # 0 is greedy; alternatives beyond the first always sample
    seed: int = 0
    # A one-line request: the first line break ends the gap, so no canvas is denoised past it.
    stop_at_newline: bool = False
    length: Length = "blocks"
    # A time limit on denoising (llama.cpp's t_max_predict_ms), counted from its first step;
    # 0: none. When it passes, the answer is the text committed by then (`Timings.out_of_time`).
    max_predict_ms: float = 0.0
    # Other files' chunks as (path, text). `prefix` already starts with them rendered
    # (`extra_chars` characters); a backend with a field of its own for them (llama.cpp's
    # input_extra) sends them there and the rest of the prefix as the prefix.
    extra: tuple[tuple[str, str], ...] = ()
    extra_chars: int = 0


@dataclass(frozen=True)
class Candidate:
    text: str
    tokens: int  # generated tokens, end-of-middle excluded
    steps: int  # denoising steps (model calls on the canvas) it took


@dataclass(frozen=True)
class Timings:
    total_ms: float
    encode_ms: float  # context encoding, after any cache reuse
    denoise_ms: float  # canvas steps
    context_tokens: int
    reused_tokens: int = 0  # context tokens whose K/V came from the cache
    out_of_time: bool = False  # max_predict_ms passed: the text is what was committed by then


@dataclass(frozen=True)
class CompletionResult:
    candidates: tuple[Candidate, ...]
    timings: Timings
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.candidates[0].text if self.candidates else ""


class Completer(Protocol):
    def complete(
        self, request: CompletionRequest, is_cancelled: Callable[[], bool] = never_cancelled
    ) -> CompletionResult:
        """Fill the gap between request.prefix and request.suffix.

        Raises engine.errors.Cancelled when is_cancelled() turns true between steps.
        """
        ...

    def prepare(self, prefix: str, suffix: str) -> None:
        """Encode this context ahead of a request (on didChange) so only canvas steps remain."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens `text` costs in this model's context budget."""
        ...

    def describe(self) -> dict[str, object]:
        """Model name, runtime and sizes, for `diffill/status` and logs."""
        ...


@runtime_checkable
class AsyncCompleter(Protocol):
    """A backend that waits on the network instead of computing (engine/online/): the server
    awaits it on its event loop, so cancelling the request's task aborts the HTTP request."""

    async def complete_async(self, request: CompletionRequest) -> CompletionResult:
        """Fill the gap; raises engine.errors.BackendError with a one-line reason on failure."""
        ...

    def prepare(self, prefix: str, suffix: str) -> None: ...

    def count_tokens(self, text: str) -> int: ...

    def describe(self) -> dict[str, object]: ...

    async def aclose(self) -> None:
        """Close the connections it keeps open."""
        ...
