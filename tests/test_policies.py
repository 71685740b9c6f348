"""Policy building blocks shared by every actor-critic learner."""

from __future__ import annotations

import torch

from rlcli.nets.policies import categorical_logprob_entropy, categorical_sample


def test_categorical_sampling_matches_the_distribution_and_logprobs():
    torch.manual_seed(0)
    probs = torch.tensor([0.2, 0.5, 0.3])
    logits = probs.log().repeat(100_000, 1)
    action, logprob = categorical_sample(logits, deterministic=False)
    freq = torch.bincount(action, minlength=3) / len(action)
    assert torch.allclose(freq, probs, atol=0.01), freq
    assert torch.allclose(logprob, probs.log()[action])
    greedy, _ = categorical_sample(logits[:2], deterministic=True)
    assert greedy.tolist() == [1, 1]
    lp, ent = categorical_logprob_entropy(logits[:1], torch.tensor([2]))
    assert torch.isclose(lp, probs.log()[2]).all()
    assert torch.isclose(ent, -(probs * probs.log()).sum()).all()
