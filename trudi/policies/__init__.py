"""trudi.policies: diffusion and Gaussian policy heads, the chain distribution, denoisers.

Both heads follow :class:`ChainPolicy`: ``forward`` samples a chain and writes the keys of
:class:`ChainKeys` (``docs/design.md``, "Keys and shapes"), ``get_dist`` re-scores a recorded chain
as a :class:`ChainNormal`.
"""

from trudi.policies.chain_keys import ChainKeys
from trudi.policies.chain_normal import ChainNormal
from trudi.policies.chain_policy import ChainPolicy
from trudi.policies.denoiser import AgentLinear, DenoiserMLP
from trudi.policies.diffusion_policy import DiffusionPolicy
from trudi.policies.fine_tuned_denoiser import FineTunedDenoiser
from trudi.policies.gaussian_policy import GaussianPolicy
from trudi.policies.pseudo_log_prob import has_pseudo_log_prob, pseudo_log_prob, squash_log_det
from trudi.policies.squash import ActionSquash

__all__ = [
    "ActionSquash",
    "AgentLinear",
    "ChainKeys",
    "ChainNormal",
    "ChainPolicy",
    "DenoiserMLP",
    "DiffusionPolicy",
    "FineTunedDenoiser",
    "GaussianPolicy",
    "has_pseudo_log_prob",
    "pseudo_log_prob",
    "squash_log_det",
]
