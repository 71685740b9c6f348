"""Batched A2C: many independent tabular-input A2C agents trained at once (the AD source algorithm).

Each agent is the seed's network: a state embedding ``E[s]`` of size ``a2c.hidden_size`` shared by a linear
actor head (5 logits) and a linear critic head. All N agents' parameters are stacked along a leading agent
dimension, so one embedding gather and two batched matmuls (``torch.baddbmm``) evaluate every agent on its
own envs. Because the state space is small (81 cells), the forward pass computes every agent's logits and
value for *every* state at once (one ``torch.baddbmm`` of the embedding table with the stacked heads) and
gathers the visited rows: the backward pass then scatters into an (N, S, A + 1) table instead of the
(N, S, H) embedding, and a rollout samples from a :class:`PolicyTables` snapshot (a gather and a compare per
step, no matmul). The loss is the sum of the agents' losses; since no parameter is shared, each agent's gradient is
exactly its own, Adam's per-element state keeps the agents independent, and the gradient-norm clip is
applied per agent. One update per agent uses ``a2c.num_envs`` x ``a2c.num_steps`` transitions with n-step
returns bootstrapped from the critic (truncated episodes bootstrap from their final observation).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from rlcli.config.ad import A2CConfig
from rlcli.engine.optim import FusedAdam


class PolicyTables:
    """Every agent's action distribution and value on every state, for fixed parameters (a rollout's).

    ``cdf`` (N, S, A): cumulative action probabilities; ``values`` (N, S). :meth:`act` draws by inverse CDF
    from one ``torch.rand`` per env (the same distribution as ``torch.multinomial`` on the probabilities);
    nothing here synchronises with the device.
    """

    def __init__(self, logits: torch.Tensor, values: torch.Tensor, agent: torch.Tensor):
        self.cdf = torch.softmax(logits, dim=-1).cumsum_(dim=-1)
        self.values, self._agent = values, agent
        self._last_action = self.cdf.shape[-1] - 1

    def act(self, obs: torch.Tensor, uniform: torch.Tensor | None = None) -> torch.Tensor:
        """obs (N, B) long -> actions (N, B) long, drawn by inverse CDF from ``uniform`` (N, B) in [0, 1) (one
        row of :meth:`BatchedA2C.action_noise`, so an agent's draws do not depend on its batch mates), or from
        torch's global generator without it."""
        cdf = self.cdf[self._agent, obs]  # (N, B, A)
        u = (torch.rand(obs.shape, device=obs.device) if uniform is None else uniform)[..., None]
        # the count of cumulative probabilities <= u is the sampled action; the clamp guards u above a last
        # cumulative value rounded below 1
        return (cdf <= u).sum(-1).clamp_(max=self._last_action)

    def observe(self, cell: torch.Tensor, reward: torch.Tensor, done: torch.Tensor) -> None:
        """A step's outcome (the explorer source remembers it); A2C learns only in :meth:`BatchedA2C.update`."""

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """obs (N, ...) long -> V (N, ...)."""
        return self.values[self._agent.reshape((-1,) + (1,) * (obs.dim() - 1)), obs]


def agent_uniforms(seeds: list[int], update: int, steps: int, batch: int,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """(steps, N, batch) uniforms in [0, 1) of N agents during update ``update``: agent n's come from a
    generator seeded with (``seeds[n]``, ``update``) alone, so an agent acts the same whichever agents share
    its batch (a collection sharded over agents draws what one process draws) and a resumed collection needs
    no generator state. Drawn on the CPU once per update, then one copy to the device."""
    out = torch.empty(len(seeds), steps, batch)
    g = torch.Generator()
    for n, seed in enumerate(seeds):
        g.manual_seed(((seed * 0x9E3779B97F4A7C15) ^ update) & 0xFFFF_FFFF_FFFF_FFFF)
        torch.rand(steps, batch, generator=g, out=out[n])
    return out.transpose(0, 1).to(device)


class BatchedA2C:
    """N A2C agents over ``num_states`` discrete states and ``num_actions`` actions.

    Parameters (leading dim N): ``emb`` (N, S, H), ``pi_w`` (N, H, A), ``pi_b`` (N, A), ``v_w`` (N, H, 1),
    ``v_b`` (N, 1). Agent n is initialised from a generator seeded with ``seeds[n]`` (as torch's
    nn.Embedding / nn.Linear would initialise it).
    """

    def __init__(self, num_states: int, num_actions: int, hp: A2CConfig, seeds: list[int],
                 device: torch.device | str = "cpu"):
        self.hp, self.device = hp, torch.device(device)
        n, h = len(seeds), hp.hidden_size
        bound = 1.0 / math.sqrt(h)
        emb, pi_w, pi_b, v_w, v_b = [], [], [], [], []
        for seed in seeds:
            g = torch.Generator().manual_seed(int(seed))
            emb.append(torch.randn(num_states, h, generator=g))
            pi_w.append(torch.empty(h, num_actions).uniform_(-bound, bound, generator=g))
            pi_b.append(torch.empty(num_actions).uniform_(-bound, bound, generator=g))
            v_w.append(torch.empty(h, 1).uniform_(-bound, bound, generator=g))
            v_b.append(torch.empty(1).uniform_(-bound, bound, generator=g))
        self.params = {name: torch.stack(p).to(self.device).requires_grad_()
                       for name, p in (("emb", emb), ("pi_w", pi_w), ("pi_b", pi_b), ("v_w", v_w), ("v_b", v_b))}
        # torch's fused Adam kernel: one call for all five stacked tensors (the per-tensor loop of
        # torch.optim.Adam was a tenth of the collection's time); checkpoints keep torch's format
        self.optimizer = FusedAdam(list(self.params.values()), lr=hp.learning_rate,
                                   betas=(hp.adam_beta1, hp.adam_beta2), eps=hp.adam_eps)
        self.num_agents = n
        self.seeds = [int(seed) for seed in seeds]
        self._agent = torch.arange(n, device=self.device)[:, None]

    def all_states(self) -> torch.Tensor:
        """(N, S, A + 1): every agent's logits (first A) and value (last) on every state."""
        p = self.params
        w = torch.cat((p["pi_w"], p["v_w"]), dim=-1)  # (N, H, A + 1)
        b = torch.cat((p["pi_b"], p["v_b"]), dim=-1)[:, None, :]
        return torch.baddbmm(b, p["emb"], w)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs (N, B) long -> (logits (N, B, A), values (N, B))."""
        out = self.all_states()[self._agent, obs]  # (N, B, A + 1)
        return out[..., :-1], out[..., -1]

    @torch.no_grad()
    def tables(self) -> PolicyTables:
        """A snapshot of the current policies for a rollout (valid until the next :meth:`update`)."""
        out = self.all_states()
        return PolicyTables(out[..., :-1], out[..., -1], self._agent)

    def action_noise(self, update: int, steps: int, batch: int) -> torch.Tensor:
        """(steps, N, batch) uniforms in [0, 1) for :meth:`act` during update ``update``: see
        :func:`agent_uniforms`."""
        return agent_uniforms(self.seeds, update, steps, batch, self.device)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, uniform: torch.Tensor | None = None) -> torch.Tensor:
        """Sample actions (N, B) from each agent's policy (``uniform``: see :meth:`PolicyTables.act`)."""
        return self.tables().act(obs, uniform)

    @torch.no_grad()
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.forward(obs)[1]

    def update(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, terminated: torch.Tensor,
               truncated: torch.Tensor, final_values: torch.Tensor, next_obs: torch.Tensor) -> dict[str, float]:
        """One A2C step per agent from a rollout; all inputs (T, N, B) except ``next_obs`` (N, B).

        ``final_values`` holds V(final observation) where ``truncated`` (bootstrapped), anything elsewhere.
        Returns the mean losses over agents as 0-d tensors (no device sync).
        """
        hp = self.hp
        steps = obs.shape[0]
        with torch.no_grad():
            ret = self.value(next_obs)
            returns = torch.empty_like(rewards)
            for t in reversed(range(steps)):
                ret = torch.where(truncated[t], final_values[t], ret)
                ret = rewards[t] + hp.gamma * ret * (~terminated[t]).float()
                returns[t] = ret
        n, b = obs.shape[1], obs.shape[2]
        flat_obs = obs.permute(1, 0, 2).reshape(n, steps * b)  # (N, T*B)
        logits, values = self.forward(flat_obs)
        logp_all = torch.log_softmax(logits, dim=-1)
        flat_actions = actions.permute(1, 0, 2).reshape(n, steps * b)
        logp = logp_all.gather(-1, flat_actions[..., None]).squeeze(-1)
        target = returns.permute(1, 0, 2).reshape(n, steps * b)
        advantage = (target - values).detach()
        policy_loss = -(logp * advantage).mean(dim=1)  # (N,)
        value_loss = (target - values).pow(2).mean(dim=1)
        entropy = -(logp_all.exp() * logp_all).sum(-1).mean(dim=1)
        loss = policy_loss + hp.vf_coef * value_loss - hp.ent_coef * entropy
        self.optimizer.zero_grad(set_to_none=False)
        loss.sum().backward()
        grad_norm = self._clip_per_agent(hp.max_grad_norm)
        self.optimizer.step()
        return {"policy_loss": policy_loss.detach().mean(), "value_loss": value_loss.detach().mean(),
                "entropy": entropy.detach().mean(), "grad_norm": grad_norm.mean()}

    @torch.no_grad()
    def _clip_per_agent(self, max_norm: float) -> torch.Tensor:
        """Scale each agent's gradient to norm <= ``max_norm`` (torch's clip_grad_norm_ per agent)."""
        sq = sum(p.grad.pow(2).reshape(self.num_agents, -1).sum(1) for p in self.params.values())
        norm = sq.sqrt()
        coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        for p in self.params.values():
            p.grad.mul_(coef.reshape(-1, *([1] * (p.grad.dim() - 1))))
        return norm

    def state(self) -> dict[str, Any]:
        from rlcli.storage.checkpoint import optimizer_to_tree

        opt_state, groups = optimizer_to_tree(self.optimizer)
        return {"params": {k: v.detach() for k, v in self.params.items()}, "optimizer": opt_state}, groups

    def load_state(self, tensors: dict[str, Any], param_groups: list[dict[str, Any]]) -> None:
        from rlcli.storage.checkpoint import optimizer_from_tree

        with torch.no_grad():
            for k, v in tensors["params"].items():
                self.params[k].copy_(v)
        optimizer_from_tree(self.optimizer, tensors.get("optimizer", {}), param_groups)
