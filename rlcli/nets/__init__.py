"""Networks, and the registrations of the policy networks (``policy.name``; read by :mod:`rlcli.registry`).

Torch-free: each policy names its factory ``(policy_cfg, obs_space, action_space) -> ActorCritic`` by a
``"module:function"`` target, imported only when a run builds it.
"""

from __future__ import annotations

from rlcli.specs import PolicySpec

POLICIES: list[PolicySpec] = [
    PolicySpec("mlp", "rlcli.nets.policies:mlp_policy", "separate actor and critic MLPs over the flat observation",
               keys=("hidden_sizes", "activation")),
    PolicySpec("cnn", "rlcli.nets.policies:cnn_policy", "Nature-DQN CNN torso with linear actor and critic heads",
               observations=("image",), keys=("hidden_sizes",)),
    PolicySpec("vit-explorative", "rlcli.nets.vit_explorative:_factory", "ViT with exploration and "
               "exploitation tokens (RND's two value heads); attention maps", observations=("image",),
               attention=True, keys=("vit_patch_size", "vit_dim", "vit_depth", "vit_heads", "vit_mlp_dim"),
               divides=(("vit_heads", "vit_dim"),)),
    PolicySpec("vit-consistent-dropout", "rlcli.nets.vit_consistent_dropout:_factory", "Perceiver encoder with "
               "consistent dropout (masks stored with the rollout)", dropout=True,
               keys=("hidden_sizes", "activation", "dropout_p", "consistent_dropout", "perceiver_tokenizer",
                     "perceiver_patch_size", "perceiver_dim", "perceiver_latents", "perceiver_layers",
                     "perceiver_heads"),
               divides=(("perceiver_heads", "perceiver_dim"),)),
]
