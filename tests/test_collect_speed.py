"""The fast A2C collection path equals the step-by-step definitions it replaced.

The collection books episodes and stored streams on whole (T, N, B) rollouts after the step loop, and the
source agents evaluate every state at once; these tests hold each against a plain per-step reference.
"""

import math

import pytest
import torch

from rlcli.ad.collect import Collection, keep_episode
from rlcli.ad.source_a2c import BatchedA2C
from rlcli.config.ad import A2CConfig
from rlcli.config.presets import resolve_config

torch.set_num_threads(1)


def _collection(tmp_path, extra=()):
    cfg = resolve_config("ad", preset="darkroom-ad-small", overrides=[
        "collect.max_train_tasks=3", "collect.num_test_tasks=2", "collect.num_validation_tasks=1",
        "collect.histories_per_task=2", "collect.streams_per_agent=4", "collect.episode_stride=3", *extra])
    return Collection(cfg, torch.device("cpu"), tmp_path / "h.h5", cfg.to_toml())


def _reference_step(c, state, rew, done, time_step, cc):
    """One step of the per-step bookkeeping (the loop the collection used to run): mutates ``state``."""
    idx = c.stream_index
    state["ep_return"] += rew
    state["curve_sum"] += (state["ep_return"] * done).sum(1)
    state["curve_count"] += done.sum(1)
    shown = done & c.train_agent[:, None]
    returns, lengths = state["ep_return"][shown], time_step[shown] + 1
    state["ep_return"] *= ~done
    s_done, s_rew = done.reshape(-1)[idx], rew.reshape(-1)[idx]
    keep = state["keep"].clone()
    state["found"] = torch.where((s_rew > 0) & (state["found"] < 0), state["episode"], state["found"])
    state["episode"] += s_done.long()
    state["keep"] = torch.where(s_done, keep_episode(state["episode"], state["found"], cc.episode_stride,
                                                     cc.dense_until_success, cc.skip_after_success), state["keep"])
    return returns, lengths, keep


@pytest.mark.parametrize("extra", [[], ["collect.dense_until_success=true", "collect.skip_after_success=2"]])
@pytest.mark.parametrize("reward_ends_episode", [True, False])
def test_rollout_bookkeeping_equals_the_step_loop(tmp_path, extra, reward_ends_episode):
    c = _collection(tmp_path, extra)
    cc, n, b, steps = c.cfg.collect, c.n_agents, c.n_envs, 7
    g = torch.Generator().manual_seed(1)
    state = {"ep_return": c.ep_return.clone(), "curve_sum": c.curve_sum.clone(),
             "curve_count": c.curve_count.clone(), "episode": c.stream_episode.clone(),
             "found": c.stream_found_at.clone(), "keep": c.stream_keep.clone()}
    for _ in range(4):  # several rollouts: episodes and streams carry over between them
        rew = (torch.rand(steps, n, b, generator=g) < 0.15).float()
        done = torch.rand(steps, n, b, generator=g) < 0.2
        if reward_ends_episode:
            done |= rew > 0
        time_step = torch.randint(0, 20, (steps, n, b), generator=g)
        obs = torch.randint(0, 81, (steps, n, b), generator=g)
        want_returns, want_lengths, want_keep = [], [], []
        for t in range(steps):
            r, length, keep = _reference_step(c, state, rew[t], done[t], time_step[t], cc)
            want_returns.append(r)
            want_lengths.append(length)
            want_keep.append(keep)
        returns, lengths = c._book_episodes(rew, done, time_step)
        c._book_streams(obs, obs, obs, rew, done, time_step)
        assert torch.equal(returns, torch.cat(want_returns)) and torch.equal(lengths, torch.cat(want_lengths))
        assert torch.equal(c.buffer["keep"][-1], torch.stack(want_keep, dim=1))
        assert torch.equal(c.buffer["done"][-1], done.reshape(steps, -1)[:, c.stream_index].T)
        for mine, key in ((c.ep_return, "ep_return"), (c.curve_sum, "curve_sum"), (c.curve_count, "curve_count"),
                          (c.stream_episode, "episode"), (c.stream_found_at, "found"), (c.stream_keep, "keep")):
            assert torch.equal(mine, state[key]), key
    assert (state["found"] >= 0).any() and state["episode"].sum() > 0


def test_all_states_forward_equals_the_embedding_gather():
    agents = BatchedA2C(81, 5, A2CConfig(), [3, 4, 5])
    obs = torch.randint(0, 81, (3, 40))
    logits, values = agents.forward(obs)
    p = agents.params
    h = p["emb"][torch.arange(3)[:, None], obs]
    torch.testing.assert_close(logits, torch.baddbmm(p["pi_b"][:, None, :], h, p["pi_w"]))
    torch.testing.assert_close(values, torch.baddbmm(p["v_b"][:, None, :], h, p["v_w"]).squeeze(-1))
    torch.testing.assert_close(agents.tables().value(obs), values.detach())


def test_table_sampling_draws_each_action_with_its_probability():
    agents = BatchedA2C(81, 5, A2CConfig(), [7, 8])
    with torch.no_grad():
        agents.params["pi_w"].mul_(20)  # a peaked, far-from-uniform policy
    obs = torch.full((2, 40_000), 17)
    torch.manual_seed(0)
    actions = agents.act(obs)
    probs = torch.softmax(agents.forward(obs[:, :1])[0][:, 0], dim=-1).detach()  # (2, 5)
    for a in range(2):
        freq = torch.bincount(actions[a], minlength=5).double() / obs.shape[1]
        # 5 standard errors of a binomial proportion
        tol = 5 * torch.sqrt(probs[a] * (1 - probs[a]) / obs.shape[1]).double() + 1e-9
        assert ((freq - probs[a].double()).abs() <= tol).all(), (freq, probs[a])
    assert math.isclose(float(probs.sum(-1).mean()), 1.0, rel_tol=1e-5)
