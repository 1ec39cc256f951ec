"""Noise schedules: ᾱ starts at 1, decreases strictly, ends near pure noise, for any T."""

from __future__ import annotations

import pytest
import torch

from trudi.samplers import CosineSchedule, LinearSchedule, SigmoidSchedule

SCHEDULES = [LinearSchedule, CosineSchedule, SigmoidSchedule]


@pytest.mark.parametrize("schedule_class", SCHEDULES)
@pytest.mark.parametrize("num_steps", [1, 5, 10, 100])
def test_alphas_cumprod(schedule_class, num_steps):
    alphas_cumprod = schedule_class(num_steps).alphas_cumprod()
    assert alphas_cumprod.shape == (num_steps + 1,)
    assert alphas_cumprod.dtype == torch.float64
    assert alphas_cumprod[0] == 1.0
    assert (alphas_cumprod[1:] < alphas_cumprod[:-1]).all()
    # betas are capped at 0.999, so a one-step chain ends at ᾱ_1 = 1e-3.
    assert 0.0 < alphas_cumprod[-1] <= 1e-3 + 1e-12


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: LinearSchedule(0), "num_steps"),
        (lambda: LinearSchedule(5.0), "num_steps"),
        (lambda: LinearSchedule(5, beta_min=0.0), "beta_min"),
        (lambda: LinearSchedule(5, beta_min=1.0, beta_max=0.5), "beta_max"),
        (lambda: CosineSchedule(5, offset=-0.1), "offset"),
        (lambda: SigmoidSchedule(5, start=1.0, end=0.0), "end"),
        (lambda: SigmoidSchedule(5, temperature=0.0), "temperature"),
    ],
)
def test_bad_arguments_raise(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()
