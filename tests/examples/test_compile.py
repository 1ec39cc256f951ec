"""``compile=true``: the example's loss and sampling compile without a graph break, and compiled
updates compute what eager ones do; ``policy.autocast``.

On a CPU the compiled-against-eager checks use the ``aot_eager`` backend (Dynamo's graph and
AOTAutograd's forward/backward split, run by eager kernels): Inductor's C++ compilation of the
update takes minutes on the test machine. With CUDA they also run with Inductor.
"""

from __future__ import annotations

import copy
import doctest
import itertools

import pytest
import torch
from omegaconf import open_dict
from tensordict import TensorDict
from tensordict.nn import InteractionType, set_interaction_type

import examples.compiling
from examples import train as train_module
from examples.build import build_policy
from examples.compiling import compile_for_training
from examples.envs import make_env
from examples.update import update
from tests.examples.helpers import collected_batch as setup
from tests.examples.helpers import config

pytest.importorskip("gymnasium")

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="CUDA graphs and Inductor's GPU code need CUDA")
# (backend, mode): Dynamo + AOTAutograd everywhere; Inductor, with and without CUDA graphs, on CUDA.
COMPILERS = [("aot_eager", "default")]
COMPILERS += [("inductor", "default"), ("inductor", "reduce-overhead")] if CUDA else []
ARMS = {"trudi": ["algo=trudi"], "trudi_pathwise": ["algo=trudi_pathwise", "num_envs=4",
        "rollout_length=16", "minibatches=2", "epochs=2", "policy.hidden_dim=16",
        "critic.hidden_dim=16"]}  # fmt: skip


@pytest.mark.parametrize("arm", sorted(ARMS))
def test_loss_compiles_to_one_graph(arm):
    """What ``compile=true`` compiles of the update (the loss's forward; AOTAutograd derives its
    backward) is one graph: no host sync, data-dependent branch or check breaks it with the
    example's ``validate_args=False``."""
    _, _, loss, _, batch = setup(*ARMS[arm])
    explanation = torch._dynamo.explain(loss)(batch.reshape(-1)[:32])
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("interaction", [InteractionType.RANDOM, InteractionType.DETERMINISTIC])
def test_sampling_compiles_to_one_graph(interaction):
    cfg, policy, *_ = setup()
    env = make_env(cfg.env.name, cfg.num_envs, seed=1)
    td = env.reset()
    env.close()
    with set_interaction_type(interaction):
        explanation = torch._dynamo.explain(policy)(td)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize(("backend", "mode"), COMPILERS)
def test_compiled_updates_match_eager(backend, mode):
    """Three updates from the same state (parameters, optimizer, minibatch order): the same losses,
    diagnostics and parameters, compiled or not; the checkpoint keys are the same."""
    device = "cuda" if backend == "inductor" else "cpu"
    cfg, _, loss, optimizer, batch = setup("minibatches=3", "epochs=1", device=device)
    twin = copy.deepcopy(loss)
    twin_optimizer = torch.optim.Adam(twin.parameters(), lr=1e-3, eps=1e-5)
    keys = list(twin.state_dict())
    compile_for_training(twin.actor_network, twin, mode, backend=backend)
    assert list(twin.state_dict()) == keys
    torch.manual_seed(1)
    eager = update(cfg, loss, optimizer, batch)
    with open_dict(cfg):
        cfg.compile = True
    torch.manual_seed(1)
    compiled = update(cfg, twin, twin_optimizer, batch)
    assert compiled.keys() == eager.keys()
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-4, atol=1e-5, msg=key)
    for (name, a), b in zip(twin.named_parameters(), loss.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)


def test_compiled_update_does_not_recompile_for_another_key_order():
    """A batch whose keys come in another order (as a collector's do, from reset to step) runs
    the compiled loss's graph as it is: one compilation of the loss's forward over both."""
    cfg, _, loss, optimizer, batch = setup("minibatches=2", "epochs=1")
    with open_dict(cfg):
        cfg.compile = True
    compile_for_training(loss.actor_network, loss, backend="aot_eager")
    keys = list(batch.keys(include_nested=True, leaves_only=True))
    reordered = batch.select(*reversed(keys))
    assert list(reordered.keys()) != list(batch.keys())
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    update(cfg, loss, optimizer, batch)
    frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    update(cfg, loss, optimizer, reordered)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == frames


def test_compiled_sampling_matches_eager():
    cfg, policy, *_ = setup()
    twin = copy.deepcopy(policy).compile_sampling(backend="aot_eager")
    env = make_env(cfg.env.name, cfg.num_envs, seed=1)
    td = env.reset()
    env.close()
    with torch.no_grad(), set_interaction_type(InteractionType.RANDOM):
        torch.manual_seed(2)
        eager = policy(td.clone())
        torch.manual_seed(2)
        compiled = twin(td.clone())
    for key in policy.out_keys:
        torch.testing.assert_close(compiled[key], eager[key], msg=str(key))


@needs_cuda
def test_reduce_overhead_sampling_keeps_every_draw():
    """CUDA graphs replay into the same memory: each draw must be copied out before the next one,
    so that every stored chain is its own and re-scores to its own log-probs."""
    _, policy, *_ = setup()
    policy = policy.cuda().compile_sampling(mode="reduce-overhead")
    obs_dim = policy.denoiser.observation_dim
    draws = []
    with torch.no_grad(), set_interaction_type(InteractionType.RANDOM):
        for seed in range(4):
            g = torch.Generator().manual_seed(seed)
            td = TensorDict({"observation": torch.randn(8, obs_dim, generator=g)}, [8])
            draws.append(policy(td.cuda()))
    keys = policy.tensor_keys
    for first, later in itertools.pairwise(draws):
        assert not torch.equal(first[keys.chain], later[keys.chain])
    with torch.no_grad():
        for td in draws:
            scored = policy.get_dist(td).log_prob(td[keys.chain])
            torch.testing.assert_close(scored, td[keys.chain_log_prob], rtol=1e-4, atol=1e-4)


def test_autocast_option_reaches_the_policy():
    cfg = config("policy.autocast=bfloat16")
    env = make_env(cfg.env.name, cfg.num_envs, seed=0)
    assert build_policy(cfg, env).autocast is torch.bfloat16
    assert build_policy(config(), env).autocast is None
    env.close()


def test_train_with_compile(tmp_path, monkeypatch):
    """``compile=true`` goes through ``compile_for_training`` and trains (Dynamo and AOTAutograd
    here; Inductor is what a run uses)."""
    calls = []

    def compile_cheaply(policy, loss, mode="default"):
        calls.append(mode)
        compile_for_training(policy, loss, mode, backend="aot_eager")

    monkeypatch.setattr(train_module, "compile_for_training", compile_cheaply)
    cfg = config("compile=true", "total_frames=64", "eval_every=0")
    metrics = train_module.train(cfg, tmp_path)
    assert calls == ["default"]
    assert all(torch.isfinite(torch.tensor(v)) for k, v in metrics.items() if k.startswith("loss_"))


def test_docstring_example():
    result = doctest.testmod(examples.compiling, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
