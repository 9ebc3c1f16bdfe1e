"""A tiny Llama-shaped GGUF with random weights and fill-in-the-middle special tokens, written
with the `gguf` package, for a real llama-server in the online tests.

The vocabulary is a SentencePiece one: control tokens (BOS, EOS and Qwen-style FIM
tokens), byte fallbacks for any text, and the 26 lowercase letters. Only the letters have
output weights, so greedy decoding writes letters and nothing else: never the end token and
never a line break, so a request runs to its token limit unless it is aborted, and
post-processing leaves its answer as it is. Its width makes each token cost enough that a
1024-token answer takes seconds on one thread, time for an abort to land mid-answer.
"""

from __future__ import annotations

import hashlib
import os
import string
import tempfile
from pathlib import Path

import numpy as np

CONTROL = ["<unk>", "<s>", "</s>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"]
LETTERS = list(string.ascii_lowercase)
WIDTH, LAYERS, HEADS, FFN, CONTEXT = 512, 8, 8, 1408, 4096


def vocabulary() -> tuple[list[str], list[int]]:
    import gguf

    tokens = CONTROL + [f"<0x{b:02X}>" for b in range(256)] + LETTERS
    types = [gguf.TokenType.UNKNOWN] + [gguf.TokenType.CONTROL] * (len(CONTROL) - 1)
    types += [gguf.TokenType.BYTE] * 256 + [gguf.TokenType.NORMAL] * len(LETTERS)
    return tokens, [int(t) for t in types]


def write_gguf(path: Path, seed: int = 0) -> None:
    import gguf

    tokens, types = vocabulary()
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(CONTEXT)
    w.add_embedding_length(WIDTH)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(WIDTH // HEADS)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_types(types)
    w.add_add_space_prefix(False)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    for key, token in zip(("FIM_PRE_ID", "FIM_SUF_ID", "FIM_MID_ID"), CONTROL[3:], strict=True):
        w.add_uint32(getattr(gguf.Keys.Tokenizer, key), tokens.index(token))

    def matrix(rows: int, cols: int) -> np.ndarray:  # numpy (out, in) is ggml's {in, out}
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float16)

    ones = np.ones(WIDTH, dtype=np.float32)
    w.add_tensor("token_embd.weight", matrix(len(tokens), WIDTH))
    output = matrix(len(tokens), WIDTH)
    output[: len(tokens) - len(LETTERS)] = 0  # only letters can win the argmax
    w.add_tensor("output.weight", output)
    w.add_tensor("output_norm.weight", ones)
    for i in range(LAYERS):
        for name, shape in (
            ("attn_q", (WIDTH, WIDTH)),
            ("attn_k", (WIDTH, WIDTH)),
            ("attn_v", (WIDTH, WIDTH)),
            ("attn_output", (WIDTH, WIDTH)),
            ("ffn_gate", (FFN, WIDTH)),
            ("ffn_up", (FFN, WIDTH)),
            ("ffn_down", (WIDTH, FFN)),
        ):
            w.add_tensor(f"blk.{i}.{name}.weight", matrix(*shape))
        w.add_tensor(f"blk.{i}.attn_norm.weight", ones)
        w.add_tensor(f"blk.{i}.ffn_norm.weight", ones)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def tiny_gguf() -> Path:
    """The GGUF, kept in the temp directory under a hash of this file (rebuilt on change)."""
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / "diffill-lsp-tests" / f"tiny-llama-{digest}.gguf"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}")
        write_gguf(partial)
        partial.rename(path)  # atomic: a half-written file is never served
    return path
