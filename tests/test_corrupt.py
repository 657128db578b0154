import math

import pytest
import torch

from dllm_lite import corrupt


@pytest.mark.parametrize("name", sorted(corrupt.SCHEDULES))
def test_schedule_endpoints_and_derivative(name):
    sched = corrupt.get_schedule(name)
    assert sched.alpha(torch.tensor(0.0)).item() == pytest.approx(1.0)
    assert sched.alpha(torch.tensor(1.0)).item() == pytest.approx(0.0, abs=1e-7)
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    h = 1e-6
    numeric = (sched.alpha(t + h) - sched.alpha(t - h)) / (2 * h)
    assert torch.allclose(sched.alpha_prime(t), numeric, atol=1e-6)
    assert torch.all(sched.alpha_prime(t) < 0)
    assert torch.allclose(sched.weight(t), -sched.alpha_prime(t) / (1 - sched.alpha(t)))


def test_linear_weight_is_one_over_t():
    t = torch.tensor([0.01, 0.25, 0.5, 1.0])
    assert torch.allclose(corrupt.get_schedule("linear").weight(t), 1 / t)


def test_cosine_alpha_values():
    sched = corrupt.get_schedule("cosine")
    assert sched.alpha(torch.tensor(0.5)).item() == pytest.approx(math.cos(math.pi / 4))


def test_unknown_schedule_lists_valid_names():
    with pytest.raises(ValueError, match="cosine.*linear"):
        corrupt.get_schedule("sigmoid")


def test_sample_times_range_and_antithetic_spacing():
    g = torch.Generator().manual_seed(0)
    t = corrupt.sample_times(8, antithetic=True, eps=1e-3, generator=g)
    assert t.shape == (8,) and t.min() >= 1e-3 and t.max() <= 1.0
    u = torch.sort((t - 1e-3) / (1 - 1e-3)).values
    gaps = torch.diff(u)
    assert torch.allclose(gaps, torch.full_like(gaps, 1 / 8), atol=1e-5)  # one offset, even spacing
    plain = corrupt.sample_times(1000, antithetic=False, generator=g)
    assert 0.45 < plain.mean().item() < 0.55
    with pytest.raises(ValueError, match="batch_size"):
        corrupt.sample_times(0)


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_corrupt_masks_at_rate_one_minus_alpha(name, t):
    sched = corrupt.get_schedule(name)
    x0 = torch.randint(0, 10, (64, 512), generator=torch.Generator().manual_seed(1))
    xt, is_masked = corrupt.corrupt(x0, torch.full((64,), t), 10, sched, generator=torch.Generator().manual_seed(2))
    expected = 1 - sched.alpha(torch.tensor(t)).item()
    n = x0.numel()
    assert abs(is_masked.float().mean().item() - expected) < 5 * math.sqrt(expected * (1 - expected) / n)
    assert torch.equal(xt[~is_masked], x0[~is_masked])  # unmasked positions unchanged
    assert torch.all(xt[is_masked] == 10)


def test_corrupt_per_row_times_and_extremes():
    x0 = torch.randint(0, 10, (3, 1000))
    xt, is_masked = corrupt.corrupt(x0, torch.tensor([0.0, 0.5, 1.0]), 10, "linear")
    assert is_masked[0].sum() == 0  # alpha(0) = 1: nothing masked
    assert is_masked[2].all()  # alpha(1) = 0: everything masked
    assert 400 < is_masked[1].sum() < 600


def test_corrupt_is_deterministic_under_a_seed():
    x0 = torch.randint(0, 10, (4, 50))
    t = torch.rand(4)
    a = corrupt.corrupt(x0, t, 10, "cosine", generator=torch.Generator().manual_seed(5))
    b = corrupt.corrupt(x0, t, 10, "cosine", generator=torch.Generator().manual_seed(5))
    c = corrupt.corrupt(x0, t, 10, "cosine", generator=torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
