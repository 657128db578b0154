"""Fast-dLLM's approximate caches (fastcache.py) for a bidirectional model decoded in blocks: refreshed at
every call they are exact decoding; otherwise each later call in a block runs the block (and, with the prefix
cache, the suffix) alone, against keys and values that are exact when nothing changed since they were stored."""

import pytest
import torch

from dllm_lite import fastcache, model, sample

V = 17  # vocabulary, mask included
MASK = V - 1


def peaked_net(conv=0, **kwargs):
    """A seeded 2-layer bidirectional net with weights scaled up, so that stale keys change its predictions."""
    torch.manual_seed(0)
    net = model.Transformer(model.ModelConfig(vocab_size=V, n_layer=2, n_head=2, n_embd=16, seq_len=48, conv=conv,
                                              **kwargs))
    with torch.no_grad():
        for name, weight in net.named_parameters():
            if ".mix." in name:
                weight.normal_()
            elif "norm" not in name:
                weight.mul_(6.0)
    return net.eval()


KWARGS = dict(mask_id=MASK, length=40, steps=20, prompt=[1, 2, 3], block_size=8, batch_size=3, threshold=0.5)


@pytest.mark.parametrize("conv", [0, 3])
@pytest.mark.parametrize("strategy", ["confidence", "ancestral", "threshold"])
@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_refreshed_at_every_call_the_cache_gives_the_uncached_tokens(mode, strategy, conv):
    net = peaked_net(conv)
    runs = []
    for options in ({}, dict(block_cache=mode, cache_refresh=1)):
        stats = {}
        runs.append((sample.generate(net, generator=torch.Generator().manual_seed(1), strategy=strategy,
                                     stats=stats, **options, **KWARGS), stats["network_calls"]))
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]


@pytest.mark.parametrize("conv", [0, 3])
@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_a_cached_call_runs_the_block_alone_and_is_exact_when_nothing_changed(mode, conv):
    net = peaked_net(conv)
    x = torch.randint(0, MASK, (2, 40))
    x[:, 16:] = MASK  # blocks before 16 decoded, the block [16, 24) and the suffix masked
    only_at = torch.zeros_like(x, dtype=torch.bool)
    only_at[:, 16:24] = True
    cached = fastcache.BlockCache(net, 2, mode)
    cached.start_block(16, 24)
    widths, features = [], net.features

    def spy(idx, **kwargs):
        widths.append(idx.shape[1])
        return features(idx, **kwargs)

    net.features = spy
    first, second = cached(x, only_at), cached(x, only_at)
    del net.features
    assert widths == [40, 8 if mode == "dual" else 24]  # the full forward stores; then the block (and suffix)
    assert torch.allclose(second, first, atol=1e-5) and torch.allclose(first, net(x)[only_at], atol=1e-5)


def test_without_refresh_the_tokens_are_an_approximation():
    net = peaked_net()
    exact = sample.generate(net, generator=torch.Generator().manual_seed(1), strategy="confidence", **KWARGS)
    dual = sample.generate(net, generator=torch.Generator().manual_seed(1), strategy="confidence", block_cache="dual",
                           **KWARGS)
    assert not torch.equal(dual, exact) and (dual != MASK).all()


@pytest.mark.parametrize("net_kwargs,options,message", [
    (dict(), dict(block_cache="dual", block_size=None), "give block_size"),
    (dict(), dict(block_cache="suffix"), "unknown block_cache 'suffix'"),
    (dict(), dict(block_cache="prefix", cache_refresh=0), "cache_refresh must be at least 1"),
    (dict(), dict(cache_refresh=2), "give block_cache"),
    (dict(causal=True), dict(block_cache="prefix"), "causal or block diffusion"),
    (dict(block_size=8), dict(block_cache="prefix", block_size=None), "causal or block diffusion"),
])
def test_bad_block_cache_requests_are_one_line_errors(net_kwargs, options, message):
    net = peaked_net(**net_kwargs)
    kwargs = dict(KWARGS, **options)
    with pytest.raises(ValueError, match=message) as error:
        sample.generate(net, **kwargs)
    assert "\n" not in str(error.value)
