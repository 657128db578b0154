r"""The benchmark's in-run reference: a plain GPT-2-style block stack, timed next to the diffusion step.

To judge the diffusion training step's speed, the benchmark times, in the same run and on the
same card, the plainest model of the same shape that PyTorch makes fast: GPT-2 as nanoGPT
writes it. LayerNorm, learned absolute positions, `F.scaled_dot_product_attention` with no
mask (bidirectional, like the denoiser, so the flash kernel runs), a 4x GELU MLP, no biases,
the token embedding tied to the output head, and the head computed at **every** position
with a plain cross-entropy over all of them. That is more head work than the diffusion loss
does (it runs the head at the masked positions only), so an eager diffusion step should run
at least about as fast as this one (the target is 0.95x).

FLOPs per token, for the MFU column, count the same way as `Transformer.flops_per_token`
with the head at every position: $F = 6 N + 12 \cdot L \cdot H \cdot Q \cdot T$, N the
weights without the learned positions (a lookup), the tied embedding counted once.

References: Radford et al. 2019 (GPT-2); karpathy/nanoGPT (`model.py`).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["PlainGPT", "reference_loss"]


class _Block(nn.Module):
    """Pre-norm block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.ln_1, self.ln_2 = nn.LayerNorm(n_embd, bias=False), nn.LayerNorm(n_embd, bias=False)
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.proj = nn.Linear(n_embd, n_embd, bias=False)
        self.up = nn.Linear(n_embd, 4 * n_embd, bias=False)
        self.down = nn.Linear(4 * n_embd, n_embd, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(C, dim=2)  # (B, T, C) each
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, H, T, Q)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, H, T, Q), no mask: every position sees all
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.down(F.gelu(self.up(self.ln_2(x))))  # (B, T, C)


class PlainGPT(nn.Module):
    """GPT-2's layout at a given shape: `net(ids (B, T)) -> logits (B, T, vocab_size)`, head at every position."""

    def __init__(self, vocab_size: int, n_layer: int, n_head: int, n_embd: int, seq_len: int):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head})")
        self.vocab_size, self.n_layer, self.n_head, self.n_embd, self.seq_len = vocab_size, n_layer, n_head, n_embd, seq_len
        padded = -(-vocab_size // 64) * 64  # rows padded to a multiple of 64, as the denoiser's are
        self.embed = nn.Embedding(padded, n_embd)
        self.positions = nn.Embedding(seq_len, n_embd)
        self.blocks = nn.ModuleList(_Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocab_size) for ids (B, T)."""
        T = idx.shape[1]
        x = self.embed(idx) + self.positions(torch.arange(T, device=idx.device))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return F.linear(self.ln_f(x), self.embed.weight)[..., : self.vocab_size]  # (B, T, V), tied head

    def num_params(self) -> int:
        """Every weight, the tied embedding counted once."""
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self) -> int:
        r"""Training FLOPs per token: $6 N + 12 L H Q T$, N without the learned positions, head at every position."""
        weights = self.num_params() - self.positions.weight.numel()
        return 6 * weights + 12 * self.n_layer * self.n_embd * self.seq_len


def reference_loss(net: PlainGPT, x: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the logits at every position against x (B, T) itself: the reference's training loss."""
    logits = net(x)  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), x.flatten())  # float32 under autocast
