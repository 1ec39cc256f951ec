"""The conformance tests every sampler passes: shapes, dtype, batched steps, statelessness,
re-scoring a recorded chain."""

from __future__ import annotations

import pytest
import torch

from trudi.samplers import (
    AncestralSampler,
    BestOfKSampler,
    CosineSchedule,
    DDIMSampler,
    EulerMaruyamaSampler,
    LinearSchedule,
    Sampler,
    SigmoidSchedule,
    chain_log_likelihood,
)

ACTION_DIM = 3
BATCH_SHAPE = (2, 4)


def _distance_to_origin(chain, loc, scale, observation):
    return -chain[..., -1, :].norm(dim=-1)


SAMPLERS = {
    "ancestral-epsilon-cosine": lambda: AncestralSampler(CosineSchedule(5)),
    "ancestral-x0-linear": lambda: AncestralSampler(
        LinearSchedule(4), prediction="sample", clip_sample=None, min_std=0.05
    ),
    "ddim-eta0.5-sigmoid": lambda: DDIMSampler(SigmoidSchedule(6), eta=0.5, min_std=0.02),
    "ddim-fewer-steps": lambda: DDIMSampler(CosineSchedule(10), eta=1.0, num_steps=4, min_std=0.1),
    "best-of-3-likelihood": lambda: BestOfKSampler(AncestralSampler(CosineSchedule(5)), 3),
    "best-of-4-custom-score": lambda: BestOfKSampler(
        DDIMSampler(CosineSchedule(5), eta=0.3, min_std=0.01), 4, score=_distance_to_origin
    ),
    "euler-maruyama-8": lambda: EulerMaruyamaSampler(8),
    "euler-maruyama-learned-prior": lambda: EulerMaruyamaSampler(
        3, prior_std=1.5, friction=0.5, learn_prior_std=True
    ),
    "probability-flow-ode": lambda: EulerMaruyamaSampler(4).probability_flow(0.8, min_std=0.05),
}


def denoise(sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
    """A fixed nonlinear stand-in for a network, broadcasting the timestep like DenoiserMLP."""
    return 0.7 * torch.sin(sample) + 0.05 * timestep.to(sample.dtype).unsqueeze(-1)


@pytest.fixture(params=list(SAMPLERS))
def sampler(request) -> Sampler:
    return SAMPLERS[request.param]()


def _sample(sampler: Sampler, seed: int = 0, dtype: torch.dtype = torch.float32):
    generator = torch.Generator().manual_seed(seed)
    prior = torch.randn((*BATCH_SHAPE, ACTION_DIM), generator=generator, dtype=dtype)
    return sampler.sample_chain(denoise, prior, generator=generator)


class TestSamplerConformance:
    def test_protocol_attributes(self, sampler):
        assert isinstance(sampler, Sampler)
        assert sampler.timesteps.shape == (sampler.num_steps,)
        assert sampler.timesteps.dtype == torch.long
        assert (sampler.timesteps[:-1] > sampler.timesteps[1:]).all()
        assert sampler.timesteps.min() >= 1

    def test_chain_shapes(self, sampler):
        chain, loc, scale = _sample(sampler)
        k = sampler.num_steps
        assert chain.shape == (*BATCH_SHAPE, k + 1, ACTION_DIM)
        assert loc.shape == scale.shape == (*BATCH_SHAPE, k, ACTION_DIM)
        assert (scale > 0).all()
        assert torch.isfinite(chain).all()

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_dtype_and_device(self, sampler, dtype):
        chain, loc, scale = _sample(sampler, dtype=dtype)
        for tensor in (chain, loc, scale):
            assert tensor.dtype == dtype
            assert tensor.device == torch.device("cpu")

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    def test_cuda(self, sampler):
        sampler = sampler.to("cuda")
        chain, loc, scale = sampler.sample_chain(denoise, torch.randn(5, ACTION_DIM, device="cuda"))
        assert chain.device.type == loc.device.type == scale.device.type == "cuda"

    def test_batched_steps_match_single_steps(self, sampler):
        generator = torch.Generator().manual_seed(1)
        n = 3 * sampler.num_steps
        sample = torch.randn(n, ACTION_DIM, generator=generator)
        step = torch.arange(n) % sampler.num_steps
        timestep = sampler.timesteps[step]
        loc, scale = sampler.transition(denoise(sample, timestep), step, sample)
        for i in range(n):
            j = int(step[i])
            single = sampler.transition(denoise(sample[i], sampler.timesteps[j]), j, sample[i])
            torch.testing.assert_close(loc[i], single[0])
            torch.testing.assert_close(scale[i], single[1])

    def test_no_state_between_calls(self, sampler):
        first = _sample(sampler, seed=3)
        sample = torch.randn(7, ACTION_DIM)
        last = sampler.num_steps - 1
        sampler.transition(denoise(sample, sampler.timesteps[last]), last, sample)
        _sample(sampler, seed=4)
        again = _sample(sampler, seed=3)
        for a, b in zip(first, again, strict=True):
            assert torch.equal(a, b)

    def test_step_is_transition_plus_noise(self, sampler):
        sample = torch.randn(6, ACTION_DIM)
        noise = torch.randn(6, ACTION_DIM)
        denoised = denoise(sample, sampler.timesteps[0])
        loc, scale, next_sample = sampler.step(denoised, 0, sample, noise)
        expected = sampler.transition(denoised, 0, sample, sampling=True)
        torch.testing.assert_close((loc, scale), expected)
        torch.testing.assert_close(next_sample, loc + scale * noise)

    def test_sample_chain_runs_step_once_per_chain_step(self, sampler, monkeypatch):
        stepper = getattr(sampler, "base", sampler)  # best-of-K steps with its base sampler
        calls = []
        original = stepper.step

        def counted(denoised, step, *args, **kwargs):
            calls.append(step)
            return original(denoised, step, *args, **kwargs)

        monkeypatch.setattr(stepper, "step", counted)
        _sample(sampler)
        assert calls == list(range(sampler.num_steps))

    def test_rescoring_reproduces_recorded_chain(self, sampler):
        chain, loc, scale = _sample(sampler)
        rescored_chain, rescored_loc, rescored_scale = sampler.rescore_chain(denoise, chain)
        assert rescored_chain is chain
        torch.testing.assert_close(rescored_loc, loc)
        torch.testing.assert_close(rescored_scale, scale)
        torch.testing.assert_close(
            chain_log_likelihood(chain, rescored_loc, rescored_scale),
            chain_log_likelihood(chain, loc, scale),
        )

    def test_rescoring_applies_the_scale_hook_per_step(self, sampler):
        chain, _, scale = _sample(sampler)

        def doubled_late_steps(scale, step):
            # step broadcasts to the batch dims *N of scale [*N, A], as in transition().
            late = (torch.as_tensor(step) >= 1).unsqueeze(-1)
            return scale * (1.0 + late.to(scale.dtype))

        _, _, rescored = sampler.rescore_chain(denoise, chain, scale_fn=doubled_late_steps)
        torch.testing.assert_close(rescored[..., :1, :], scale[..., :1, :])
        torch.testing.assert_close(rescored[..., 1:, :], 2 * scale[..., 1:, :])

    def test_rescoring_rejects_a_chain_of_another_length(self, sampler):
        chain, _, _ = _sample(sampler)
        with pytest.raises(ValueError, match="chain must have shape"):
            sampler.rescore_chain(denoise, chain[..., 1:, :])

    def test_state_independent_scale_is_honest(self, sampler):
        """Every trudi sampler declares its scales state independent, and they are: the scale of
        a step does not change with the sample or the denoiser's output."""
        assert sampler.state_independent_scale
        g = torch.Generator().manual_seed(1)
        a, b = (torch.randn(*BATCH_SHAPE, ACTION_DIM, generator=g) for _ in range(2))
        for step in range(sampler.num_steps):
            for sampling in (True, False):
                denoised = denoise(a, sampler.timesteps[step])
                _, scale_a = sampler.transition(denoised, step, a, sampling=sampling)
                _, scale_b = sampler.transition(3 * b, step, b, sampling=sampling)
                torch.testing.assert_close(scale_a, scale_b)
