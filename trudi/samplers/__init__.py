"""trudi.samplers: stateless samplers of the reverse diffusion chain, and noise schedules.

Every sampler follows :class:`~trudi.samplers.Sampler`: given the denoiser's output, a batched
chain step index and the current sample, it returns the transition's ``(loc, scale)`` (and, when
stepping, the next sample). It keeps no step counter, so one sampler runs many chains at once and
re-scores recorded chains inside a loss.
"""

from trudi.samplers.ancestral import AncestralSampler
from trudi.samplers.best_of_k import BestOfKSampler, chain_log_likelihood
from trudi.samplers.ddim import DDIMSampler
from trudi.samplers.euler_maruyama import EulerMaruyamaSampler, ProbabilityFlowSampler
from trudi.samplers.sampler import Chain, Sampler, ScheduledSampler, transition_log_prob
from trudi.samplers.schedules import CosineSchedule, LinearSchedule, NoiseSchedule, SigmoidSchedule

__all__ = [
    "AncestralSampler",
    "BestOfKSampler",
    "Chain",
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
    "transition_log_prob",
]
