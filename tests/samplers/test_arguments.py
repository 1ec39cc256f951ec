"""Bad sampler constructor arguments fail loudly, naming the argument."""

from __future__ import annotations

import pytest

from trudi.samplers import AncestralSampler, BestOfKSampler, CosineSchedule, DDIMSampler


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: AncestralSampler("cosine"), "schedule"),
        (lambda: AncestralSampler(CosineSchedule(5), prediction="v"), "prediction"),
        (lambda: AncestralSampler(CosineSchedule(5), clip_sample=0.0), "clip_sample"),
        (lambda: AncestralSampler(CosineSchedule(5), min_std=-1.0), "min_std"),
        (lambda: AncestralSampler(CosineSchedule(5), min_score_std=-1.0), "min_score_std"),
        (lambda: DDIMSampler(CosineSchedule(5), eta=1.5), "eta"),
        (lambda: DDIMSampler(CosineSchedule(5), num_steps=6), "num_steps"),
        (lambda: DDIMSampler(CosineSchedule(5), num_steps=0), "num_steps"),
        (lambda: DDIMSampler(CosineSchedule(5), num_steps=2.0), "num_steps"),
        (lambda: BestOfKSampler(CosineSchedule(5), 3), "base"),
        (lambda: BestOfKSampler(AncestralSampler(CosineSchedule(5)), 0), "num_candidates"),
        (lambda: BestOfKSampler(AncestralSampler(CosineSchedule(5)), 2, score=1.0), "score"),
    ],
)
def test_bad_arguments_raise(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()
