"""FusedAdam: torch's fused Adam / AdamW update bit for bit, torch's state format, and no torch._dynamo."""

import subprocess
import sys

import pytest
import torch

from rlcli.engine.optim import FusedAdam


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def _train(net: torch.nn.Module, optimizer, steps: int, lr_schedule: bool = True) -> None:
    g = torch.Generator().manual_seed(1)
    for i in range(steps):
        if lr_schedule:
            optimizer.param_groups[0]["lr"] = 1e-2 * (1 - i / 20)
        x = torch.randn(32, 6, generator=g)
        loss = (net(x) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("weight_decay", [0.0, 1e-4])
def test_same_update_as_torch_fused_adam(weight_decay):
    ours, theirs = _net(), _net()
    if weight_decay:
        reference = torch.optim.AdamW(theirs.parameters(), lr=1e-2, eps=1e-5, weight_decay=weight_decay, fused=True)
    else:
        reference = torch.optim.Adam(theirs.parameters(), lr=1e-2, eps=1e-5, fused=True)
    optimizer = FusedAdam(ours.parameters(), lr=1e-2, eps=1e-5, weight_decay=weight_decay,
                          decoupled_weight_decay=bool(weight_decay))
    _train(ours, optimizer, 10)
    _train(theirs, reference, 10)
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)
    # the state round-trips both ways: a checkpoint of either optimizer resumes in the other
    ours_sd, theirs_sd = optimizer.state_dict(), reference.state_dict()
    assert ours_sd["state"].keys() == theirs_sd["state"].keys()
    for i, s in theirs_sd["state"].items():
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(ours_sd["state"][i][key], s[key])
    resumed, resumed_ref = _net(5), _net(5)
    resumed.load_state_dict(ours.state_dict())
    resumed_ref.load_state_dict(theirs.state_dict())
    a = FusedAdam(resumed.parameters(), lr=1.0, weight_decay=weight_decay, decoupled_weight_decay=bool(weight_decay))
    a.load_state_dict(theirs_sd)
    b = type(reference)(resumed_ref.parameters(), lr=1.0, fused=True)
    b.load_state_dict(ours_sd)
    _train(resumed, a, 5, lr_schedule=False)
    _train(resumed_ref, b, 5, lr_schedule=False)
    for x, y in zip(resumed.parameters(), resumed_ref.parameters(), strict=True):
        assert torch.equal(x, y)


def test_a_short_ppo_run_never_imports_torch_dynamo(tmp_path):
    # torch.optim imports torch._dynamo (about a second of CPU) when an optimizer is built or stepped
    code = ("import sys, rlcli; cfg = rlcli.resolve_config('ppo', env='cartpole', overrides=["
            f"'run.total_steps=1024', 'run.runs_dir={tmp_path}', 'run.eval_episodes=2']); rlcli.train(cfg); "
            "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo was imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_a_second_parameter_group_matches_torch_and_its_state_layout():
    """RND adds its predictor as a second group: the update and the state numbering follow torch's."""
    ours, theirs = _net(), _net()
    reference = torch.optim.Adam(theirs[0].parameters(), lr=1e-2, eps=1e-5, fused=True)
    reference.add_param_group({"params": list(theirs[2].parameters())})
    optimizer = FusedAdam(ours[0].parameters(), lr=1e-2, eps=1e-5)
    optimizer.add_param_group({"params": list(ours[2].parameters())})
    _train(ours, optimizer, 6, lr_schedule=False)
    _train(theirs, reference, 6, lr_schedule=False)
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)
    ours_sd, theirs_sd = optimizer.state_dict(), reference.state_dict()
    assert [g["params"] for g in ours_sd["param_groups"]] == [g["params"] for g in theirs_sd["param_groups"]]
    restored = FusedAdam(_net()[0].parameters(), lr=1e-2, eps=1e-5)
    with pytest.raises(ValueError, match="other parameters"):  # one group cannot take a two-group state
        restored.load_state_dict(theirs_sd)
