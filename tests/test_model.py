"""The attention rule and the K/V cache, checked on a random tiny model."""

import pytest
import torch

from engine.config import model_preset
from engine.model import DiffusionFIM
from engine.tokens import MASK_ID


@pytest.fixture(scope="module")
def model() -> DiffusionFIM:
    torch.manual_seed(0)
    return DiffusionFIM(model_preset("tiny", vocab_size=300)).eval()


def test_context_outputs_ignore_canvas_and_canvas_outputs_see_it(model: DiffusionFIM) -> None:
    c = model.config.canvas_size
    clean = torch.randint(5, 300, (1, 4 * c))
    noisy = clean.clone()
    noisy[:, 2 * c : 3 * c] = MASK_ID
    changed = noisy.clone()
    changed[0, 2 * c] = 7
    with torch.no_grad():
        before, after = model(clean, noisy), model(clean, changed)
    s = clean.shape[1]
    torch.testing.assert_close(before[:, :s], after[:, :s])  # clean copy: untouched
    torch.testing.assert_close(before[:, s : s + 2 * c], after[:, s : s + 2 * c])  # earlier blocks
    torch.testing.assert_close(before[:, s + 3 * c :], after[:, s + 3 * c :])  # later blocks
    assert not torch.allclose(
        before[:, s + 2 * c + 1], after[:, s + 2 * c + 1]
    )  # own block sees it


def test_clean_copy_is_causal(model: DiffusionFIM) -> None:
    c = model.config.canvas_size
    ids = torch.randint(5, 300, (1, 2 * c))
    later = ids.clone()
    later[0, -1] = 9
    with torch.no_grad():
        a, b = model(ids, ids), model(later, later)
    torch.testing.assert_close(a[:, : 2 * c - 1], b[:, : 2 * c - 1])


def test_cached_canvas_logits_equal_full_recompute(model: DiffusionFIM) -> None:
    c = model.config.canvas_size
    ctx = torch.randint(5, 300, (1, 3 * c))
    canvas = torch.full((1, c), MASK_ID)
    canvas[0, :3] = torch.tensor([11, 12, 13])
    with torch.no_grad():
        full = model(torch.cat((ctx, canvas), 1), torch.cat((ctx, canvas), 1))[:, -c:]
        kv = model.encode_context(ctx[:, :10], model.empty_cache())
        kv = model.encode_context(ctx[:, 10:], kv)  # incremental reuse of a cached prefix
        cached = model.denoise(canvas, kv)
    torch.testing.assert_close(cached, full, atol=1e-4, rtol=1e-4)
