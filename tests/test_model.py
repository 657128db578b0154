import pytest
import torch

from conftest import tiny_net
from dllm_lite.model import LocalMix, ModelConfig, Transformer


def with_random_taps(net):
    """Convolution taps start at zero; give them values so that the tests see them act."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if ".mix." in name:
                p.normal_(0.0, 0.5)
    return net


def test_logits_shape_and_subs_mask_logit():
    net = tiny_net(vocab_size=7, seq_len=10)
    logits = net(torch.randint(0, 7, (3, 10)))
    assert logits.shape == (3, 10, 7)
    assert torch.all(torch.isneginf(logits[..., 6]))  # SUBS: [MASK] is never predicted
    assert torch.isfinite(logits[..., :6]).all()


def test_embedding_rows_padded_to_multiple_of_64():
    net = tiny_net(vocab_size=70)
    assert net.embed.weight.shape[0] == 128
    assert net(torch.zeros(1, 4, dtype=torch.long)).shape[-1] == 70


@pytest.mark.parametrize("conv", [0, 3])
def test_bidirectional_sees_the_future_causal_does_not(conv):
    x = torch.randint(0, 6, (1, 8))
    y = x.clone()
    y[0, -1] = (x[0, -1] + 1) % 6
    for causal in (False, True):
        net = with_random_taps(tiny_net(vocab_size=7, seq_len=8, causal=causal, conv=conv))
        a, b = net(x), net(y)
        changed_early = not torch.allclose(a[0, :-1], b[0, :-1], atol=1e-6)
        assert changed_early is (not causal)


def test_only_at_gives_the_same_logits_as_the_full_head():
    net = tiny_net(vocab_size=9, seq_len=12)
    x = torch.randint(0, 9, (2, 12))
    where = torch.rand(2, 12) < 0.5
    assert torch.allclose(net(x, only_at=where), net(x)[where], atol=1e-6)


@pytest.mark.parametrize("conv,position", [(0, "rotary"), (2, "rotary"), (3, "rotary"), (0, "learned"), (3, "learned")])
def test_kv_cache_matches_full_forward(conv, position):
    net = with_random_taps(tiny_net(vocab_size=11, seq_len=16, causal=True, conv=conv, position=position))
    x = torch.randint(0, 10, (2, 10))
    full = net(x)
    cache = net.new_cache(2)
    steps = [net(x[:, :4], cache=cache)] + [net(x[:, i : i + 1], cache=cache) for i in range(4, 10)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
    assert cache.length == 10
    with pytest.raises(ValueError, match="causal"):
        tiny_net(causal=False).new_cache(1)


def test_a_single_query_decodes_with_no_attention_mask(monkeypatch):
    """One new token of a causal model may see every cached key: no mask, so no new mask shape per call
    (on a GPU a boolean mask whose key length grows each call kept the fast kernels out)."""
    net = tiny_net(vocab_size=11, seq_len=16, causal=True)
    x = torch.randint(0, 10, (2, 9))
    full = net(x)
    sdpa, seen = torch.nn.functional.scaled_dot_product_attention, []

    def spy(q, k, v, attn_mask=None, is_causal=False, **kwargs):
        seen.append((q.shape[2], k.shape[2], attn_mask, is_causal))
        return sdpa(q, k, v, attn_mask=attn_mask, is_causal=is_causal, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    cache = net.new_cache(2)
    steps = [net(x[:, :4], cache=cache)] + [net(x[:, i : i + 1], cache=cache) for i in range(4, 9)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
    decodes = [(keys, mask, is_causal) for queries, keys, mask, is_causal in seen if queries == 1]
    assert [keys for keys, _, _ in decodes] == [5, 5, 6, 6, 7, 7, 8, 8, 9, 9]  # two layers: two calls per token
    assert all(mask is None and not is_causal for _, mask, is_causal in decodes)


def _kernels_per_layer(n_embd=16) -> float:
    """Operations that launch a kernel (views and bare allocations left out) in one cached one-token call,
    per layer: the 4-layer count less the 2-layer count, halved."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if not func.is_view and func.__name__.split(".")[0] not in ("empty", "_unsafe_view"):
                self.n += 1
            return func(*args, **(kwargs or {}))

    counts = []
    for n_layer in (2, 4):
        torch.manual_seed(0)
        net = Transformer(ModelConfig(vocab_size=11, n_layer=n_layer, n_head=2, n_embd=n_embd, seq_len=16, causal=True))
        x, cache = torch.randint(0, 10, (1, 9)), net.new_cache(1)
        with torch.no_grad():
            net(x[:, :8], cache=cache)
            with Count() as count:
                count.n = 0
                net(x[:, 8:], cache=cache)
        counts.append(count.n)
    return (counts[1] - counts[0]) / 2


def test_a_one_token_decode_call_launches_few_kernels_per_layer():
    """Eager decoding on a GPU is bound by kernel launches, not arithmetic: each layer of a one-token call
    costs its launches. q and k are rotated as one tensor (8 elementwise kernels, not 16); on this CPU each
    RMSNorm counts 6 (pow, mean, add, rsqrt, mul, mul), where a GPU runs one fused kernel."""
    assert _kernels_per_layer() <= 32


@pytest.mark.parametrize("causal", [False, True])
def test_local_mix_adds_weighted_neighbours(causal):
    mix = LocalMix(n_embd=4, width=3, causal=causal)
    assert mix.offsets == ([-2, -1, 0] if causal else [-1, 0, 1])
    h = torch.randn(2, 5, 4)
    assert torch.equal(mix(h), h)  # zero taps at init: the identity
    torch.nn.init.normal_(mix.weight)
    expected = h.clone()
    for i in range(5):
        for tap, k in zip(mix.weight, mix.offsets):
            if 0 <= i + k < 5:  # past the ends counts as zero
                expected[:, i] += tap[0] * h[:, i + k]
    assert torch.allclose(mix(h), expected, atol=1e-6)
    if causal:  # the last two positions, given the two before them and themselves, as a cache supplies them
        assert torch.allclose(mix(h[:, 3:], window=h[:, 1:], start=2), expected[:, 3:], atol=1e-6)
    else:  # positions 1 and 2, from a window with a neighbour on each side, as a cache with a suffix supplies it
        assert torch.allclose(mix(h[:, 1:3], window=h[:, :4], start=1), expected[:, 1:3], atol=1e-6)


def test_conv_model_starts_as_the_model_without():
    plain, mixed = tiny_net(vocab_size=9, seq_len=8), tiny_net(vocab_size=9, seq_len=8, conv=3)
    missing = mixed.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(".mix." in key for key in missing)
    x = torch.randint(0, 9, (2, 8))
    assert torch.allclose(plain(x), mixed(x), atol=1e-6)


def test_learned_positions_and_activation_checkpointing():
    net = tiny_net(vocab_size=7, seq_len=8, position="learned")
    assert net(torch.randint(0, 7, (1, 8))).shape == (1, 8, 7)
    x = torch.randint(0, 7, (2, 8))
    grads = []
    for ckpt in (False, True):
        net = tiny_net(vocab_size=7, seq_len=8, activation_checkpointing=ckpt).train()
        net(x)[..., :6].logsumexp(-1).sum().backward()
        grads.append(net.blocks[0].mlp.up.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_too_long_input_raises():
    with pytest.raises(ValueError, match="seq_len=6"):
        tiny_net(seq_len=6)(torch.zeros(1, 7, dtype=torch.long))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_embd=30, n_head=4), "divisible"),
        (dict(seq_len=0), "seq_len"),
        (dict(position="absolute"), "rotary"),
        (dict(init_std=0.0), "init_std"),
        (dict(embed_init_std=-1.0), "embed_init_std"),
        (dict(conv=-1), "conv"),
        (dict(conv=4), "odd width"),
    ],
)
def test_bad_config_raises(kwargs, match):
    base = dict(vocab_size=10, n_layer=1, n_head=2, n_embd=16, seq_len=8)
    with pytest.raises(ValueError, match=match):
        ModelConfig(**{**base, **kwargs})


def test_init_scales_follow_the_config():
    """Matrices at init_std, residual projections at init_std / sqrt(2L), the embedding at embed_init_std."""
    torch.manual_seed(0)
    net = Transformer(ModelConfig(vocab_size=64, n_layer=2, n_head=4, n_embd=128, seq_len=8,
                                  init_std=0.05, embed_init_std=1.0))
    assert net.embed.weight.std().item() == pytest.approx(1.0, rel=0.05)
    assert net.blocks[0].attn.qkv.weight.std().item() == pytest.approx(0.05, rel=0.05)
    assert net.blocks[1].mlp.down.weight.std().item() == pytest.approx(0.05 / 2, rel=0.05)
    assert torch.equal(net.blocks[0].norm1.weight, torch.ones(128))
    default = tiny_net(vocab_size=64)
    assert default.embed.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_gpt2_small_shape_parameter_count_and_flops():
    with torch.device("meta"):
        net = Transformer(ModelConfig(vocab_size=50258, n_layer=12, n_head=12, n_embd=768, seq_len=1024))
    n = net.num_params()
    assert n == 50304 * 768 + 12 * (12 * 768 * 768 + 2 * 768) + 768
    assert 123e6 < n < 125e6
    assert net.flops_per_token() == 6 * n + 12 * 12 * 12 * 64 * 1024
    assert net.num_params(non_embedding=True) == n - 50304 * 768


def test_learned_positions_count_as_parameters_but_not_as_flops():
    rotary = tiny_net(vocab_size=7, seq_len=8)
    learned = tiny_net(vocab_size=7, seq_len=8, position="learned")
    positions = 8 * 32
    assert learned.num_params() == rotary.num_params() + positions  # they are weights the optimiser trains
    assert learned.num_params(non_embedding=True) == rotary.num_params(non_embedding=True)
    assert learned.flops_per_token() == rotary.flops_per_token()  # a lookup costs no matrix product


def test_diffusion_flops_count_the_head_at_the_masked_share():
    with torch.device("meta"):
        net = Transformer(ModelConfig(vocab_size=50258, n_layer=12, n_head=12, n_embd=768, seq_len=1024))
    head, attention = 50304 * 768, 12 * 12 * 12 * 64 * 1024
    body = net.num_params() - head
    assert net.flops_per_token(head_share=0.5) == 6 * body + 3 * head + attention
    assert net.flops_per_token(head_share=0.0) == 6 * body + attention
    assert net.flops_per_token() / net.flops_per_token(head_share=0.5) == pytest.approx(1.157, abs=1e-3)
    with pytest.raises(ValueError, match="share"):
        net.flops_per_token(head_share=1.5)
