"""OpenAI-style Evolution Strategies (Salimans et al. 2017).

One iteration (generation): draw ``es.population_size / 2`` Gaussian directions eps_j, score the mirrored
parameter vectors theta +- sigma eps_j on ``es.episodes_per_member`` episodes each, all at once in one
vectorized env (``population_size x episodes_per_member`` envs; every member acts greedily with its own
parameters through ``torch.func.vmap``), turn the returns into centred ranks in [-0.5, 0.5], and estimate

    grad = sum_j (rank(theta + sigma eps_j) - rank(theta - sigma eps_j)) eps_j / (population_size * sigma)

which Adam follows (ascent). Under the ``reg`` technique Adam follows ``grad - (run.reg_coef / sigma) * theta``:
OpenAI ES's L2 penalty, whose update is ``-g + l2coeff * theta`` with ``g = sigma * grad`` (their estimate is
not divided by sigma) and ``l2coeff = run.reg_coef``; Adam is blind to the common factor sigma. The ES presets
set OpenAI's default l2coeff, 0.005. Every parameter of
the policy evolves, whatever its layout; a critic head, if the policy has one, never affects the actions.
ES has no gradients, so ``gar`` is refused at config time and no GAS is logged.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, vmap

from rlcli.algos.ppo import make_optimizer
from rlcli.algos.reg import reg_coefficient
from rlcli.config.schema import Config
from rlcli.engine.algorithm import Algorithm, IterationResult, load_rng_state, rng_state
from rlcli.engine.timing import PhaseTimer
from rlcli.envs.registry import make_vec_env
from rlcli.nets.policies import make_policy
from rlcli.storage.checkpoint import Checkpoint, optimizer_from_tree, optimizer_to_tree

MAX_EPISODE_STEPS = 100_000  # safety cap for envs without a time limit


def centered_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks of ``x`` (N,) scaled to [-0.5, 0.5] (OpenAI ES's fitness shaping; ties broken by order)."""
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
    return ranks / (len(x) - 1) - 0.5


class ES(Algorithm):
    section = "es"

    def __init__(self, cfg: Config, device: torch.device):
        self.cfg, self.device = cfg, device
        hp = cfg.es
        self.half = hp.population_size // 2
        self.episodes = hp.episodes_per_member
        self.env = make_vec_env(cfg.env, cfg.run.seed, num_envs=hp.population_size * self.episodes)
        self.policy = make_policy(cfg.policy, self.env.single_observation_space,
                                  self.env.single_action_space).to(device)
        # ES scores each member's greedy policy and never backpropagates: the policy stays in eval mode, so
        # dropout (vit-consistent-dropout) is off in the population, in act() and in evaluation alike (torch's
        # vmap refuses random operations anyway)
        self.policy.eval()
        self.names = [n for n, _ in self.policy.named_parameters()]
        params = dict(self.policy.named_parameters())
        self.shapes = [params[n].shape for n in self.names]
        self.center = torch.nn.Parameter(torch.cat([params[n].detach().reshape(-1) for n in self.names]))
        self.optimizer = make_optimizer([self.center], cfg, hp.learning_rate, 1e-8)
        self.reg_coef = reg_coefficient(cfg)  # 0 without the reg technique
        self.noise = torch.Generator(device="cpu").manual_seed(cfg.run.seed)
        self.rng = np.random.default_rng(cfg.run.seed)
        self.env_steps = 0
        self.generations = 0

    # -- parameters ---------------------------------------------------------------------------------------
    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """(..., P) -> {name: (..., *shape)}."""
        out, offset = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            n = shape.numel()
            out[name] = flat[..., offset:offset + n].reshape(*flat.shape[:-1], *shape)
            offset += n
        return out

    def sync_policy(self) -> None:
        """Copy the centre parameters into the policy (what ``act`` and checkpoints use)."""
        with torch.no_grad():
            params = dict(self.policy.named_parameters())
            for name, value in self.unflatten(self.center.detach()).items():
                params[name].copy_(value)

    # -- one generation -----------------------------------------------------------------------------------
    def member_logits(self, thetas: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Action logits (M, K, A) of member m's parameters ``thetas[m]`` (M, P) on its observations obs[m] (M, K, ...)."""

        def logits(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(self.policy, p, (x,))[0]

        return vmap(logits)(self.unflatten(thetas), obs)

    def evaluate_population(self, thetas: torch.Tensor,
                            timer: PhaseTimer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Play one episode per env: (mean return of each member (M,), every episode's return and length)."""
        members, per = thetas.shape[0], self.episodes
        obs, _ = self.env.reset(seed=int(self.rng.integers(2**31)))
        returns = np.zeros(members * per)
        lengths = np.zeros(members * per, dtype=np.int64)
        running = np.ones(members * per, dtype=bool)
        for _ in range(MAX_EPISODE_STEPS):
            with timer.phase("inference"), torch.no_grad():
                x = torch.as_tensor(obs, device=self.device)
                logits = self.member_logits(thetas, x.reshape(members, per, *x.shape[1:]))
                actions = logits.argmax(-1).reshape(-1).cpu().numpy()
            with timer.phase("env"):
                obs, reward, terminated, truncated, _ = self.env.step(actions)
            self.env_steps += int(running.sum())
            returns += reward * running
            lengths += running
            running &= ~(terminated | truncated)
            if not running.any():
                break
        return returns.reshape(members, per).mean(1), returns, lengths

    def iteration(self, timer: PhaseTimer) -> IterationResult:
        hp = self.cfg.es
        eps = torch.randn(self.half, self.center.numel(), generator=self.noise).to(self.device)
        center = self.center.detach()
        thetas = torch.cat([center + hp.sigma * eps, center - hp.sigma * eps])
        fitness, returns, lengths = self.evaluate_population(thetas, timer)
        with timer.phase("learning"):
            ranks = centered_ranks(fitness)
            weights = torch.as_tensor(ranks[:self.half] - ranks[self.half:], dtype=torch.float32, device=self.device)
            grad = weights @ eps / (hp.population_size * hp.sigma)
            self.optimizer.zero_grad(set_to_none=True)
            # the optimizer minimises: it descends -grad (ES ascends the return) plus the L2 penalty's gradient
            self.center.grad = -grad + (self.reg_coef / hp.sigma) * center
            self.optimizer.step()
            self.sync_policy()
        self.generations += 1
        stats = {"population_return_mean": float(fitness.mean()), "population_return_max": float(fitness.max()),
                 "es_grad_norm": float(grad.norm()), "generation": float(self.generations)}
        return IterationResult(stats, returns.tolist(), lengths.tolist())

    # -- evaluation and checkpoints -----------------------------------------------------------------------
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        with torch.no_grad():
            logits, _ = self.policy(torch.as_tensor(obs, device=self.device))
        return logits.argmax(-1).cpu().numpy()

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        opt_state, opt_groups = optimizer_to_tree(self.optimizer)
        tensors = {"model": self.policy.state_dict(), "optimizer": opt_state,
                   "rng": {**rng_state(), "noise": self.noise.get_state(),
                           "numpy": np.frombuffer(json.dumps(self.rng.bit_generator.state).encode(), np.uint8)}}
        return tensors, {"optimizer_param_groups": opt_groups,
                         "counters": {"env_steps": self.env_steps, "generations": self.generations}}

    def load_state(self, ckpt: Checkpoint, weights_only: bool = False) -> None:
        self.policy.load_state_dict(ckpt.tensors("model"))
        params = dict(self.policy.named_parameters())
        with torch.no_grad():  # the centre is the policy's actor parameters (sync_policy keeps them equal)
            self.center.copy_(torch.cat([params[n].detach().reshape(-1) for n in self.names]))
        if weights_only:
            return
        optimizer_from_tree(self.optimizer, ckpt.tensors("optimizer"), ckpt.documents["optimizer_param_groups"])
        counters = ckpt.documents["counters"]
        self.env_steps, self.generations = counters["env_steps"], counters["generations"]
        rng = ckpt.tensors("rng")
        load_rng_state(rng)
        self.noise.set_state(rng["noise"].to(torch.uint8))
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = json.loads(bytes(np.asarray(rng["numpy"], dtype=np.uint8)).decode())

    def close(self) -> None:
        self.env.close()
