"""The sampler's logits stay within draw.LOGITS_BUDGET, whatever B * T * V, and the tokens do not change.

A network split into features and head (the library's Transformer) gives the sampler its hidden states;
draw.sample_rows runs the head a chunk of rows at a time. These tests lower the budget to a few rows,
count every logits-shaped tensor that any torch operation returns, and compare the tokens with those of
the same network seen as a plain denoiser, `net(ids) -> logits (B, T, V)` computed and indexed at once.
"""

import weakref

import pytest
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from dllm_lite import draw, model, sample

V = 300  # vocabulary, mask included: the head's product is padded to 320 columns
MASK = V - 1
B, L = 3, 40


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def peaked_net(seq_len=L, **cfg):
    """A seeded one-layer Transformer with its weights scaled up, so its predictions depend on the context."""
    torch.manual_seed(0)
    net = model.Transformer(model.ModelConfig(vocab_size=V, n_layer=1, n_head=2, n_embd=16, seq_len=seq_len, **cfg))
    with torch.no_grad():
        for name, weight in net.named_parameters():
            if "norm" not in name:
                weight.mul_(4.0)
    return net


class Plain(nn.Module):
    """The same net behind the bare denoiser contract: forward(ids) -> logits (B, T, V), nothing else."""

    def __init__(self, net):
        super().__init__()
        self.net, self.cfg = net, net.cfg

    def forward(self, idx):
        return self.net(idx)


class LogitsMeter(TorchDispatchMode):
    """Records the bytes of every tensor any torch operation returns whose last dimension is a vocabulary's
    (V, or the head's padded width): the logits, and separately the draw's arrays of 8-byte entries (float64,
    and the int64 order of top-p's sort), which FLOAT64_BUDGET bounds; views of the net's weights (the
    transposed embedding of the tied head) are not logits and are left out."""

    def __init__(self, widths, net):
        super().__init__()
        self.widths, self.logits, self.float64 = widths, [0], [0]
        self.weights = {w.untyped_storage().data_ptr() for w in net.parameters()}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if (isinstance(t, torch.Tensor) and t.dim() >= 2 and t.shape[-1] in self.widths
                    and t.untyped_storage().data_ptr() not in self.weights):
                size = t.numel() * t.element_size()
                (self.float64 if t.element_size() == 8 else self.logits).append(size)
        return out


CASES = [
    dict(strategy="ancestral"),
    dict(strategy="ancestral", cache=False),
    dict(strategy="confidence"),
    dict(strategy="confidence", top_p=0.9, temperature=0.8),
    dict(strategy="threshold", threshold=0.3),
    dict(strategy="left_to_right"),
    dict(strategy="random"),
    dict(strategy="confidence", top_k=7, block_size=16),
    dict(strategy="ancestral", block_size=16),
    dict(strategy="confidence", prompt=[1, MASK, MASK, 2, MASK], length=35),
    dict(strategy="threshold", threshold=0.3, block_size=16, block_cache="dual", cache_refresh=1),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_no_logits_above_the_budget_and_the_tokens_of_one_unchunked_draw(case, monkeypatch):
    """Fails without sample_rows: the first step's head alone returns B * L rows of 320 float32 columns
    (153,600 bytes), 30 times the lowered budget. The reference is the plain denoiser (the block cache needs
    the Transformer itself: there, the default budget, one chunk)."""
    net = peaked_net()
    kwargs = dict(mask_id=MASK, length=L, steps=10, batch_size=B) | case
    reference = net if "block_cache" in case else Plain(net)
    whole = sample.generate(reference, generator=torch.Generator().manual_seed(3), **kwargs)
    budget = 4 * 320 * 4  # four rows of the padded head, in float32
    monkeypatch.setattr(draw, "LOGITS_BUDGET", budget)
    monkeypatch.setattr(draw, "FLOAT64_BUDGET", 3 * V * 8)  # three rows: the draw splits the chunks again
    with LogitsMeter({V, 320}, net) as meter:
        chunked = sample.generate(net, generator=torch.Generator().manual_seed(3), **kwargs)
    assert max(meter.logits) <= budget < B * L * 320 * 4
    assert 0 < max(meter.float64) <= 3 * V * 8
    assert torch.equal(chunked, whole) and (chunked != MASK).all()


@pytest.mark.parametrize("case", [dict(strategy="confidence"), dict(strategy="ancestral", use_cache=False),
                                  dict(strategy="threshold", threshold=0.3, prompt=[1, 2, 3, 4, 5, 6, 7, 8, 9])],
                         ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_block_diffusion_draws_its_blocks_within_the_budget(case, monkeypatch):
    """A block diffusion model's block of K = 8 positions is 3 * 8 rows of logits, 6 times the lowered
    budget without sample_rows; the tokens are those of the default budget (one chunk per step)."""
    net = peaked_net(block_size=8)
    kwargs = dict(mask_id=MASK, length=L - len(case.get("prompt", [])), steps=10, batch_size=B) | case
    whole = sample.generate(net, generator=torch.Generator().manual_seed(3), **kwargs)
    monkeypatch.setattr(draw, "LOGITS_BUDGET", 4 * 320 * 4)
    with LogitsMeter({V, 320}, net) as meter:
        chunked = sample.generate(net, generator=torch.Generator().manual_seed(3), **kwargs)
    assert 0 < max(meter.logits) <= 4 * 320 * 4 < B * 8 * 320 * 4
    assert torch.equal(chunked, whole) and (chunked != MASK).all()


class LiveArrays(TorchDispatchMode):
    """The most bytes of 8-byte (n, V) arrays (float64, int64 sort orders) alive at once: each op's output is
    counted from its creation until the last tensor on its storage is gone."""

    def __init__(self):
        super().__init__()
        self.live, self.peak = {}, 0  # storage address -> [tensors alive on it, bytes]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.element_size() == 8 and t.dim() == 2 and t.shape[-1] == V:
                address = t.untyped_storage().data_ptr()
                self.live.setdefault(address, [0, t.untyped_storage().nbytes()])[0] += 1
                weakref.finalize(t, self._release, address)
                self.peak = max(self.peak, sum(size for _, size in self.live.values()))
        return out

    def _release(self, address):
        self.live[address][0] -= 1
        if self.live[address][0] == 0:
            del self.live[address]


@pytest.mark.parametrize("sampling,arrays", [(dict(), 2), (dict(top_k=5, temperature=0.7), 2),
                                             (dict(top_p=0.9, temperature=0.8), 4), (dict(temperature=0), 2)])
def test_the_draw_holds_two_float64_arrays_at_a_time(sampling, arrays, monkeypatch):
    """In place where it can: two float64 chunks alive at once (four with top_p's sort), where the draw
    held six (nine with top_p) before."""
    monkeypatch.setattr(draw, "FLOAT64_BUDGET", 4 * V * 8)
    logits = torch.randn(40, V, generator=torch.Generator().manual_seed(0))
    with LiveArrays() as meter:
        draw.sample_tokens(logits, generator=torch.Generator().manual_seed(0), **sampling)
    assert 0 < meter.peak <= arrays * 4 * V * 8


def test_chunks_are_whole_float64_chunks_when_one_fits(monkeypatch):
    """With the logits' chunk larger than the draw's, it holds a whole number of them: then sample_tokens
    makes the same calls on the random stream as on all the rows at once (on a CUDA generator too)."""
    monkeypatch.setattr(draw, "FLOAT64_BUDGET", 3 * 320 * 8)
    monkeypatch.setattr(draw, "LOGITS_BUDGET", 10 * 320 * 4)
    assert draw._rows_per_chunk(320) == 9  # 10 rows fit, 3 whole chunks of 3
    monkeypatch.setattr(draw, "LOGITS_BUDGET", 2 * 320 * 4)
    assert draw._rows_per_chunk(320) == 2  # fewer than one float64 chunk: as many rows as fit
    monkeypatch.setattr(draw, "LOGITS_BUDGET", 1)
    assert draw._rows_per_chunk(320) == 1  # at least one row


def test_sample_rows_is_sample_tokens_on_the_head_of_every_row(monkeypatch):
    """sample_rows(h, head) draws what sample_tokens(head(h)) draws, chunked or not, at every temperature."""
    net = peaked_net()
    h = torch.randn(50, 16, generator=torch.Generator().manual_seed(0))
    head = draw.Head(net.head, 320)
    monkeypatch.setattr(draw, "LOGITS_BUDGET", 7 * 320 * 4)
    for sampling in (dict(), dict(temperature=0), dict(top_k=5, temperature=1.5), dict(top_p=0.5)):
        rows = draw.sample_rows(h, head, generator=torch.Generator().manual_seed(1), **sampling)
        once = draw.sample_tokens(net.head(h), generator=torch.Generator().manual_seed(1), **sampling)
        assert torch.equal(rows[0], once[0]) and torch.allclose(rows[1], once[1], rtol=1e-5, atol=0)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        draw.sample_rows(h, head, temperature=-1)


def test_a_plain_denoiser_still_samples():
    """The bare contract, net(ids) -> logits: no features, no head, the logits drawn as they come."""
    net = Plain(peaked_net())
    for strategy in ("ancestral", "confidence", "left_to_right"):
        out = sample.generate(net, mask_id=MASK, length=L, steps=8, strategy=strategy, batch_size=2,
                              generator=torch.Generator().manual_seed(0))
        assert out.shape == (2, L) and (out != MASK).all()


class ForwardOnly(nn.Module):
    """A wrapper that offers the net's forward (with all its options) and its cache, not features and head,
    as a counting or timing wrapper does."""

    def __init__(self, net):
        super().__init__()
        self.net, self.cfg = net, net.cfg

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs)

    def new_cache(self, batch_size):
        return self.net.new_cache(batch_size)


@pytest.mark.parametrize("use_cache", [True, False])
def test_a_block_diffusion_model_behind_a_forward_only_wrapper_samples_the_same_tokens(use_cache):
    """Without features and head, the block's logits come from forward (the head at the masks only)."""
    net = peaked_net(block_size=8)
    kwargs = dict(mask_id=MASK, length=L, steps=10, batch_size=B, use_cache=use_cache)
    direct = sample.generate(net, generator=torch.Generator().manual_seed(3), **kwargs)
    wrapped = sample.generate(ForwardOnly(net), generator=torch.Generator().manual_seed(3), **kwargs)
    assert torch.equal(wrapped, direct) and (direct != MASK).all()
