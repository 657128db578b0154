r"""Muon: momentum, then orthogonalise the update of each weight matrix (Jordan et al. 2024).

AdamW scales every coordinate of the gradient on its own. For a weight matrix $W$ (out × in)
Muon instead takes the momentum $M$ of its gradient and replaces it with the nearest
semi-orthogonal matrix: with the SVD $M = U S V^\top$, the update is $U V^\top$, every singular
value set to 1. Directions that the gradient barely touches get as large a step as the
dominant ones, which is why it learns faster per step than AdamW on the hidden matrices of a
transformer.

$U V^\top$ is computed without an SVD, by a few Newton–Schulz steps on $X_0 = M / \|M\|_F$
(so every singular value starts in (0, 1]):

    $A = X X^\top, \quad X \leftarrow a X + (b A + c A^2) X$

an odd polynomial of $X$ that pushes each singular value towards 1 (with Jordan's
coefficients, into roughly [0.7, 1.2] after 5 steps, which trains as well as exactly 1).

Only 2-D hidden matrices belong to Muon. The embedding (a lookup table, also the tied output
head here) and the norms' gains follow AdamW, inside the same optimiser: `build_optimizer`
sorts the parameters.

    optimizer = build_optimizer(net, "muon", lr=3e-3, weight_decay=0.01)
    loss.backward(); optimizer.step()
"""

import math

import torch

__all__ = ["Muon", "build_optimizer", "orthogonalize", "NS_COEFFICIENTS"]

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # Jordan's quintic: steep at 0, so 5 steps suffice


def orthogonalize(m: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """The nearest semi-orthogonal matrix to m, approximately, by Newton–Schulz steps.

    m is one matrix (r, c) or a stack of matrices of one shape (k, r, c), each orthogonalised on
    its own: a stack costs one batched product per step instead of k small ones. Works in
    bfloat16 on CUDA (fast, and accurate enough) and in float32 elsewhere (CPUs without
    bfloat16 units run it many times slower).
    """
    if m.ndim not in (2, 3):
        raise ValueError(f"orthogonalize needs a 2-D matrix or a 3-D stack of them, got shape {tuple(m.shape)}")
    a, b, c = NS_COEFFICIENTS
    x = m.to(torch.bfloat16 if m.is_cuda else torch.float32)
    x = x if m.ndim == 3 else x.unsqueeze(0)  # (k, r, c)
    wide = x.shape[-2] <= x.shape[-1]
    if not wide:  # work on the side with fewer rows: A = X X^T is then the small square
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + eps)  # singular values now at most 1
    for _ in range(steps):
        A = x @ x.mT  # (k, r, r)
        B = torch.baddbmm(A, A, A, beta=b, alpha=c)  # b A + c A^2
        x = torch.baddbmm(x, B, x, beta=a)  # a X + B X
    x = x if wide else x.mT
    return (x if m.ndim == 3 else x.squeeze(0)).to(m.dtype)


class Muon(torch.optim.Optimizer):
    r"""Muon for the hidden matrices and AdamW for the rest, in one optimiser (one state, one schedule).

    Each parameter group says which rule it follows with `use_muon` (see `build_optimizer`).
    For a matrix W (out × in) in a Muon group, with gradient G:

        $M \leftarrow \mu M + (1 - \mu) G$, $\quad U = \mathrm{orth}(G + \mu (M - G))$ (Nesterov)
        $W \leftarrow (1 - \eta \lambda) W - \eta \cdot 0.2 \sqrt{\max(out, in)} \cdot U$

    The factor $0.2\sqrt{\max(out, in)}$ gives the update the root-mean-square size of a typical
    AdamW update, so one learning rate $\eta$ suits both rules (a group's own `lr` can still
    differ). The other groups take AdamW's step: bias-corrected moments $m, v$ and
    $W \leftarrow (1 - \eta \lambda) W - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)$.
    """

    def __init__(self, params, lr: float = 3e-3, momentum: float = 0.95, betas=(0.9, 0.95), eps: float = 1e-8,
                 weight_decay: float = 0.0, ns_steps: int = 5):
        if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0 or ns_steps < 1:
            raise ValueError(f"Muon needs lr > 0, 0 <= momentum < 1, weight_decay >= 0 and ns_steps >= 1; got "
                             f"lr={lr}, momentum={momentum}, weight_decay={weight_decay}, ns_steps={ns_steps}")
        defaults = dict(lr=lr, momentum=momentum, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        ns_steps=ns_steps, use_muon=True)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if group["use_muon"] and p.ndim != 2:
                    raise ValueError(f"Muon's rule takes only 2-D weight matrices, got a parameter of shape "
                                     f"{tuple(p.shape)}; put it in a group with use_muon=False (AdamW)")

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, decay = group["lr"], group["weight_decay"]
            params = [p for p in group["params"] if p.grad is not None]
            if group["use_muon"]:
                updates = self._muon_updates(params, group)
                scales = [0.2 * math.sqrt(max(p.shape)) for p in params]
            else:
                updates = [self._adamw_update(p, group) for p in params]
                scales = [1.0] * len(params)
            for p, update, scale in zip(params, updates, scales):
                p.mul_(1 - lr * decay)
                p.add_(update, alpha=-lr * scale)
        return loss

    def _muon_updates(self, params, group) -> list:
        """The orthogonalised Nesterov momentum of each matrix. Matrices of one shape (the same
        layer in every block) are orthogonalised together, as one stack of batched matrix products,
        which is faster than one matrix at a time (measured in benchmarks/RESULTS.md)."""
        mu, ahead = group["momentum"], []
        for p in params:
            state = self.state[p]
            if "momentum" not in state:
                state["momentum"] = torch.zeros_like(p)
            state["momentum"].lerp_(p.grad, 1 - mu)  # (out, in)
            ahead.append(p.grad.lerp(state["momentum"], mu))  # Nesterov: one step ahead
        updates, by_shape = [None] * len(params), {}
        for i, p in enumerate(params):
            by_shape.setdefault(tuple(p.shape), []).append(i)
        for indices in by_shape.values():
            stack = orthogonalize(torch.stack([ahead[i] for i in indices]), group["ns_steps"])  # (k, out, in)
            for i, update in zip(indices, stack):
                updates[i] = update
        return updates

    def _adamw_update(self, p, group) -> torch.Tensor:
        state, (beta1, beta2) = self.state[p], group["betas"]
        if "step" not in state:
            state["step"], state["exp_avg"], state["exp_avg_sq"] = 0, torch.zeros_like(p), torch.zeros_like(p)
        state["step"] += 1
        state["exp_avg"].lerp_(p.grad, 1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
        m_hat = state["exp_avg"] / (1 - beta1 ** state["step"])
        v_hat = state["exp_avg_sq"] / (1 - beta2 ** state["step"])
        return m_hat / (v_hat.sqrt() + group["eps"])


def build_optimizer(net: torch.nn.Module, name: str, lr: float, weight_decay: float, betas=(0.9, 0.95),
                    fused: bool = False, muon_lr: "float | None" = None) -> torch.optim.Optimizer:
    """The optimiser of a Transformer: name "adamw" (torch.optim.AdamW) or "muon" (`Muon`).

    Weight decay applies to every matrix (the embedding included), never to vectors (norm gains).
    With "muon", the 2-D matrices inside the blocks follow Muon's rule, and the embedding (a lookup
    table, and the tied output head), the convolution taps (`model.LocalMix`) and the vectors
    AdamW's. fused: AdamW's fused CUDA kernel.
    muon_lr: Muon's own learning rate (None: lr). Every group carries `lr_scale`, its learning
    rate over `lr`, so a schedule sets `group["lr"] = lr_now * group["lr_scale"]`.
    """
    matrices = [p for p in net.parameters() if p.ndim >= 2]  # weight matrices and the embedding
    vectors = [p for p in net.parameters() if p.ndim < 2]  # norm gains
    in_blocks = {id(p) for n, p in net.named_parameters() if n.startswith("blocks.")}
    blocks = [p for p in matrices if id(p) in in_blocks and p.ndim == 2]  # Muon's, with "muon"
    muon_ids = {id(p) for p in blocks}
    other_matrices = [p for p in matrices if id(p) not in muon_ids]  # the embedding (and positions, conv taps)
    if name == "adamw":
        if muon_lr is not None:
            raise ValueError("muon_lr is set but the optimizer is 'adamw'; drop muon_lr or use 'muon'")
        return torch.optim.AdamW([{"params": matrices, "weight_decay": weight_decay, "lr_scale": 1.0},
                                  {"params": vectors, "weight_decay": 0.0, "lr_scale": 1.0}],
                                 lr=lr, betas=betas, **({"fused": True} if fused else {}))
    if name == "muon":
        scale = 1.0 if muon_lr is None else muon_lr / lr
        return Muon([{"params": blocks, "use_muon": True, "weight_decay": weight_decay, "lr": lr * scale,
                      "lr_scale": scale},
                     {"params": other_matrices, "use_muon": False, "weight_decay": weight_decay, "lr_scale": 1.0},
                     {"params": vectors, "use_muon": False, "weight_decay": 0.0, "lr_scale": 1.0}], lr=lr, betas=betas)
    raise ValueError(f"unknown optimizer {name!r}; use 'adamw' or 'muon'")
