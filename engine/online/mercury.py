"""`mercury`: Inception's OpenAI-compatible fill-in-the-middle endpoint for Mercury Coder,
`POST /v1/fim/completions` with `prompt` and `suffix`, a bearer key
(https://docs.inceptionlabs.ai). Same body and answer as `openai-fim`, another path."""

from __future__ import annotations

from engine.online import openai_fim
from engine.online.dialect import Dialect

DIALECT = Dialect(
    "/v1/fim/completions",
    "https://api.inceptionlabs.ai",
    openai_fim.body,
    openai_fim.texts,
    default_model="mercury-coder",
)
