"""Online backends: the gap filled by a fill-in-the-middle HTTP endpoint instead of the
embedded model (a skilled model under vLLM, llama.cpp, Ollama, or Inception's Mercury API).

Each kind is one module that names its path and default address, the JSON body it sends and
where the text is in the answer (a `Dialect`). `OnlineCompleter` (engine/online/client.py)
does the HTTP for all of them. This package imports no network client, so the settings can
list the kinds without loading one.
"""

from __future__ import annotations

from engine.online import llama_cpp, mercury, ollama, openai_fim
from engine.online.dialect import Dialect

DIALECTS: dict[str, Dialect] = {
    "openai-fim": openai_fim.DIALECT,
    "mercury": mercury.DIALECT,
    "llama.cpp": llama_cpp.DIALECT,
    "ollama": ollama.DIALECT,
}
