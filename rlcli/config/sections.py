"""The config sections every run has (``run``, ``env``, ``policy``) and those of PPO, RND and VAPOR.

Torch-free dataclasses whose fields are declared with :func:`rlcli.config.fields.option` (type, default,
help, range). Which sections an algorithm uses is part of its registration (``rlcli/algos/__init__.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rlcli.config.fields import option


@dataclass
class RunConfig:
    name: str = option("", "Run folder name under run.runs_dir; empty = <algo>-<env>-<technique>-s<seed>-<time>.")
    seed: int = option(0, "Seed of torch, numpy and the environments.", min=0)
    total_steps: int = option(100_000, "Environment steps to train for (summed over parallel envs).", min=1, max=10**12)
    device: str = option("auto", "Torch device: auto picks cuda when available.", choices=("auto", "cpu", "cuda"))
    runs_dir: str = option("runs", "Folder that holds run folders.")
    technique: str = option("baseline", "Generalization technique: baseline, reg, gar or gar+reg.",
                            choices=("baseline", "reg", "gar", "gar+reg"))
    reg_coef: float = option(1e-3, "reg technique: L2 penalty 0.5 * reg_coef * ||theta||^2 added to the loss "
                             "(ES: OpenAI ES's l2coeff); unused without reg.", min=0.0)
    eval_every: int = option(0, "Evaluate every this many env steps (0 = only at the end).", min=0)
    eval_episodes: int = option(10, "Episodes per evaluation (deterministic policy).", min=1)
    checkpoint_every: int = option(50_000, "Save a checkpoint every this many env steps (0 = only at the end).",
                                   min=0)
    tensorboard: bool = option(False, "Also write TensorBoard events to <run>/tb.")
    torch_threads: int = option(1, "torch intra-op threads (small nets run fastest on 1; 0 = torch default).",
                                min=0)
    log_interval: float = option(2.0, "Seconds between metric flushes and plain progress lines.", min=0.1)
    precision: str = option("fp32", "Compute precision of the learner's forward passes (rollout and update): bf16 "
                            "runs them under torch.autocast in bfloat16 (parameters, optimizer and losses' "
                            "reductions stay fp32); for the transformer, ViT and CNN learners on a GPU.",
                            choices=("fp32", "bf16"))
    compile: bool = option(False, "torch.compile the learner's networks (their forward); costs compile time at "
                                  "the start, pays off on long GPU runs.")

    @property
    def techniques(self) -> frozenset[str]:
        """The parts of ``technique``, the one place it is parsed: "gar+reg" -> {"gar", "reg"}, "baseline" -> {}."""
        return frozenset(self.technique.split("+")) - {"baseline"}


@dataclass
class EnvConfig:
    id: str = option("cartpole", "Environment family, or FAMILY:VARIANT such as atari:Pong.")
    num_envs: int = option(4, "Parallel environments.", min=1)
    variation_level: float = option(0.0, "How far the environment is varied from its default, 0 to 1.",
                                    min=0.0, max=1.0)
    max_episode_steps: int = option(0, "Episode time limit (0 = the environment's own).", min=0)
    backend: str = option("auto", "Atari: envpool or ale-py worker processes; auto = envpool when installed.",
                          choices=("auto", "envpool", "ale-py"))
    action_set: str = option("simple", "Super Mario Bros buttons: gym-super-mario-bros' SIMPLE_MOVEMENT, "
                             "COMPLEX_MOVEMENT or RIGHT_ONLY.", choices=("simple", "complex", "right_only"))
    terminate_on_goal: bool = option(True, "DarkRoom: reaching the goal ends the episode (the seed's variant); "
                                           "false = reward on every step on the goal (the AD paper's).")


@dataclass
class PolicyConfig:
    name: str = option("mlp", "Policy network.")
    hidden_sizes: list[int] = option([64, 64], "Hidden layer widths of the MLP torso.", min=1)
    activation: str = option("tanh", "Hidden activation.", choices=("tanh", "relu"))
    vit_patch_size: int = option(12, "vit-explorative: side of the square image patches, in pixels.", min=1)
    vit_dim: int = option(128, "vit-explorative: token width.", min=8)
    vit_depth: int = option(2, "vit-explorative: transformer blocks.", min=1)
    vit_heads: int = option(4, "vit-explorative: attention heads per block (must divide vit_dim).", min=1)
    vit_mlp_dim: int = option(256, "vit-explorative: hidden width of each block's MLP.", min=1)
    dropout_p: float = option(0.2, "vit-consistent-dropout: dropout probability in the encoder and actor MLP.",
                              min=0.0, max=0.95)
    consistent_dropout: bool = option(True, "vit-consistent-dropout: store each rollout step's dropout masks and "
                                      "reuse them in the update; false = ordinary dropout (fresh masks every pass).")
    perceiver_tokenizer: str = option("auto", "vit-consistent-dropout: how observations become tokens: vector "
                                      "(one per feature), grid (one per cell), patches (image patches); auto "
                                      "picks by observation shape.", choices=("auto", "vector", "grid", "patches"))
    perceiver_patch_size: int = option(8, "vit-consistent-dropout: side in pixels of the square image patches "
                                       "of perceiver_tokenizer=patches.", min=1)
    perceiver_dim: int = option(64, "vit-consistent-dropout: width of tokens and perceiver latents.", min=1)
    perceiver_latents: int = option(8, "vit-consistent-dropout: learned latent queries of the encoder.", min=1)
    perceiver_layers: int = option(1, "vit-consistent-dropout: latent self-attention layers after the "
                                   "cross-attention layer.", min=0)
    perceiver_heads: int = option(4, "vit-consistent-dropout: attention heads (must divide perceiver_dim).",
                                  min=1)


@dataclass
class PPOConfig:
    learning_rate: float = option(2.5e-4, "Adam learning rate.", min=0.0)
    num_steps: int = option(128, "Rollout length per environment between updates.", min=1)
    num_epochs: int = option(4, "Passes over each rollout.", min=1)
    num_minibatches: int = option(4, "Minibatches per epoch.", min=1)
    gamma: float = option(0.99, "Discount factor.", min=0.0, max=1.0)
    gae_lambda: float = option(0.95, "GAE lambda.", min=0.0, max=1.0)
    clip_coef: float = option(0.2, "Clipping range of the surrogate objective.", min=0.0)
    clip_vloss: bool = option(True, "Clip the value loss around the old values (PPO2 style).")
    ent_coef: float = option(0.01, "Entropy bonus coefficient.", min=0.0)
    vf_coef: float = option(0.5, "Value loss coefficient.", min=0.0)
    max_grad_norm: float = option(0.5, "Global gradient-norm clip.", min=0.0)
    anneal_lr: bool = option(True, "Anneal the learning rate linearly to 0 over run.total_steps.")
    norm_adv: bool = option(True, "Normalise advantages per minibatch.")
    adam_eps: float = option(1e-5, "Adam epsilon.", min=0.0)


@dataclass
class RNDPPOConfig(PPOConfig):
    """PPO's options as RND uses them: ``gamma`` discounts the extrinsic (episodic) rewards."""

    learning_rate: float = option(1e-4, "Adam learning rate (policy and RND predictor).", min=0.0)
    gamma: float = option(0.999, "Discount of extrinsic rewards (the episodic value head).", min=0.0, max=1.0)
    ent_coef: float = option(0.001, "Entropy bonus coefficient.", min=0.0)
    anneal_lr: bool = option(False, "Anneal the learning rate linearly to 0 over run.total_steps.")


@dataclass
class RNDConfig:
    int_gamma: float = option(0.99, "Discount of intrinsic rewards (the non-episodic value head).",
                              min=0.0, max=1.0)
    ext_coef: float = option(2.0, "Weight of the extrinsic advantages in the combined advantage.", min=0.0)
    int_coef: float = option(1.0, "Weight of the intrinsic advantages in the combined advantage.", min=0.0)
    update_proportion: float = option(0.25, "Fraction of each minibatch the RND predictor is trained on.",
                                      min=0.0, max=1.0)
    warmup_steps: int = option(6400, "Random-action steps per env that initialise the observation "
                               "normaliser before training (not counted in run.total_steps).", min=0)
    obs_clip: float = option(5.0, "Normalised observations fed to the RND networks are clipped to +-this.",
                             min=0.0)
    output_size: int = option(512, "Width of the target and predictor embeddings.", min=1)
    hidden_sizes: list[int] = option([64, 64], "Hidden widths of the RND MLPs (vector observations only; "
                                     "images use the RND paper's convnets).", min=1)
    clip_ext_rewards: bool = option(True, "Clip extrinsic rewards to [-1, 1] for learning (eval returns "
                                    "stay raw).")
    life_loss_ends_ext: bool = option(True, "A lost life ends the extrinsic value's episode (no bootstrap "
                                      "across it); the game itself goes on.")


@dataclass
class VaporConfig:
    beta: float = option(1.0, "Temperature of the optimality posterior sigmoid(A / beta) and weight of the KL "
                         "penalty, at the start of training.", min=1e-6)
    beta_schedule: str = option("linear", "How beta moves from vapor.beta to vapor.min_beta over run.total_steps.",
                                choices=("constant", "linear", "exponential"))
    min_beta: float = option(0.1, "Beta at the end of training (linear and exponential schedules).", min=1e-6)
    exploration_bonus: float = option(0.01, "Coefficient of the policy entropy weighted by the entropy of the "
                                      "optimality posterior (uncertainty-weighted exploration).", min=0.0)
    use_importance_weighting: bool = option(True, "Weight the policy gradient by pi_new / pi_old clipped to "
                                            "[1 - ppo.clip_coef, 1 + ppo.clip_coef].")
