"""`diffill train` with the tiny preset on real files: loss falls, resume continues, the
written folder loads, and an overfit model reproduces its middles through the sampler."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from diffill.cli import main
from engine.checkpoint import load_config, load_weights
from engine.config import model_preset, train_preset
from engine.model import DiffusionFIM
from engine.tokenizer import load_tokenizer
from engine.tokens import MASK_ID
from engine.training.checkpoint import OPTIMIZER_FILE, checkpoint_dir, save_model_folder
from engine.training.fim import IGNORE, PAD, TOKEN, Span, make_example
from engine.training.train import (
    add_noise,
    compute_loss,
    estimate_loss,
    role_weights,
    setup,
    train_step,
)

REPO = Path(__file__).resolve().parents[1]
TOKENIZER = REPO / "models" / "tokenizer.json"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest over a few real source files of this project, and beside it a 512-token
    tokenizer trained on them (a small vocabulary keeps the tiny model's steps cheap)."""
    tmp = tmp_path_factory.mktemp("corpus")
    for name in ("training/fim.py", "model.py", "training/tokenizer.py", "checkpoint.py"):
        shutil.copy(REPO / "engine" / name, tmp / Path(name).name)
    manifest = tmp / "corpus.json"
    assert main(["corpus", "--root", str(tmp), "--out", str(manifest)]) == 0
    tokenizer = ["--corpus", str(manifest), "--out", str(tmp / "tokenizer.json")]
    assert main(["tokenizer", *tokenizer, "--vocab-size", "512"]) == 0
    return manifest


def train(corpus: Path, run_dir: Path, *extra: str) -> list[dict]:
    tokenizer = corpus.parent / "tokenizer.json"
    argv = ["train", "--preset", "tiny", "--corpus", str(corpus), "--tokenizer", str(tokenizer)]
    assert main([*argv, "--run-dir", str(run_dir), *extra]) == 0
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_a_few_tiny_steps_decrease_the_loss(corpus: Path, tmp_path: Path) -> None:
    records = [r for r in train(corpus, tmp_path / "run", "--max-steps", "40") if "loss" in r]
    assert [r["step"] for r in records] == list(range(5, 45, 5))
    first, last = records[0], records[-1]
    assert last["loss"] < first["loss"] - 1.0
    assert last["diffusion"] < first["diffusion"] and last["next_token"] < first["next_token"]
    assert all(r["tokens_per_s"] > 0 and 0 <= r["data_fraction"] < 1 for r in records)


def test_resume_continues_from_the_saved_step(corpus: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(corpus, run_dir, "--max-steps", "10", "--save-every", "10")
    settings = train_preset("tiny", max_steps=20)
    tokenizer = checkpoint_dir(run_dir) / "tokenizer.json"
    model, optimizer, _, state = setup(settings, tokenizer, run_dir, resume=True)
    assert state["step"] == 10 and state["tokens"] == 10 * 4 * 64
    saved = load_weights(checkpoint_dir(run_dir))
    for name, tensor in model.state_dict().items():
        np.testing.assert_array_equal(tensor.numpy(), saved[name])
    moments = [s["exp_avg"] for s in optimizer.state.values()]
    assert len(moments) == len(list(model.parameters())) and all(m.abs().sum() > 0 for m in moments)
    records = train(corpus, run_dir, "--max-steps", "20", "--resume")
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == [5, 10, 15, 20]  # the resumed run logs on from 10, not from 0
    assert json.loads((checkpoint_dir(run_dir) / "train_state.json").read_text())["step"] == 20
    assert (checkpoint_dir(run_dir) / OPTIMIZER_FILE).exists()


def test_resume_without_a_checkpoint_is_a_clear_error(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["train", "--preset", "tiny", "--corpus", str(corpus), "--tokenizer", str(TOKENIZER)]
    assert main([*argv, "--run-dir", str(tmp_path / "empty"), "--resume"]) == 2
    assert "nothing to resume in" in capsys.readouterr().err


def test_written_folder_loads_with_engine_checkpoint(corpus: Path, tmp_path: Path) -> None:
    from engine.runtime_torch import load_model

    out = tmp_path / "model"
    train(corpus, tmp_path / "run", "--max-steps", "5", "--out", str(out))
    config = load_config(out)
    assert (config.d_model, config.canvas_size, config.vocab_size) == (64, 8, 512)
    assert load_tokenizer(out / "tokenizer.json").get_vocab_size() == 512
    model = load_model(out)
    assert sum(p.numel() for p in model.parameters()) == sum(
        v.size for v in load_weights(out).values()
    )


def test_noise_is_per_block_and_weights_follow_roles() -> None:
    generator = torch.Generator().manual_seed(0)
    ids = torch.arange(5, 5 + 2 * 4096).view(2, 4096)
    noisy, masked, t = add_noise(ids, canvas_size=8, t_min=0.02, generator=generator)
    blocks = t.view(2, -1, 8)
    assert (blocks == blocks[..., :1]).all() and t.min() >= 0.02
    assert (noisy[masked] == MASK_ID).all() and (noisy[~masked] == ids[~masked]).all()
    assert abs(masked.float().mean().item() - t.mean().item()) < 0.02
    roles = torch.tensor([[TOKEN, PAD, IGNORE]], dtype=torch.uint8)
    weights = role_weights(roles, train_preset("tiny", eom_pad_weight=0.25))
    assert weights.tolist() == [[1.0, 0.25, 0.0]]


SNIPPETS = [
    ("def area(width, height):\n    return ", "width * height", "\n\n\nprint(area(2, 3))\n"),
    ("import os\n\npath = os.path.join(", '"a", "b"', ")\nprint(path)\n"),
    (
        "class Stack:\n    def __init__(self):\n",
        "        self.items = []\n\n    def push(self, item):\n        self.items.append(item)",
        "\n\n    def pop(self):\n        return self.items.pop()\n",
    ),
]


def aligned_span(prefix: str, middle: str, suffix: str, encode, canvas_size: int) -> Span:
    """Lead the prefix with a comment whose length puts the middle on a block boundary, so
    the context the sampler builds equals the trained one token for token."""
    for width in range(1, 64):
        lead = "#" + "=" * width + "\n" + prefix
        suffix_ids, prefix_ids = encode([suffix, lead])
        if (len(suffix_ids) + len(prefix_ids) + 3) % canvas_size == 0:
            return Span(lead, middle, suffix, "test")
    raise AssertionError("no aligning comment found")


def test_overfit_tiny_model_reproduces_each_middle_through_the_diffusion_sampler(
    tmp_path: Path,
) -> None:
    """A 320-token tokenizer keeps the tiny model's vocabulary head cheap enough to overfit
    in seconds on two CPU cores."""
    from engine.completer import CompletionRequest
    from engine.loading import open_completer
    from engine.training.tokenizer import train_tokenizer

    texts = ["".join(snippet) for snippet in SNIPPETS] * 4
    tokenizer_path = tmp_path / "tokenizer.json"
    train_tokenizer(iter(texts), vocab_size=320).save(str(tokenizer_path))
    tokenizer = load_tokenizer(tokenizer_path)

    def encode(texts: list[str]) -> list[list[int]]:
        return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]

    settings = train_preset("tiny", max_steps=300, lr=1e-2, warmup_steps=10)
    spans = [aligned_span(*snippet, encode, 8) for snippet in SNIPPETS]
    examples = [make_example(span, encode, 96, 8, 48) for span in spans]
    assert all(e is not None and e.middle_start % 8 == 0 for e in examples)
    ids = torch.from_numpy(np.stack([e.ids for e in examples])).repeat(4, 1)
    roles = torch.from_numpy(np.stack([e.roles for e in examples])).repeat(4, 1)
    model, optimizer, _, _ = setup(settings, tokenizer_path, tmp_path / "run", resume=False)
    generator = torch.Generator().manual_seed(0)
    for step in range(settings.max_steps):
        lr = settings.lr * min(1.0, (step + 1) / settings.warmup_steps)
        train_step(model, optimizer, ids, roles, settings, generator, lr)
    save_model_folder(tmp_path / "model", model, tokenizer_path)
    completer = open_completer(tmp_path / "model", runtime="torch")
    for span in spans:
        request = CompletionRequest(prefix=span.prefix, suffix=span.suffix, mode="diffusion")
        assert completer.complete(request).text == span.middle


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seq-len", "60"], "seq_len 60 must be a multiple of canvas_size 8"),
        (["--max-middle-tokens", "1"], "no FIM example fits"),
        (["--t-min", "0"], "t_min must be in (0, 1)"),
    ],
)
def test_impossible_settings_are_one_line_errors(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str], message: str
) -> None:
    tokenizer = corpus.parent / "tokenizer.json"
    argv = ["train", "--preset", "tiny", "--corpus", str(corpus), "--tokenizer", str(tokenizer)]
    assert main([*argv, "--run-dir", str(tmp_path / "run"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_model_set_changes_the_preset_shape(corpus: Path, tmp_path: Path) -> None:
    train(corpus, tmp_path / "run", "--max-steps", "1", "--model-set", "n_layers=3")
    config = load_config(checkpoint_dir(tmp_path / "run"))
    assert config.n_layers == 3 and config.d_model == 64  # the rest stays the tiny preset


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("depth=3", "unknown model setting 'depth'"),
        ("n_layers=x", "'x' is not a valid int"),
        ("vocab_size=99", "vocab_size comes from the tokenizer"),
    ],
)
def test_bad_model_set_is_one_clear_error(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture, setting: str, named: str
) -> None:
    tokenizer = corpus.parent / "tokenizer.json"
    argv = ["train", "--preset", "tiny", "--corpus", str(corpus), "--tokenizer", str(tokenizer)]
    assert main([*argv, "--run-dir", str(tmp_path), "--model-set", setting]) == 2
    assert named in capsys.readouterr().err


def test_two_canvases_per_context_train_and_the_loss_falls(corpus: Path, tmp_path: Path) -> None:
    records = train(corpus, tmp_path / "run", "--max-steps", "40", "--canvases-per-context", "2")
    assert records[0]["settings"]["canvases_per_context"] == 2
    losses = [r for r in records if "loss" in r]
    first, tail = losses[0], losses[-3:]  # one 4 x 64-token batch is noisy: average the tail

    def late(key: str) -> float:
        return sum(r[key] for r in tail) / len(tail)

    assert late("loss") < first["loss"] - 1.0
    assert late("diffusion") < first["diffusion"] and late("next_token") < first["next_token"]
    assert tail[-1]["tokens"] == 40 * 4 * 64  # tokens count contexts, not copies


def test_diffusion_loss_is_the_mean_over_independently_noised_copies() -> None:
    """K=3 equals three separate K=1 passes on the same draws, averaged; the next-token loss
    comes from the shared clean copy alone."""
    torch.manual_seed(0)
    model = DiffusionFIM(model_preset("tiny", vocab_size=300))
    ids = torch.randint(5, 300, (2, 32))
    roles = torch.full(ids.shape, TOKEN, dtype=torch.uint8)
    roles[:, -6:] = PAD
    settings = train_preset("tiny", canvases_per_context=3)
    with torch.no_grad():
        _, parts = compute_loss(model, ids, roles, settings, torch.Generator().manual_seed(7))
        noisy, masked, t = add_noise(ids.repeat(1, 3), 8, 0.02, torch.Generator().manual_seed(7))
        weights = role_weights(roles, settings)
        per_copy = []
        copies = [slice(32 * k, 32 * (k + 1)) for k in range(3)]
        for part in copies:
            logits = model(ids, noisy[:, part])[:, 32:]  # this copy alone, a K=1 pass
            ce = F.cross_entropy(logits.transpose(1, 2), ids, reduction="none")
            per_copy.append((ce * masked[:, part] * weights / t[:, part]).sum() / weights.sum())
        single = dataclasses.replace(settings, canvases_per_context=1)
        _, alone = compute_loss(model, ids, roles, single, torch.Generator().manual_seed(7))
    assert not torch.equal(t[:, copies[0]], t[:, copies[1]])  # own rates and masks per copy
    assert not torch.equal(masked[:, copies[0]], masked[:, copies[1]])
    torch.testing.assert_close(parts["diffusion"], torch.stack(per_copy).mean())
    torch.testing.assert_close(parts["next_token"], alone["next_token"])


def test_canvases_per_context_below_one_is_a_one_line_error(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    tokenizer = corpus.parent / "tokenizer.json"
    argv = ["train", "--preset", "tiny", "--corpus", str(corpus), "--tokenizer", str(tokenizer)]
    assert main([*argv, "--run-dir", str(tmp_path), "--canvases-per-context", "0"]) == 2
    assert "canvases_per_context must be at least 1, got 0" in capsys.readouterr().err


def test_the_cpu_head_on_scored_positions_only_gives_the_dense_loss_and_gradients() -> None:
    """The head runs only where a loss is taken on CPU; loss and every gradient must equal
    the dense head's, filler and <eom> padding included."""
    torch.manual_seed(0)
    model = DiffusionFIM(model_preset("tiny", vocab_size=300))
    ids = torch.randint(5, 300, (3, 32))
    roles = torch.full(ids.shape, TOKEN, dtype=torch.uint8)
    roles[:, -10:-4], roles[:, -4:] = PAD, IGNORE
    settings = train_preset("tiny", canvases_per_context=2, eom_pad_weight=0.3)
    loss, parts = compute_loss(model, ids, roles, settings, torch.Generator().manual_seed(5))
    loss.backward()
    sparse_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    noisy, masked, t = add_noise(ids.repeat(1, 2), 8, 0.02, torch.Generator().manual_seed(5))
    weights = role_weights(roles, settings)
    logits = model(ids, noisy)  # (N, 3S, V): the dense head everywhere
    ce = F.cross_entropy(logits[:, 32:].transpose(1, 2), ids.repeat(1, 2), reduction="none")
    copy_weights = weights.repeat(1, 2)
    diffusion = (ce * masked * copy_weights / t).sum() / copy_weights.sum()
    ce_next = F.cross_entropy(logits[:, :31].transpose(1, 2), ids[:, 1:], reduction="none")
    next_token = (ce_next * weights[:, 1:]).sum() / weights[:, 1:].sum()
    dense = diffusion + settings.ar_weight * next_token
    dense.backward()
    torch.testing.assert_close(loss, dense)
    torch.testing.assert_close(parts["diffusion"], diffusion.detach())
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(sparse_grads[name], parameter.grad, rtol=1e-4, atol=1e-6)


def test_heldout_text_parts_do_not_depend_on_the_eom_padding_weight() -> None:
    """A/B runs of eom_pad_weight (or ar_weight) compare on the text-only parts; the loss as
    trained moves with the weight, the text parts must not."""
    torch.manual_seed(0)
    model = DiffusionFIM(model_preset("tiny", vocab_size=300))
    ids = torch.randint(5, 300, (2, 32))
    roles = torch.full(ids.shape, TOKEN, dtype=torch.uint8)
    roles[:, -12:] = PAD
    batches = [(ids, roles, None)] * 2
    light, heavy = (
        estimate_loss(model, batches, train_preset("tiny", eom_pad_weight=w), "cpu")
        for w in (0.1, 1.0)
    )
    assert light["loss"] != pytest.approx(heavy["loss"])
    assert light["diffusion_text"] == pytest.approx(heavy["diffusion_text"])
    assert light["next_token_text"] == pytest.approx(heavy["next_token_text"])


def test_heldout_losses_take_one_forward_pass_a_batch() -> None:
    """The loss as trained and its text-only parts come from the same pass, and the text parts
    equal a pass that weights <eom> padding 0 on the same noise."""
    torch.manual_seed(0)
    model = DiffusionFIM(model_preset("tiny", vocab_size=300))
    ids = torch.randint(5, 300, (2, 32))
    roles = torch.full(ids.shape, TOKEN, dtype=torch.uint8)
    roles[:, -12:] = PAD
    settings = train_preset("tiny", eom_pad_weight=0.3, eval_batches=1)
    passes = []
    hook = model.register_forward_hook(lambda *_: passes.append(1))
    three = dataclasses.replace(settings, eval_batches=3)
    estimate_loss(model, [(ids, roles, None)] * 3, three, "cpu")
    hook.remove()
    heldout = estimate_loss(model, [(ids, roles, None)], settings, "cpu")
    text_only = dataclasses.replace(settings, eom_pad_weight=0.0)
    with torch.no_grad():
        _, parts = compute_loss(model, ids, roles, text_only, torch.Generator().manual_seed(1234))
    assert len(passes) == 3
    assert heldout["diffusion_text"] == pytest.approx(parts["diffusion"].item(), rel=1e-5)
    assert heldout["next_token_text"] == pytest.approx(parts["next_token"].item(), rel=1e-5)
