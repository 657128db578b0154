"""Cached decoding (decode.py): the static-shape cache gives the logits of the growing one, and the
compiled decode (`sample.generate(..., compile=True)`) the tokens of the eager one. torch.compile runs
once per net in this module (the module-scoped nets), on the CPU with the installed C++ compiler."""

import pytest
import torch

from dllm_lite import decode, model, sample

V = 13  # vocabulary, mask included
MASK = V - 1


def peaked_net(**kwargs):
    """A seeded 2-layer net with weights scaled up, so that a wrong cache changes the sampled tokens."""
    torch.manual_seed(0)
    net = model.Transformer(model.ModelConfig(vocab_size=V, n_layer=2, n_head=2, n_embd=16, seq_len=24, **kwargs))
    with torch.no_grad():
        for name, weight in net.named_parameters():
            if ".mix." in name:
                weight.normal_(0.0, 0.5)
            elif "norm" not in name:
                weight.mul_(8.0)
    return net.eval()


@pytest.fixture(scope="module")
def ar_net():
    return peaked_net(causal=True, conv=3)


@pytest.fixture(scope="module")
def block_net():
    return peaked_net(block_size=4)


@pytest.mark.parametrize("conv", [0, 3])
def test_the_static_cache_gives_the_logits_of_the_growing_cache(conv):
    net = peaked_net(causal=True, conv=conv)
    x = torch.randint(0, MASK, (2, 11))
    full = net(x)
    decoder = decode.Decoder(net, 2, width=1)  # eager: no compilation
    steps = [decoder(x[:, :5])] + [decoder(x[:, i : i + 1]) for i in range(5, 11)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
    assert decoder.cache.length == 11 and decoder.cache.keys[0].shape[2] == 24  # the buffers never change shape


def test_a_compiled_decoder_marks_its_cache_static_even_when_an_eager_one_made_it():
    """CUDA graphs replay in place only into buffers of fixed address; the cache is kept per net and batch size,
    so a compiled Decoder must mark it even when an eager Decoder of the same net made it first."""
    net = peaked_net(causal=True, conv=3)
    eager = decode.Decoder(net, 2, width=1)
    buffers = eager.cache.keys + eager.cache.values + sum(eager.cache.mix_inputs, [])
    assert not any(hasattr(b, "_dynamo_static_input_type") for b in buffers)
    compiled = decode.Decoder(net, 2, width=1, compile=True)
    assert compiled.cache is eager.cache and len(buffers) == 2 * 2 + 2 * 2
    assert all(getattr(b, "_dynamo_static_input_type", None) == "unguarded" for b in buffers)


@pytest.mark.parametrize("case", ["ar", "block"])
def test_compiled_decoding_gives_the_eager_tokens(case, ar_net, block_net, capsys):
    net = ar_net if case == "ar" else block_net
    kwargs = dict(mask_id=MASK, length=17, steps=10, prompt=[1, 2, 3, 4, 5], batch_size=2, temperature=0.9)
    eager = sample.generate(net, generator=torch.Generator().manual_seed(3), **kwargs)
    for seed in (3, 4):  # the second call reuses the compiled step and its cache
        compiled = sample.generate(net, generator=torch.Generator().manual_seed(seed), compile=True, **kwargs)
        if seed == 3:
            assert torch.equal(compiled, eager)
    assert "torch.compile failed" not in capsys.readouterr().err
    assert not torch.equal(compiled, eager)  # another seed, other tokens: the cache was reset, not reused stale
    again = sample.generate(net, generator=torch.Generator().manual_seed(4), **kwargs)
    assert torch.equal(compiled, again)


@pytest.mark.parametrize("case", ["ar", "block"])
def test_the_compiled_step_is_not_compiled_again_for_another_length(case, ar_net, block_net, capsys):
    """A one-token slice of a (B, T) sequence has a stride of T: passed to the compiled step as it is, each new
    total length compiled the step again (and on a GPU recorded another CUDA graph). Block diffusion compiles
    two graphs (a denoising call, a call that extends the cache), AR one; neither grows with the length."""
    from torch._dynamo.utils import counters

    net = ar_net if case == "ar" else block_net
    graphs = []
    for length, prompt in [(9, [1, 2, 3]), (17, [1, 2, 3, 4, 5]), (12, [1])]:
        sample.generate(net, mask_id=MASK, length=length, steps=length, prompt=prompt, compile=True,
                        generator=torch.Generator().manual_seed(0))
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[0] == graphs[1] == graphs[2], dict(counters["recompiles"])
    assert "torch.compile failed" not in capsys.readouterr().err


def test_a_failed_compilation_falls_back_to_eager_with_one_line(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler\nmore detail")

    monkeypatch.setattr(decode, "_COMPILED", {None: broken})
    net = peaked_net(causal=True)
    kwargs = dict(mask_id=MASK, length=6, steps=1, prompt=[1, 2], generator=torch.Generator().manual_seed(0))
    assert torch.equal(sample.generate(net, compile=True, **kwargs),
                       sample.generate(net, **dict(kwargs, generator=torch.Generator().manual_seed(0))))
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["torch.compile failed (RuntimeError: no C++ compiler); decoding without it"]


def test_compile_is_refused_where_there_is_no_cache():
    with pytest.raises(ValueError, match="causal and block diffusion"):
        sample.generate(peaked_net(), mask_id=MASK, length=4, steps=2, compile=True)
    with pytest.raises(ValueError, match="use_cache=True"):
        sample.generate(peaked_net(causal=True), mask_id=MASK, length=4, steps=2, compile=True, use_cache=False)
