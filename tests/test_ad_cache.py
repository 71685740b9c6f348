"""The AD KV-cache gives what training gave the model: cached generation equals a plain forward over the
same context (the transitions from the cache's anchor on) within 1e-5 in action probability, for every
position and state encoding, at steps far past the context length."""

import pytest
import torch

from rlcli.nets.ad_transformer import ADModelConfig, ADTransformer

torch.set_num_threads(1)

ENCODINGS = [("time_step", "cell", False), ("time_step", "row_col", True), ("time_step", "row_col_ordinal", True),
             ("learned", "cell", False), ("learned", "row_col", False), ("learned", "row_col_ordinal", True)]


def _model(positions: str, state_encoding: str, next_state: bool, context_len: int = 5) -> ADTransformer:
    torch.manual_seed(0)
    cfg = ADModelConfig(81, 5, 20, context_len=context_len, embed_dim=32, num_layers=3, num_heads=4, ff_dim=64,
                        positions=positions, state_encoding=state_encoding, grid_size=9, next_state=next_state)
    model = ADTransformer(cfg).eval()
    with torch.no_grad():  # larger weights than the init's 0.02: a wrong context shows in the probabilities
        for p in model.parameters():
            p.mul_(3.0)
    return model


def _stream(b: int, t: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 81, (b, t), generator=g), torch.randint(0, 5, (b, t), generator=g),
            torch.randint(0, 2, (b, t), generator=g), torch.randint(0, 20, (b, t), generator=g),
            torch.randint(0, 81, (b, t), generator=g))


@torch.no_grad()
@pytest.mark.parametrize(("positions", "state_encoding", "next_state"), ENCODINGS)
@pytest.mark.parametrize("keep", [None, 1, 3])
def test_cached_generation_equals_a_forward_over_its_context(positions, state_encoding, next_state, keep):
    model = _model(positions, state_encoding, next_state, context_len=6)
    k = model.cfg.context_len
    s, a, r, ts, ns = _stream(3, 8 * k)  # 8 contexts long: many re-anchorings
    cache = model.new_cache(keep)
    starts = set()
    differs_from_last_window = False
    for t in range(s.shape[1]):
        cached = torch.softmax(model.step_state(s[:, t], ts[:, t], cache), -1)
        lo = cache.start
        assert cache.keep + 1 <= t + 1 - lo <= k or t < k  # the context: keep+1 .. context_len transitions
        window = slice(lo, t + 1)
        plain = torch.softmax(model(s[:, window], a[:, window], r[:, window], ts[:, window], ns[:, window])[:, -1], -1)
        torch.testing.assert_close(cached, plain, atol=1e-5, rtol=0)
        if t + 1 - lo < k:  # the last context_len transitions are another context: the logits tell them apart
            last = slice(max(0, t + 1 - k), t + 1)
            other = torch.softmax(model(s[:, last], a[:, last], r[:, last], ts[:, last], ns[:, last])[:, -1], -1)
            differs_from_last_window |= not torch.allclose(other, cached, atol=1e-2)
        model.step_outcome(a[:, t], r[:, t], ts[:, t], cache, ns[:, t] if next_state else None)
        starts.add(lo)
    assert cache.seen == s.shape[1] and len(starts) >= 7  # it re-anchored all along the stream
    assert differs_from_last_window or cache.keep == k - 1  # keep = k - 1: the context is the last window


@torch.no_grad()
def test_the_cache_refuses_steps_out_of_order():
    model = _model("time_step", "cell", True)
    cache = model.new_cache()
    zero = torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match="state first"):
        model.step_outcome(zero, zero, zero, cache, zero)
    model.step_state(zero, zero, cache)
    with pytest.raises(ValueError, match="next_state"):
        model.step_outcome(zero, zero, zero, cache)
    with pytest.raises(ValueError, match="action and reward first"):
        model.step_state(zero, zero, cache)
    with pytest.raises(ValueError, match="keep"):
        model.new_cache(keep=model.cfg.context_len)
