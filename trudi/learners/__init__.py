"""TorchRL loss modules for chain (diffusion and Gaussian) policies, and their critics.

from trudi.learners import TruDiLoss, DPPOLoss, TruDiPathwiseLoss, REPPOLoss
"""

from trudi.learners.chain_loss import ChainLoss
from trudi.learners.dppo_loss import DPPOLoss, exponential_clip_schedule
from trudi.learners.hl_gauss import HLGaussHead, hl_gauss_target
from trudi.learners.pathwise_loss import TruDiPathwiseLoss
from trudi.learners.q_critic import QCritic, QOutput
from trudi.learners.reppo_loss import REPPOLoss
from trudi.learners.soft_lambda_return import SoftLambdaReturn
from trudi.learners.trudi_loss import TruDiLoss

__all__ = [
    "ChainLoss",
    "DPPOLoss",
    "HLGaussHead",
    "QCritic",
    "QOutput",
    "REPPOLoss",
    "SoftLambdaReturn",
    "TruDiLoss",
    "TruDiPathwiseLoss",
    "exponential_clip_schedule",
    "hl_gauss_target",
]
