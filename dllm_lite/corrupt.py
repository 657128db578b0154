r"""The forward process of a masked diffusion language model.

A clean sequence $x_0$ is corrupted into $x_t$ by replacing each token, independently,
with the mask token $m$ with probability $1 - \alpha(t)$:

$$ q(x_t^i \mid x_0^i) = \alpha(t)\,[x_t^i = x_0^i] + (1 - \alpha(t))\,[x_t^i = m] $$

$\alpha(t)$ is the *noise schedule*: the probability that a token is still clean at time
$t \in [0, 1]$, with $\alpha(0) = 1$ (nothing masked) and $\alpha(1) = 0$ (everything
masked). The training loss weighs each time by

$$ w(t) = \frac{-\alpha'(t)}{1 - \alpha(t)} $$

which is $1/t$ for the linear schedule. In continuous time the ELBO does not depend on
the schedule at all (change variables to $\alpha$), only the variance of its Monte Carlo
estimate does.

References: Sahoo et al. 2024, "Simple and Effective Masked Diffusion Language Models"
(MDLM), sec. 3; Shi et al. 2024, "Simplified and Generalized Masked Diffusion" (MD4);
Nie et al. 2025, "Large Language Diffusion Models" (LLaDA), eq. 3.
"""

import math
from dataclasses import dataclass
from typing import Callable

import torch

__all__ = ["Schedule", "SCHEDULES", "get_schedule", "sample_times", "corrupt"]


@dataclass(frozen=True)
class Schedule:
    r"""A noise schedule: $\alpha(t)$ and its derivative $\alpha'(t)$, both elementwise on tensors."""

    name: str
    alpha_fn: Callable[[torch.Tensor], torch.Tensor]
    alpha_prime_fn: Callable[[torch.Tensor], torch.Tensor]

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        r"""$\alpha(t)$: the probability that a token is still clean at time t."""
        return self.alpha_fn(torch.as_tensor(t))

    def alpha_prime(self, t: torch.Tensor) -> torch.Tensor:
        r"""$\alpha'(t) = d\alpha/dt$ (negative: tokens only ever get masked as t grows)."""
        return self.alpha_prime_fn(torch.as_tensor(t))

    def mask_prob(self, t: torch.Tensor) -> torch.Tensor:
        r"""$1 - \alpha(t)$: the probability that a token is masked at time t."""
        return 1.0 - self.alpha(t)

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        r"""The ELBO weight $w(t) = -\alpha'(t) / (1 - \alpha(t))$ (infinite at t = 0)."""
        return -self.alpha_prime(t) / (1.0 - self.alpha(t))

    def mean_mask_prob(self) -> float:
        r"""$E_{t \sim U[0,1]}[1 - \alpha(t)] = \int_0^1 (1 - \alpha(t))\,dt$: the share of positions a
        training batch masks on average (1/2 linear, $1 - 2/\pi$ cosine, 1/3 quadratic).

        Computed with the midpoint rule on 100,000 points, in float64.
        """
        n = 100_000
        t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
        return self.mask_prob(t).mean().item()


def _cosine_alpha(t: torch.Tensor) -> torch.Tensor:
    # $\alpha(t) = \cos(\pi t / 2)$, with $\alpha(1)$ pinned to exactly 0
    return torch.where(t >= 1, torch.zeros_like(t), torch.cos(0.5 * math.pi * t))


SCHEDULES: dict[str, Schedule] = {
    # $\alpha(t) = 1 - t$, $\alpha'(t) = -1$, $w(t) = 1/t$
    "linear": Schedule("linear", lambda t: 1.0 - t, lambda t: -torch.ones_like(t)),
    # $\alpha(t) = \cos(\pi t/2)$, $\alpha'(t) = -\frac{\pi}{2}\sin(\pi t/2)$
    "cosine": Schedule("cosine", _cosine_alpha, lambda t: -0.5 * math.pi * torch.sin(0.5 * math.pi * t)),
    # $\alpha(t) = 1 - t^2$: masks slowly at first, then fast
    "quadratic": Schedule("quadratic", lambda t: 1.0 - t * t, lambda t: -2.0 * t),
}


def get_schedule(name: "str | Schedule") -> Schedule:
    """The noise schedule called `name` ("linear", "cosine" or "quadratic"); a Schedule passes through."""
    if isinstance(name, Schedule):
        return name
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}: choose one of {', '.join(sorted(SCHEDULES))}")
    return SCHEDULES[name]


def sample_times(
    batch_size: int,
    antithetic: bool = True,
    eps: float = 1e-3,
    generator: "torch.Generator | None" = None,
    device: "torch.device | str" = "cpu",
) -> torch.Tensor:
    r"""Draw one diffusion time per row, in $[\varepsilon, 1]$, shape (batch_size,).

    With `antithetic=True` the times are low-discrepancy: one uniform offset $u_0$ and
    evenly spaced points, $u_i = (u_0 + i / B) \bmod 1$, so that every batch covers the
    whole interval and the loss estimate has far less variance (MDLM, appendix). Each
    $u_i$ is still marginally uniform, so the estimate stays unbiased. Then
    $t = \varepsilon + (1 - \varepsilon) u$ keeps $w(t)$ finite.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    draw_device = generator.device if generator is not None else device
    if antithetic:
        offset = torch.rand(1, generator=generator, device=draw_device)
        u = (offset + torch.arange(batch_size, device=draw_device) / batch_size) % 1.0
    else:
        u = torch.rand(batch_size, generator=generator, device=draw_device)
    return (eps + (1.0 - eps) * u).to(device)


def corrupt(
    x0: torch.Tensor,
    t: torch.Tensor,
    mask_id: int,
    schedule: "Schedule | str",
    generator: "torch.Generator | None" = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Sample $x_t \sim q(x_t \mid x_0)$: mask each token with probability $1 - \alpha(t)$.

    x0: (B, T) token ids; t: (B,) one time per row (or a scalar for all rows), or (B, T) one
    time per token (block diffusion gives each block its own time).
    Returns `(xt, is_masked)`, both (B, T): the corrupted ids and a boolean tensor that is
    True where a token was replaced by `mask_id`. Unmasked positions are unchanged.
    The uniform numbers are drawn on the generator's device (the data's device when no
    generator is given), so a seeded generator gives the same mask on every run.
    """
    schedule = get_schedule(schedule)
    t = torch.as_tensor(t, dtype=torch.float32)
    t = t if t.dim() == 2 else t.reshape(-1, 1)  # (B, T), or (B, 1) / (1, 1) for a time per row
    p_mask = schedule.mask_prob(t).to(x0.device)  # (B, T) or (B, 1)
    draw_device = generator.device if generator is not None else x0.device
    u = torch.rand(x0.shape, generator=generator, device=draw_device).to(x0.device)  # (B, T)
    is_masked = u < p_mask
    xt = torch.where(is_masked, torch.full_like(x0, mask_id), x0)
    return xt, is_masked
