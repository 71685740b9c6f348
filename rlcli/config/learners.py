"""Config sections of the generalization study's learners: ``dqn``, ``es``, ``a2c`` and ``gar`` (torch-free).

``schema.py`` registers them: PPO and DQN use ``gar`` (gradient agreement, and the GAS diagnostic), ES
uses ``es`` and refuses the ``gar`` technique, since it computes no gradients. The ``a2c`` section here is
the trainable A2C algorithm's (``rlcli train a2c``); the AD pipeline's tabular source A2C has its own
``a2c`` section in rlcli.config.ad.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlcli.config.fields import ConfigError, option


@dataclass
class DQNConfig:
    learning_rate: float = option(1e-4, "Adam learning rate.", min=0.0)
    buffer_size: int = option(100_000, "Replay buffer capacity in transitions (summed over envs).", min=1)
    batch_size: int = option(64, "Transitions per gradient step (per variation level with gar).", min=1)
    gamma: float = option(0.99, "Discount factor.", min=0.0, max=1.0)
    n_step: int = option(1, "n-step returns: bootstrap from n steps ahead (1 = plain DQN).", min=1)
    learning_starts: int = option(1_000, "Env steps of pure exploration before the first update.", min=0)
    train_frequency: int = option(1, "Vector env steps between gradient updates.", min=1)
    gradient_steps: int = option(1, "Gradient steps per update.", min=1)
    target_update_every: int = option(500, "Env steps between target network updates.", min=1)
    tau: float = option(1.0, "Target update rate (1 = copy the online network).", min=0.0, max=1.0)
    start_epsilon: float = option(1.0, "Exploration rate at the start.", min=0.0, max=1.0)
    end_epsilon: float = option(0.05, "Exploration rate after the decay, kept until the end.", min=0.0, max=1.0)
    exploration_fraction: float = option(0.7, "Share of run.total_steps over which epsilon decays linearly.",
                                         min=0.0, max=1.0)
    double_dqn: bool = option(True, "Double DQN: the online network picks the next action, the target rates it.")
    normalize_obs: bool = option(True, "Normalise observations: running mean and std for unbounded boxes (saved "
                                       "in checkpoints), bounds -> [0, 1] for bounded ones; uint8 images are "
                                       "scaled to [0, 1] by the network either way.")
    max_grad_norm: float = option(10.0, "Global gradient-norm clip.", min=0.0)
    adam_eps: float = option(1e-8, "Adam epsilon.", min=0.0)
    steps_per_iteration: int = option(256, "Env steps per loop iteration (metrics are logged once per iteration).",
                                      min=1)
    checkpoint_replay: bool = option(True, "Save the replay buffer (and the envs' state where they can save it) in "
                                           "checkpoints, so a resumed run continues bit for bit; false = smaller "
                                           "checkpoints, and a resumed run refills dqn.learning_starts transitions "
                                           "into an empty buffer before learning again (inexact resume).")


@dataclass
class ESConfig:
    population_size: int = option(50, "Perturbations per generation, evaluated in parallel envs; must be even "
                                      "(antithetic pairs +eps, -eps).", min=2)
    sigma: float = option(0.1, "Standard deviation of the parameter noise.", min=0.0)
    learning_rate: float = option(0.03, "Adam learning rate on the ES gradient.", min=0.0)
    episodes_per_member: int = option(1, "Episodes each perturbation is scored on (mean return).", min=1)


@dataclass
class A2CLearnerConfig:
    learning_rate: float = option(7e-4, "Learning rate of the optimizer.", min=0.0)
    num_steps: int = option(5, "Rollout length per environment between updates (one gradient step each).",
                            min=1)
    gamma: float = option(0.99, "Discount factor.", min=0.0, max=1.0)
    gae_lambda: float = option(1.0, "GAE lambda (1.0 = the n-step returns of the A2C paper).", min=0.0, max=1.0)
    ent_coef: float = option(0.0, "Entropy bonus coefficient.", min=0.0)
    vf_coef: float = option(0.5, "Value loss coefficient (the value loss is the mean squared error).", min=0.0)
    max_grad_norm: float = option(0.5, "Global gradient-norm clip.", min=0.0)
    optimizer: str = option("rmsprop", "Optimizer of the A2C paper (rmsprop) or adam.", choices=("rmsprop", "adam"))
    rmsprop_alpha: float = option(0.99, "RMSprop smoothing constant of the squared-gradient average.",
                                  min=0.0, max=1.0)
    optimizer_eps: float = option(3e-3, "Epsilon added to the root of the squared-gradient average (RMSprop, "
                                  "Adam): 3e-3 is about SB3's 1e-5 inside the root.", min=0.0)
    anneal_lr: bool = option(False, "Anneal the learning rate linearly to 0 over run.total_steps.")
    norm_adv: bool = option(False, "Normalise advantages over each rollout.")


@dataclass
class GARConfig:
    levels: list[float] = option([0.0, 0.25, 0.5], "Variation levels of gar: each update takes one gradient per "
                                                   "level (env.num_envs envs each); GAS compares the same levels.",
                                 min=0.0, max=1.0)
    gas_every: int = option(10, "Without gar: measure GAS on a probe batch from every level each this many "
                                "iterations (0 = never). With gar GAS comes free with every update.", min=0)
    gas_probe_steps: int = option(128, "Env steps per level of the GAS probe batch (not counted in "
                                       "run.total_steps).", min=1)


def check_es(cfg) -> None:
    """ES perturbs parameters and ranks returns: there is no gradient for gar to weigh."""
    if "gar" in cfg.run.techniques:
        raise ConfigError(f"technique '{cfg.run.technique}' needs gradients, and es computes none (it ranks "
                          "returns of perturbed parameters); use --technique baseline or reg with es")
    if cfg.es.population_size % 2:
        raise ConfigError(f"es.population_size must be even (antithetic pairs), got {cfg.es.population_size}")


def check_gar(cfg) -> None:
    if "gar" in cfg.run.techniques and len(cfg.gar.levels) < 2:
        raise ConfigError(f"gar needs at least two variation levels, got gar.levels = {cfg.gar.levels}")


def check_no_gar(cfg) -> None:
    """Learners that implement neither gradient agreement nor the reg penalty (RND) refuse both rather than
    silently ignore them."""
    if cfg.run.technique != "baseline":
        raise ConfigError(f"technique '{cfg.run.technique}' is not implemented for {cfg.algo} (ppo, vapor and dqn "
                          "have gar and reg, es has reg); use --technique baseline")
