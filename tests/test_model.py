"""The attention rule and the K/V cache, checked on a random tiny model."""

import pytest
import torch

from engine.config import model_preset
from engine.model import DiffusionFIM, block_diffusion_mask
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


def test_noised_copies_never_see_each_other(model: DiffusionFIM) -> None:
    """Each copy of a K=2 pass is the K=1 pass on its own ids, whatever the other copy holds."""
    c = model.config.canvas_size
    clean = torch.randint(5, 300, (2, 3 * c))
    first, second = clean.clone(), clean.clone()
    first[:, ::2], second[:, 1::3] = MASK_ID, MASK_ID
    changed = torch.randint(5, 300, first.shape)
    s = clean.shape[1]
    with torch.no_grad():
        both = model(clean, torch.cat((first, second), 1))  # (N, 3S, V)
        other = model(clean, torch.cat((changed, second), 1))
        alone = [model(clean, copy) for copy in (first, second)]  # (N, 2S, V) each
    assert both.shape == (2, 3 * s, 300)
    torch.testing.assert_close(both[:, :s], alone[0][:, :s], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both[:, s : 2 * s], alone[0][:, s:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both[:, 2 * s :], alone[1][:, s:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(other[:, 2 * s :], both[:, 2 * s :])  # copy 2 ignores copy 1
    torch.testing.assert_close(other[:, :s], both[:, :s])  # and so does the clean copy
    assert not torch.allclose(other[:, s : 2 * s], both[:, s : 2 * s])  # copy 1 sees itself


def test_block_diffusion_mask_for_three_copies() -> None:
    """S=8, C=4, K=3: clean causal; copy k sees clean blocks before its own and its own block."""
    s, c, k = 8, 4, 3
    mask = block_diffusion_mask(s, c, k)
    assert mask.shape == ((1 + k) * s, (1 + k) * s) and mask.dtype == torch.bool
    for query in range((1 + k) * s):
        for key in range((1 + k) * s):
            (q_copy, q_pos), (k_copy, k_pos) = divmod(query, s), divmod(key, s)
            if q_copy == 0:
                expected = k_copy == 0 and k_pos <= q_pos
            elif k_copy == 0:
                expected = k_pos < q_pos - q_pos % c
            else:
                expected = k_copy == q_copy and k_pos // c == q_pos // c
            assert mask[query, key].item() == expected, (query, key)
    for copy in range(1, 1 + k):  # [clean; copy k] of the K=3 mask is the K=1 mask
        rows = torch.cat((torch.arange(s), torch.arange(copy * s, (copy + 1) * s)))
        assert torch.equal(mask[rows][:, rows], block_diffusion_mask(s, c, 1))


@pytest.mark.parametrize("noisy_len", [0, 12, 40])
def test_forward_refuses_noised_ids_that_are_not_whole_copies(
    model: DiffusionFIM, noisy_len: int
) -> None:
    clean = torch.randint(5, 300, (1, 16))
    with pytest.raises(ValueError, match=f"noised length {noisy_len} is not a whole number"):
        model(clean, torch.randint(5, 300, (1, noisy_len)))
