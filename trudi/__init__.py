"""trudi: Trust-Region Diffusion Policies for massively parallel on-policy RL.

The package is a set of TorchRL-compatible components that can be used one at a time:

- :mod:`trudi.policies`: diffusion policy heads, the Gaussian head (K = 1), denoisers;
- :mod:`trudi.samplers`: stateless samplers (ancestral/DDPM, DDIM and the probability-flow ODE,
  best-of-K) and noise schedules;
- :mod:`trudi.constraints`: Gaussian and trajectory KL, trust-region projection layers;
- :mod:`trudi.learners`: TorchRL loss modules (TruDi, DPPO).
- :mod:`trudi.diagnostics`: measurements of a policy: the marginal action KL beside the trajectory
  KL (a k-nearest-neighbour estimator), the spread and mode separation of its actions.
"""

__version__ = "0.1.0"
