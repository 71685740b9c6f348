"""VAPOR: PPO's rollouts, GAE and value loss with a policy loss built on the posterior probability of optimality.

Source: Tarbouriech, Lattimore & O'Donoghue, "Probabilistic Inference in Reinforcement Learning Done Right"
(NeurIPS 2023), as packaged by the seed document 003 (config ``vapor.*``, metrics ``vapor_*``). VAPOR subclasses
:class:`~rlcli.algos.ppo.PPO` and replaces only :meth:`PPO.policy_loss`; rollouts, GAE, value loss, epochs,
minibatches, gradient clipping, learning-rate annealing and checkpoints are PPO's.

The loss, per minibatch of N transitions (A = the GAE advantage, normalised per minibatch when
``ppo.norm_adv``; rho = pi_new(a|s) / pi_old(a|s); eps = ``ppo.clip_coef``; sg = stop-gradient)::

    beta      = schedule(vapor.beta -> vapor.min_beta, progress = env_steps / run.total_steps)
    p         = sigmoid(A / beta)                         # posterior P(s, a optimal), a constant of the update
    w         = clip(sg(rho), 1 - eps, 1 + eps)           # 1 when vapor.use_importance_weighting is false
    L_pg      = -mean(w * p * A * log pi_new(a|s))        # vapor_policy_loss
    L_kl      = beta * mean((rho - 1) - log rho)          # vapor_kl_penalty ~ beta * KL(pi_old || pi_new)
    H_post    = -(p log p + (1 - p) log(1 - p))           # vapor_posterior_entropy (nats, mean over samples)
    B         = vapor.exploration_bonus * mean(H_post * H(pi_new(.|s)))   # vapor_exploration_bonus
    loss      = L_pg + L_kl - B - ppo.ent_coef * mean(H(pi_new(.|s)))

Choices, against the paper (its Sec. 4-6 and the deep-RL "VAPOR-lite" agent):

1. Posterior of optimality. The paper's P_Gamma*(s, a) is the posterior probability, under the agent's
   epistemic uncertainty about the MDP, that (s, a) lies on an optimal trajectory; VAPOR lower-bounds it with
   an occupancy measure and per-(s, a) temperatures tau(s, a) scaled by an uncertainty sigma(s, a) (an
   ensemble or RND in VAPOR-lite). We keep no model of epistemic uncertainty: the posterior is the logistic
   link of the advantage, p = sigmoid(A / beta), i.e. the control-as-inference likelihood P(O = 1 | s, a)
   proportional to exp(A / beta) normalised against the "not optimal" outcome. beta plays the role of the
   paper's temperature tau. p is a constant of the update (advantages come from the rollout), as the
   paper's posterior is of the policy optimisation.
2. Weighted policy gradient. Each sample's policy-gradient term A * grad log pi is weighted by p: actions
   whose advantage makes them likely optimal count fully, the others fade. As beta -> infinity p -> 1/2 and
   the update is REINFORCE with a baseline at half scale; as beta -> 0 only positive-advantage actions move
   the policy (an optimistic update). The paper's optimal policy is the softmax of the optimistic Q-values
   over tau * sigma; this weighting is the advantage-space analogue, not the paper's occupancy-measure
   convex program (which is only tractable in tabular MDPs).
3. Importance weights. Epochs after the first are off-policy; ``vapor.use_importance_weighting`` multiplies
   each term by rho, clipped to PPO's range [1 - eps, 1 + eps] and stopped from carrying a gradient (the
   truncated-IS correction of IMPALA), so the clipped weight corrects the data and the KL term below, not
   the ratio, keeps the step small. The paper is on-policy and has no such weight.
4. KL penalty. A trust region beta * KL(pi_old || pi_new) replaces PPO's clipped surrogate. Only the taken
   action's old log-probability is stored, so KL is estimated from the rollout's samples with the unbiased,
   non-negative estimator (rho - 1) - log rho (Schulman's "k3"); its gradient pulls rho towards 1. The paper's
   KL is the one between the variational occupancy and the prior (entropy regularisation); the penalty to
   the old policy is the practical on-policy form. The same beta weights both terms (the seed's
   "KL regularization strength (temperature)"), so annealing beta sharpens the posterior and loosens the
   trust region together.
5. Exploration bonus. The posterior's entropy is a constant of the update (it does not depend on the new
   policy), so using it alone as a bonus would have no gradient. VAPOR-lite instead regularises the policy's
   entropy with a per-(s, a) weight proportional to the uncertainty sigma(s, a); we weight the policy
   entropy H(pi(.|s)) by the posterior's Bernoulli entropy H_post (maximal, ln 2, where optimality is most
   uncertain, A ~ 0; zero where it is certain). ``ppo.ent_coef`` keeps adding the plain entropy bonus
   (presets/vapor-cartpole.toml sets it to 0 so that exploration comes only from VAPOR's term). Because this
   bonus has a gradient (the seed's constant bonus had none), its default is 0.01, PPO's entropy scale, not
   the seed's 0.1: with 0.1 (an effective entropy coefficient ~0.06) CartPole's policy stayed near uniform
   and 2 of 3 seeds plateaued at a 10-episode eval of ~455-468 within 150k steps.
6. Beta schedule. beta is a function of training progress t = env_steps / run.total_steps, where env_steps
   counts the steps collected so far including this iteration's rollout (so the logged step is the one the
   beta was used at): constant beta; linear beta + (min_beta - beta) t; exponential (geometric)
   beta * (min_beta / beta) ** t. Both reach ``vapor.min_beta`` exactly at the end of training. The paper
   tunes tau by gradient descent on its dual instead of following a schedule.
7. Value function: PPO's (clipped) value loss, unweighted; the paper's VAPOR-lite also uses a plain TD critic.
"""

from __future__ import annotations

import math

import torch

from rlcli.algos.ppo import PPO


def beta_at(schedule: str, beta: float, min_beta: float, progress: float) -> float:
    """beta after ``progress`` (0 = start, 1 = end of training; clamped to [0, 1]) of the schedule."""
    t = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return beta
    if schedule == "linear":
        return beta + (min_beta - beta) * t
    if schedule == "exponential":
        return beta * math.exp(t * math.log(min_beta / beta))
    raise ValueError(f"unknown beta schedule '{schedule}'")


def bernoulli_entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of Bernoulli(p), elementwise; 0 at p = 0 or 1."""
    q = 1.0 - p
    return -(torch.xlogy(p, p) + torch.xlogy(q, q))


class VAPOR(PPO):
    section = "vapor"

    def current_beta(self) -> float:
        """beta at the current progress. PPO.iteration calls the update (and so :meth:`policy_loss`) after the
        rollout, so ``env_steps`` already counts this iteration's steps: the logged step is beta's step."""
        v = self.cfg.vapor
        return beta_at(v.beta_schedule, v.beta, v.min_beta, self.env_steps / self.cfg.run.total_steps)

    def policy_loss(self, new_logprob: torch.Tensor, entropy: torch.Tensor, mb: dict[str, torch.Tensor],
                    advantages: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The VAPOR loss of the module docstring; (loss, stats to log). All inputs are (N,)."""
        v, eps = self.cfg.vapor, self.hp.clip_coef
        beta = self.current_beta()
        log_ratio = new_logprob - mb["logprobs"]
        ratio = log_ratio.exp()
        posterior = torch.sigmoid(advantages.detach() / beta)
        if v.use_importance_weighting:
            weight = ratio.detach().clamp(1 - eps, 1 + eps)
        else:
            weight = torch.ones_like(ratio)
        pg_loss = -(weight * posterior * advantages.detach() * new_logprob).mean()
        kl = ((ratio - 1) - log_ratio).mean()
        kl_penalty = beta * kl
        posterior_entropy = bernoulli_entropy(posterior)
        bonus = v.exploration_bonus * (posterior_entropy * entropy).mean()
        entropy_mean = entropy.mean()
        loss = pg_loss + kl_penalty - bonus - self.hp.ent_coef * entropy_mean
        with torch.no_grad():
            clipfrac = ((ratio - 1.0).abs() > eps).float().mean()
        return loss, {
            "vapor_policy_loss": pg_loss.detach(), "vapor_kl_penalty": kl_penalty.detach(),
            "vapor_exploration_bonus": bonus.detach(), "vapor_posterior_entropy": posterior_entropy.mean(),
            "vapor_beta": torch.tensor(beta), "entropy": entropy_mean.detach(), "approx_kl": kl.detach(),
            "clipfrac": clipfrac}
