"""TorchRL loss modules for chain (diffusion and Gaussian) policies.

from trudi.learners import TruDiLoss, DPPOLoss
"""

from trudi.learners.chain_loss import ChainLoss
from trudi.learners.dppo_loss import DPPOLoss, exponential_clip_schedule
from trudi.learners.trudi_loss import TruDiLoss

__all__ = ["ChainLoss", "DPPOLoss", "TruDiLoss", "exponential_clip_schedule"]
