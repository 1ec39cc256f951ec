"""``compile=true``: torch.compile of the policy's sampling and of the loss's forward+backward.

Nothing is wrapped (``ChainPolicy.compile_sampling``, ``nn.Module.compile``), so the parameters,
the optimizer's view of them and every checkpoint key are those of the eager run: a run can be
resumed with or without compilation. The loss is compiled as one graph (no graph breaks with the
example's ``validate_args=False``; ``tests/examples/test_compile.py``), its backward by
AOTAutograd; the optimizer step stays eager. What it costs and saves:
``benchmarks/results/overhead.md``.
"""

from __future__ import annotations

from torch import nn

from trudi.policies import ChainPolicy

__all__ = ["compile_for_training"]


def compile_for_training(
    policy: ChainPolicy, loss: nn.Module, mode: str = "default", backend: str = "inductor"
) -> None:
    """Compile ``policy``'s sampling and ``loss`` in place with ``torch.compile``'s ``mode`` and
    ``backend`` (the tests use ``"aot_eager"``, which skips Inductor's code generation).

    Example:
        >>> from examples.build import build_critic, build_loss, build_policy
        >>> from examples.config import compose_config
        >>> from examples.envs import make_env
        >>> cfg = compose_config("env=pendulum", "num_envs=2", "policy.hidden_dim=8")
        >>> env = make_env(cfg.env.name, cfg.num_envs, seed=0)
        >>> policy = build_policy(cfg, env)
        >>> loss = build_loss(cfg, policy, build_critic(cfg, env))
        >>> keys = list(loss.state_dict())
        >>> compile_for_training(policy, loss)
        >>> list(loss.state_dict()) == keys
        True
    """
    kwargs = {"backend": backend} if mode == "default" else {"backend": backend, "mode": mode}
    policy.compile_sampling(**kwargs)
    loss.compile(**kwargs)
