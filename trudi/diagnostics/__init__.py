"""trudi.diagnostics: measurements of a policy, not parts of training.

- :func:`knn_kl`: the k-nearest-neighbour KL(p ‖ q) estimate between two sample sets per state;
- :func:`marginal_kl`: the marginal action KL(old ‖ new) of two chain policies beside their exact
  trajectory KL, which the trust region bounds (how tight the bound is);
- :func:`action_spread`, :func:`two_means_silhouette`, :func:`bimodality_coefficient`: the spread
  and mode separation of a policy's actions at fixed states.

    from trudi.diagnostics import knn_kl, marginal_kl
"""

from trudi.diagnostics.knn_kl import knn_kl
from trudi.diagnostics.marginal_kl import MarginalKL, marginal_kl
from trudi.diagnostics.multimodality import (
    action_spread,
    bimodality_coefficient,
    principal_projection,
    silhouette_score,
    two_means,
    two_means_silhouette,
)

__all__ = [
    "MarginalKL",
    "action_spread",
    "bimodality_coefficient",
    "knn_kl",
    "marginal_kl",
    "principal_projection",
    "silhouette_score",
    "two_means",
    "two_means_silhouette",
]
