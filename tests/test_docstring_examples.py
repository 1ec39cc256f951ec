"""The runnable examples in the public docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "trudi.constraints.adaptive_bound",
    "trudi.constraints.gaussian_kl",
    "trudi.constraints.projection",
    "trudi.diagnostics.knn_kl",
    "trudi.diagnostics.marginal_kl",
    "trudi.diagnostics.multimodality",
    "trudi.learners.dppo_loss",
    "trudi.learners.hl_gauss",
    "trudi.learners.pathwise_loss",
    "trudi.learners.q_critic",
    "trudi.learners.reppo_loss",
    "trudi.learners.soft_lambda_return",
    "trudi.learners.trudi_loss",
    "trudi.policies.chain_keys",
    "trudi.policies.chain_normal",
    "trudi.policies.denoiser",
    "trudi.policies.diffusion_policy",
    "trudi.policies.fine_tuned_denoiser",
    "trudi.policies.gaussian_policy",
    "trudi.policies.pseudo_log_prob",
    "trudi.policies.squash",
    "trudi.samplers.ancestral",
    "trudi.samplers.best_of_k",
    "trudi.samplers.ddim",
    "trudi.samplers.euler_maruyama",
    "trudi.samplers.schedules",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
