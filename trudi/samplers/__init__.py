"""trudi.samplers: stateless samplers of the reverse diffusion chain, and noise schedules.

Every sampler follows :class:`~trudi.samplers.Sampler`: given the denoiser's output, a batched
chain step index and the current sample, it returns the transition's ``(loc, scale)`` (and, when
stepping, the next sample). It keeps no step counter, so one sampler runs many chains at once
(:meth:`~trudi.samplers.Sampler.sample_chain`) and re-scores recorded chains inside a loss
(:meth:`~trudi.samplers.Sampler.rescore_chain`).
"""

from trudi.samplers.ancestral import AncestralSampler
from trudi.samplers.best_of_k import BestOfKSampler, ChainScore
from trudi.samplers.ddim import DDIMSampler
from trudi.samplers.euler_maruyama import EulerMaruyamaSampler, ProbabilityFlowSampler
from trudi.samplers.log_prob import chain_log_likelihood, normal_log_prob, transition_log_prob
from trudi.samplers.sampler import Chain, ConditionedDenoiser, Sampler, ScheduledSampler
from trudi.samplers.schedules import CosineSchedule, LinearSchedule, NoiseSchedule, SigmoidSchedule

__all__ = [
    "AncestralSampler",
    "BestOfKSampler",
    "Chain",
    "ChainScore",
    "ConditionedDenoiser",
    "CosineSchedule",
    "DDIMSampler",
    "EulerMaruyamaSampler",
    "LinearSchedule",
    "NoiseSchedule",
    "ProbabilityFlowSampler",
    "Sampler",
    "ScheduledSampler",
    "SigmoidSchedule",
    "chain_log_likelihood",
    "normal_log_prob",
    "transition_log_prob",
]
