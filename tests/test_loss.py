"""The ELBO is checked against an exact enumeration, independent of the library's own."""

import math
from itertools import product

import pytest
import torch
import torch.nn as nn

from conftest import tiny_net
from dllm_lite import loss
from dllm_lite.corrupt import get_schedule


class Uniform(nn.Module):
    """Predicts the uniform distribution over the V real tokens, whatever the input."""

    def __init__(self, vocab_size, causal=False):
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, idx, only_at=None):
        logits = torch.zeros(*idx.shape, self.vocab_size)
        logits[..., -1] = float("-inf")
        return logits[only_at] if only_at is not None else logits


def enumerated_nelbo(net, x0, mask_id):
    """sum over non-empty M of 1/(|M| C(L,|M|)) sum_{i in M} -log p(x0_i | x0 with M masked), per token."""
    L = len(x0)
    total = 0.0
    for bits in product([False, True], repeat=L):
        k = sum(bits)
        if k == 0:
            continue
        m = torch.tensor(bits)
        xt = torch.where(m, torch.tensor(mask_id), x0)
        logp = torch.log_softmax(net(xt[None])[0].double(), dim=-1)
        total += sum(-logp[i, x0[i]].item() for i in range(L) if bits[i]) / (k * math.comb(L, k))
    return total / L


@pytest.fixture
def peaked_net():
    return tiny_net(vocab_size=5, seq_len=6, scale=30.0)  # far from uniform, so the test has teeth


def test_exact_nelbo_matches_the_enumeration(peaked_net):
    x0 = torch.tensor([0, 1, 2, 3, 1, 0])
    expected = enumerated_nelbo(peaked_net, x0, 4)
    assert loss.exact_nelbo(peaked_net, x0, 4) == pytest.approx(expected, rel=1e-5)
    assert abs(expected - math.log(4)) > 0.1  # the peaked net is clearly not uniform


@pytest.mark.parametrize("schedule", ["linear", "cosine", "quadratic"])
def test_nll_bound_agrees_with_the_exact_nelbo(peaked_net, schedule):
    x0 = torch.tensor([[0, 1, 2, 3, 1, 0]])
    exact = enumerated_nelbo(peaked_net, x0[0], 4)
    g = torch.Generator().manual_seed(0)
    mean, stderr = loss.nll_bound(peaked_net, x0, schedule, 4, n_samples=8192, generator=g,
                                  batch_size=4096, return_stderr=True)
    assert stderr < 0.03 * exact
    assert abs(mean - exact) < 4 * stderr + 2e-3 * exact  # MC error, plus the O(eps) left out near t = 0


def test_diffusion_loss_is_unbiased(peaked_net):
    x0 = torch.tensor([[0, 1, 2, 3, 1, 0]]).repeat(2048, 1)
    exact = enumerated_nelbo(peaked_net, x0[0], 4)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        estimates = torch.tensor([loss.diffusion_loss(peaked_net, x0, "cosine", 4, generator=g).item() for _ in range(4)])
    assert abs(estimates.mean().item() - exact) < 0.03 * exact


def test_uniform_predictor_has_bound_log_v():
    net = Uniform(vocab_size=9)
    x0 = torch.randint(0, 8, (1, 5))
    assert loss.exact_nelbo(net, x0[0], 8) == pytest.approx(math.log(8), rel=1e-6)
    mean, stderr = loss.nll_bound(net, x0, "linear", 8, n_samples=4096, generator=torch.Generator().manual_seed(0),
                                  return_stderr=True)
    assert abs(mean - math.log(8)) < 4 * stderr
    assert loss.ar_loss(net, torch.randint(0, 8, (2, 7)), 8).item() == pytest.approx(math.log(8))


def test_masked_head_loss_equals_full_head_loss():
    net = tiny_net(vocab_size=13, seq_len=16)

    class FullHead(nn.Module):  # computes every logit, then picks the masked ones
        def forward(self, idx, only_at=None):
            return net(idx)[only_at]

    x0 = torch.randint(0, 12, (8, 16))
    for weighting in loss.WEIGHTINGS:
        a = loss.diffusion_loss(net, x0, "linear", 12, generator=torch.Generator().manual_seed(3), weighting=weighting)
        b = loss.diffusion_loss(FullHead(), x0, "linear", 12, generator=torch.Generator().manual_seed(3),
                                weighting=weighting)
        assert a.item() == pytest.approx(b.item(), rel=1e-5)


def test_weightings_differ_and_reject_unknown():
    net = tiny_net(vocab_size=13, seq_len=16)
    x0 = torch.randint(0, 12, (8, 16))
    elbo = loss.diffusion_loss(net, x0, "linear", 12, generator=torch.Generator().manual_seed(0))
    mean = loss.diffusion_loss(net, x0, "linear", 12, generator=torch.Generator().manual_seed(0), weighting="mean")
    assert elbo.item() != pytest.approx(mean.item())
    with pytest.raises(ValueError, match="elbo"):
        loss.diffusion_loss(net, x0, "linear", 12, weighting="unit")


def test_diffusion_loss_backpropagates():
    net = tiny_net(vocab_size=13, seq_len=16).train()
    value = loss.diffusion_loss(net, torch.randint(0, 12, (4, 16)), get_schedule("cosine"), 12)
    value.backward()
    assert net.embed.weight.grad is not None and torch.isfinite(net.embed.weight.grad).all()


def test_ar_loss_scores_every_token_after_a_bos():
    net = tiny_net(vocab_size=13, seq_len=16, causal=True)
    x = torch.randint(0, 12, (3, 16))
    inputs = torch.cat([torch.full((3, 1), 12), x[:, :-1]], dim=1)  # [bos = mask id, x_0 .. x_14]
    logp = torch.log_softmax(net(inputs), dim=-1)  # (3, 16, V)
    manual = -logp.gather(-1, x[:, :, None]).mean()  # all 16 targets, the first one included
    assert loss.ar_loss(net, x, 12).item() == pytest.approx(manual.item(), rel=1e-6)
    first = -logp[:, 0].gather(-1, x[:, :1]).mean()  # the context-free first token is part of it
    assert first.item() > 0


def test_ar_loss_of_a_uniform_model_is_log_v():
    x = torch.randint(0, 12, (4, 10))
    assert loss.ar_loss(Uniform(13), x, 12).item() == pytest.approx(math.log(12), rel=1e-6)


class PlainDenoiser(nn.Module):
    """A student's own denoiser: ids (B, L) -> logits (B, L, V), nothing else (no only_at, no cfg)."""

    def __init__(self, vocab_size=13, seq_len=16, width=32):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.positions = nn.Parameter(torch.randn(seq_len, width) * 0.1)
        self.mix = nn.TransformerEncoderLayer(width, nhead=2, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.out = nn.Linear(width, vocab_size)
        self.vocab_size = vocab_size

    def forward(self, idx):
        logits = self.out(self.mix(self.embed(idx) + self.positions[: idx.shape[1]]))  # (B, L, V)
        return logits.masked_fill(torch.arange(self.vocab_size) == self.vocab_size - 1, float("-inf"))


def test_a_plain_module_trains_is_bounded_and_samples():
    torch.manual_seed(0)
    net = PlainDenoiser()

    class OnlyAt(nn.Module):  # the same net with the optional fast path: the numbers must not change
        def forward(self, idx, only_at=None):
            return net(idx) if only_at is None else net(idx)[only_at]

    x0 = torch.arange(16).remainder(12).repeat(8, 1)  # (8, 16): one sequence to memorise
    for weighting in loss.WEIGHTINGS:
        plain = loss.diffusion_loss(net, x0, "linear", 12, torch.Generator().manual_seed(1), weighting)
        fast = loss.diffusion_loss(OnlyAt(), x0, "linear", 12, torch.Generator().manual_seed(1), weighting)
        assert plain.item() == pytest.approx(fast.item(), rel=1e-6)
    g = torch.Generator().manual_seed(2)
    before = loss.nll_bound(net, x0[:2], "linear", 12, n_samples=32, generator=g)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    for step in range(60):
        optimizer.zero_grad()
        loss.diffusion_loss(net, x0, "linear", 12, torch.Generator().manual_seed(step)).backward()
        optimizer.step()
    after = loss.nll_bound(net, x0[:2], "linear", 12, n_samples=32, generator=g)
    assert after < before - 0.5, (before, after)
    from dllm_lite import sample

    ids = sample.generate(net.eval(), mask_id=12, length=16, steps=8, generator=torch.Generator().manual_seed(0))
    assert ids.shape == (1, 16) and (ids != 12).all()


def test_only_at_is_found_through_compile_and_used():
    net = tiny_net(vocab_size=13, seq_len=16)
    seen = []

    class Spy(nn.Module):
        def forward(self, idx, only_at=None):
            seen.append(only_at is not None)
            return net(idx, only_at=only_at)

    loss.masked_logits(Spy(), torch.zeros(2, 16, dtype=torch.long), torch.rand(2, 16) < 0.5)
    loss.masked_logits(torch.compile(Spy(), backend="eager"), torch.zeros(2, 16, dtype=torch.long),
                       torch.rand(2, 16) < 0.5)
    assert seen == [True, True]


def test_exact_nelbo_refuses_long_sequences():
    with pytest.raises(ValueError, match="nll_bound"):
        loss.exact_nelbo(Uniform(5), torch.zeros(20, dtype=torch.long), 4)


def test_ar_loss_per_row_is_each_rows_own_loss_from_one_pass():
    net = tiny_net(vocab_size=7, seq_len=10, causal=True)
    x = torch.randint(0, 6, (3, 10), generator=torch.Generator().manual_seed(0))
    rows = loss.ar_loss(net, x, 6, per_row=True)
    assert rows.shape == (3,)
    assert torch.allclose(rows, torch.stack([loss.ar_loss(net, x[i : i + 1], 6) for i in range(3)]), atol=1e-6)
    assert torch.allclose(rows.mean(), loss.ar_loss(net, x, 6), atol=1e-6)
