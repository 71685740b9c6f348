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


def test_stacked_mlp_actor_critic_equals_two_separate_mlps():
    from rlcli.nets.mlp import mlp
    from rlcli.nets.policies import MLPActorCritic

    torch.manual_seed(0)
    policy = MLPActorCritic((4,), 3, [16, 8], "tanh")
    actor, critic = mlp(4, [16, 8], 3, "tanh"), mlp(4, [16, 8], 1, "tanh")
    with torch.no_grad():
        for i, (la, lc) in enumerate(zip(actor[::2], critic[::2], strict=True)):  # the Linear layers
            la.weight.copy_(getattr(policy, f"w{i}")[0].T)
            la.bias.copy_(getattr(policy, f"b{i}")[0, 0])
            lc.weight.copy_(getattr(policy, f"w{i}")[1][:, : lc.out_features].T)
            lc.bias.copy_(getattr(policy, f"b{i}")[1, 0, : lc.out_features])
    x = torch.randn(5, 4)
    logits, value = policy(x)
    assert torch.allclose(logits, actor(x), atol=1e-6)
    assert torch.allclose(value, critic(x).squeeze(-1), atol=1e-6)
    (logits.sum() + value.sum()).backward()
    assert policy.w2.grad[1, :, 1:].abs().max() == 0, "the critic's unused output columns stay fixed"
