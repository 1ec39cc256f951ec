"""The runnable examples in the docstrings of the constraints and learners run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "trudi.constraints.gaussian_kl",
    "trudi.constraints.projection",
    "trudi.constraints.tensordict_module",
    "trudi.learners.dppo_loss",
    "trudi.learners.trudi_loss",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
