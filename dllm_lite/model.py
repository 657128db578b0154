r"""The denoiser: a small modern Transformer, bidirectional for diffusion, causal for the AR baseline.

A masked diffusion model needs a network $p_\theta(x_0 \mid x_t)$ that looks at a
partly masked sequence and predicts, at every position, a distribution over the real
tokens. That is a Transformer *encoder*: the same blocks as GPT-2, with the causal mask
removed so that every position sees the whole sequence. Setting `causal=True` puts the
mask back and gives a GPT, the autoregressive baseline, with the same weights shape.

Choices, each a common one in current language models:
- pre-norm blocks with RMSNorm, no biases anywhere;
- rotary position embeddings (RoPE, Su et al. 2021). They matter more here than in a GPT:
  a causal model can count positions through its mask, a bidirectional one sees a
  permutation-invariant set of tokens unless positions are encoded, and with learned
  absolute embeddings a small denoiser was seen stuck at the unigram entropy for minutes;
- `F.scaled_dot_product_attention` with no attention mask in the bidirectional case, so
  that the flash kernel runs on a GPU;
- input and output embeddings tied, with the rows padded to a multiple of 64;
- SUBS parameterisation (MDLM, sec. 3.2): the [MASK] logit is $-\infty$, so the model never
  predicts the mask token. The mask id is always the last real id, `vocab_size - 1`;
- optionally (`conv`), a short depthwise convolution in front of attention and of the MLP
  (`LocalMix`, after the "canon layers" of Allen-Zhu 2025): a direct path to the neighbours,
  which the character config turns on.

References: Radford et al. 2019 (GPT-2); Su et al. 2021 (RoFormer); Sahoo et al. 2024
(MDLM); Nie et al. 2025 (LLaDA); Allen-Zhu 2025 (Physics of Language Models 4.1, canon
layers); karpathy/nanoGPT for the layout.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.constants import SAFETENSORS_SINGLE_FILE
from safetensors.torch import load_model
from torch.utils.checkpoint import checkpoint

try:  # FlexAttention (PyTorch >= 2.5): block-sparse masks, used for block diffusion's training pass on a GPU
    from torch.nn.attention.flex_attention import BlockMask, flex_attention
except ImportError:  # an older PyTorch: boolean masks in SDPA only
    BlockMask = flex_attention = None

__all__ = ["Denoiser", "ModelConfig", "Transformer", "KVCache", "LocalMix"]


class Denoiser(Protocol):
    """The contract every loss, bound, sampler and exercise checker of dllm_lite relies on.

    Required, and all that is required: called on token ids (B, T), a LongTensor that may
    hold the mask id, a denoiser returns logits (B, T, V) over the vocabulary (any float
    dtype). A student's own `nn.Module` with that `forward` works everywhere.

    Optional speed-ups that the library's `Transformer` offers and uses when present:
    - `net(ids, only_at=is_masked)` returns logits only where the boolean (B, T) is True,
      (N, V) in row-major order; the losses pass it only to a net whose `forward` has an
      `only_at` parameter (and still accept (B, T, V) back);
    - `net.cfg.seq_len` bounds the length `sample.generate` allows, and `net.cfg.causal`
      marks an autoregressive model, sampled left to right;
    - `net.new_cache(batch_size)` and `net(ids, cache=...)`: key/value-cached decoding.
    """

    def __call__(self, ids: torch.Tensor) -> torch.Tensor: ...


@dataclass
class ModelConfig:
    """The shape of the network; `vocab_size` includes the mask token (mask_id = vocab_size - 1)."""

    vocab_size: int
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    seq_len: int = 256
    causal: bool = False  # False: diffusion denoiser; True: GPT-style autoregressive baseline
    dropout: float = 0.0
    position: str = "rotary"  # "rotary" or "learned" (absolute embeddings, for comparison)
    rope_base: float = 10000.0
    mlp_ratio: int = 4
    conv: int = 0  # width of a depthwise convolution over neighbours before attention and MLP (0: none)
    pad_vocab_to: int = 64  # embedding rows padded to a multiple of this
    activation_checkpointing: bool = False  # recompute blocks in backward: less memory, ~30% more time
    init_std: float = 0.02  # std of the normal init of the weight matrices (GPT-2's value)
    embed_init_std: float = 0.02  # std of the token embedding init (tied: also the output head)
    block_size: "int | None" = None  # block diffusion (block.py): trained and sampled in blocks of this many

    def __post_init__(self):
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if (self.n_embd // self.n_head) % 2 != 0 and self.position == "rotary":
            raise ValueError(f"rotary embeddings need an even head size, got {self.n_embd // self.n_head}")
        if self.position not in ("rotary", "learned"):
            raise ValueError(f"position must be 'rotary' or 'learned', got {self.position!r}")
        for name in ("vocab_size", "n_layer", "n_head", "n_embd", "seq_len", "mlp_ratio"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("init_std", "embed_init_std"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.conv < 0 or (self.conv % 2 == 0 and self.conv > 0 and not self.causal):
            raise ValueError(f"conv must be 0 (none) or, for the bidirectional denoiser, an odd width such as 3 "
                             f"(the window is centred), got {self.conv}")
        if self.block_size is not None:
            if self.causal or self.conv or not 1 <= self.block_size <= self.seq_len or self.seq_len % self.block_size:
                raise ValueError(f"block_size must divide seq_len={self.seq_len}, and a block model is neither causal "
                                 f"nor has conv; got block_size={self.block_size}, causal={self.causal}, "
                                 f"conv={self.conv}")

    @property
    def mask_id(self) -> int:
        """The id of the [MASK] token: always the last one."""
        return self.vocab_size - 1

    @property
    def head_dim(self) -> int:
        """Width of one attention head: n_embd / n_head."""
        return self.n_embd // self.n_head


def rotary_tables(seq_len: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""cos and sin of the rotation angles $\theta_{p,j} = p \cdot base^{-2j/d}$, each (seq_len, head_dim/2)."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # (D/2,)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)  # (T, D/2)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    r"""Rotate each pair $(x_j, x_{j+D/2})$ by its angle: x (..., T, D), e.g. (B, H, T, D), cos/sin (T, D/2)."""
    x1, x2 = x.float().chunk(2, dim=-1)  # (..., T, D/2) each
    rotated = torch.empty(x.shape, dtype=torch.float32, device=x.device)  # (..., T, D), written in halves
    rotated[..., : x1.shape[-1]] = x1 * cos - x2 * sin
    rotated[..., x1.shape[-1] :] = x1 * sin + x2 * cos
    return rotated.type_as(x)


class KVCache:
    """Keys and values of the tokens seen so far, per layer, for fast autoregressive decoding
    (and, with `conv`, the inputs of the blocks' convolutions, which read earlier positions too)."""

    def __init__(self, cfg: ModelConfig, batch_size: int, device, dtype=torch.float32):
        shape = (batch_size, cfg.n_head, cfg.seq_len, cfg.head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.mix_inputs = None  # with conv: per layer, the inputs of the block's two convolutions
        if cfg.conv:
            self.mix_inputs = [[torch.zeros(batch_size, cfg.seq_len, cfg.n_embd, device=device, dtype=dtype)
                                for _ in range(2)] for _ in range(cfg.n_layer)]
        self.length = 0  # how many positions are filled
        self.seen_to = 0  # new queries also see the stored positions up to here (a bidirectional model's suffix)

    def remember(self, layer: int, which: int, h: torch.Tensor, reach: int) -> tuple[torch.Tensor, int]:
        """Store the convolution input h (B, T_new, C) after the filled part; return the window (B, W, C) the
        convolution reads (a view: `reach` inputs before h, h, those up to `seen_to`) and h's start in it."""
        start, end = self.length, self.length + h.shape[1]
        self.mix_inputs[layer][which][:, start:end] = h
        first = max(start - reach, 0)
        return self.mix_inputs[layer][which][:, first : max(end, self.seen_to)], start - first

    def attend(self, layer: int, k: torch.Tensor, v: torch.Tensor, causal: bool):
        """Write k, v (B, H, T, D) just after the filled part (nothing concatenated: the buffers hold seq_len
        positions) and return what the T new queries attend to, (keys, values, attn_mask, is_causal), views
        (B, H, past + T, D). Until `advance`, the next call overwrites them (block diffusion denoising a
        block). A causal query i sees the cache and the new keys up to itself; a single new query sees all,
        so it gets no mask (a mask whose key length grows every call keeps a GPU's fast kernels out)."""
        past, end = self.length, self.length + k.shape[2]
        self.keys[layer][:, :, past:end] = k
        self.values[layer][:, :, past:end] = v
        mask, is_causal = None, causal and past == 0 and k.shape[2] > 1
        if causal and past > 0 and k.shape[2] > 1:
            mask = torch.ones(k.shape[2], end, dtype=torch.bool, device=k.device).tril(diagonal=past)  # (T, past + T)
        end = end if causal else max(end, self.seen_to)  # a bidirectional query also sees a stored suffix
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end], mask, is_causal

    def advance(self, n: int) -> None:
        """The n positions just written are final (Transformer.features calls it)."""
        self.length += n


_COMPILED_FLEX = []


def _flex(device_type: str):
    """flex_attention, compiled once on a GPU (where its fused kernel is the point), as it is elsewhere."""
    if device_type != "cuda":
        return flex_attention
    if not _COMPILED_FLEX:
        _COMPILED_FLEX.append(torch.compile(flex_attention))
    return _COMPILED_FLEX[0]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=False)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)

    def forward(self, x, cos, sin, cache: "KVCache | None" = None, layer: int = 0, attn_mask=None):
        B, T, C = x.shape
        H, D = self.cfg.n_head, self.cfg.head_dim
        qk, v = self.qkv(x).view(B, T, 3, H, D).permute(2, 0, 3, 1, 4).split([2, 1])  # (2, B, H, T, D), (1, ...)
        if cos is not None:  # q and k rotated as one tensor: half the kernel launches of a one-token decode call
            qk = apply_rotary(qk, cos, sin)
        (q, k), v = qk, v[0]  # each (B, H, T, D)
        mask, is_causal = attn_mask, self.cfg.causal and attn_mask is None
        if cache is not None:  # k, v (B, H, past + T, D): views of the cache's buffers, the new ones written in
            k, v, cache_mask, is_causal = cache.attend(layer, k, v, self.cfg.causal)
            mask = cache_mask if cache_mask is not None else mask
        dropout = self.cfg.dropout if self.training else 0.0
        if BlockMask is not None and isinstance(mask, BlockMask):  # a block-sparse mask: skip the empty tiles
            y = _flex(q.device.type)(q, k, v, block_mask=mask)
        else:  # bidirectional: no mask at all, so the flash kernel can run
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=dropout)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.up = nn.Linear(cfg.n_embd, cfg.mlp_ratio * cfg.n_embd, bias=False)
        self.down = nn.Linear(cfg.mlp_ratio * cfg.n_embd, cfg.n_embd, bias=False)

    def forward(self, x):
        return self.down(F.gelu(self.up(x), approximate="tanh"))


class LocalMix(nn.Module):
    r"""A short depthwise convolution along the sequence, in residual form: $h_i + \sum_k w_k \odot h_{i+k}$.

    Each channel mixes its own values at nearby positions, with one learned weight per channel
    and offset: k in [-(width-1)/2, (width-1)/2] for the bidirectional denoiser, k in
    [-(width-1), 0] for a causal model (it must not look ahead). Positions past the ends count
    as zero. The weights start at zero, so a new block computes exactly what it would without.
    Attention could learn to read the neighbours too, but a character model leans on them so
    much that giving them a direct path is cheap help (`configs/shakespeare_char.yaml`).
    """

    def __init__(self, n_embd: int, width: int, causal: bool):
        super().__init__()
        self.offsets = list(range(-(width - 1), 1) if causal else range(-(width // 2), width // 2 + 1))
        self.weight = nn.Parameter(torch.zeros(len(self.offsets), 1, n_embd))  # (K, 1, C): a tap per offset

    def forward(self, h: torch.Tensor, window: "torch.Tensor | None" = None, start: int = 0) -> torch.Tensor:
        """h (B, T, C); window (B, W, C): when decoding with a cache, the stored inputs around h with h
        itself at `start` (`KVCache.remember`), read in place of h."""
        T = h.shape[1]
        if window is not None:
            h = window  # (B, W, C)
        out, n = h, h.shape[1]
        for k, w in zip(self.offsets, self.weight):
            if k > 0:  # position i reads i + k
                shifted = F.pad(h[:, k:], (0, 0, 0, min(k, n)))
            elif k < 0:  # position i reads i - |k|
                shifted = F.pad(h[:, : max(n + k, 0)], (0, 0, min(-k, n), 0))
            else:
                shifted = h
            out = out + w * shifted
        return out[:, start : start + T]


class Block(nn.Module):
    """x + Attention(Norm(x)), then x + MLP(Norm(x)); with `conv`, each Norm(x) first passes a LocalMix."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1 = nn.RMSNorm(cfg.n_embd)
        self.attn = Attention(cfg)
        self.norm2 = nn.RMSNorm(cfg.n_embd)
        self.mlp = MLP(cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        # optional short convolutions on the normalised inputs of attention and of the MLP
        self.mix = nn.ModuleList([LocalMix(cfg.n_embd, cfg.conv, cfg.causal) for _ in range(2)]) if cfg.conv else None

    def _mixed(self, h, which: int, cache, layer: int):
        if self.mix is None:
            return h
        if cache is None:
            return self.mix[which](h)
        window, start = cache.remember(layer, which, h, reach=-self.mix[which].offsets[0])
        return self.mix[which](h, window, start)

    def forward(self, x, cos, sin, cache=None, layer=0, attn_mask=None):
        h = self._mixed(self.norm1(x), 0, cache, layer)
        x = x + self.dropout(self.attn(h, cos, sin, cache, layer, attn_mask))
        return x + self.dropout(self.mlp(self._mixed(self.norm2(x), 1, cache, layer)))


class Transformer(nn.Module, PyTorchModelHubMixin, library_name="dllm_lite"):
    """The denoiser $p_\\theta(x_0 \\mid x_t)$ (causal=False) or a GPT (causal=True).

    `net(idx)` maps ids (B, T) to logits (B, T, vocab_size); the mask token's logit is -inf.
    From huggingface_hub's PyTorchModelHubMixin: `net.save_pretrained(folder)` writes
    model.safetensors and config.json, `Transformer.from_pretrained(folder or Hub repo id)`
    reads them back and `net.push_to_hub(repo_id)` shares them (see dllm_lite.export).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        padded = math.ceil(cfg.vocab_size / cfg.pad_vocab_to) * cfg.pad_vocab_to
        self.embed = nn.Embedding(padded, cfg.n_embd)
        self.pos_embed = nn.Embedding(cfg.seq_len, cfg.n_embd) if cfg.position == "learned" else None
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.norm = nn.RMSNorm(cfg.n_embd)
        if cfg.position == "rotary":
            cos, sin = rotary_tables(cfg.seq_len, cfg.head_dim, cfg.rope_base)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        # added to the logits: -inf for the padding rows and for [MASK] (SUBS: never predict the mask)
        bias = torch.zeros(padded)
        bias[cfg.vocab_size - 1 :] = float("-inf")
        self.register_buffer("logit_bias", bias, persistent=False)
        self._init_weights()

    def _init_weights(self):
        r"""Normal init: weight matrices with std `init_std`, the residual projections with
        $init\_std / \sqrt{2L}$ (GPT-2: the residual stream then grows like the square root of depth,
        not linearly), the token embedding with `embed_init_std`; norms start at 1.

        GPT-2's 0.02 everywhere suits the GPT-2 vocabulary. A character model (65 tokens,
        n_embd 128) learns far faster with an embedding of std 1 (PyTorch's default for
        nn.Embedding) and 0.05 for the matrices: tied, the embedding is also the output head,
        and logits of a useful size from the first step shorten the climb off the unigram
        plateau (measured in configs/shakespeare_char.yaml's comments).
        """
        cfg = self.cfg
        for name, p in self.named_parameters():  # every matrix (and learned positions) first ...
            if p.dim() == 2:
                nn.init.normal_(p, mean=0.0, std=cfg.embed_init_std if name == "embed.weight" else cfg.init_std)
        for name, p in self.named_parameters():  # ... then the residual projections again, smaller
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(p, mean=0.0, std=cfg.init_std / math.sqrt(2 * cfg.n_layer))

    @classmethod
    def _from_pretrained(cls, *, model_id: str, cfg: ModelConfig, map_location: str = "cpu", strict: bool = True,
                         **download):
        """The hub mixin's hook behind `Transformer.from_pretrained`: the network of config.json's `cfg`
        with model.safetensors loaded into it, strictly (no weight missing or left over), printing nothing."""
        weights = Path(model_id) / SAFETENSORS_SINGLE_FILE
        if not Path(model_id).is_dir():  # a Hub repo id: download its weights (or take them from the cache)
            weights = hf_hub_download(model_id, SAFETENSORS_SINGLE_FILE, **download)
        net = cls(cfg)
        load_model(net, weights, strict=strict)
        return net.to(map_location).eval()

    def features(self, idx: torch.Tensor, cache: "KVCache | None" = None, positions: "torch.Tensor | None" = None,
                 attn_mask: "torch.Tensor | None" = None, extend_cache: bool = True) -> torch.Tensor:
        """The final normalised hidden states (B, T, n_embd), before the output head (arguments: see forward)."""
        B, T = idx.shape
        if positions is None:  # (given positions are the caller's to keep below seq_len: no host sync here)
            start = cache.length if cache is not None else 0
            if start + T > self.cfg.seq_len:
                raise ValueError(f"sequence of {start + T} tokens is longer than the model's seq_len={self.cfg.seq_len}")
            positions = torch.arange(start, start + T, device=idx.device)  # (T,)
        x = self.embed(idx)  # (B, T, C)
        cos = sin = None
        if self.pos_embed is not None:
            x = x + self.pos_embed(positions)
        else:
            cos, sin = self.rope_cos[positions], self.rope_sin[positions]  # (T, D/2) each
        x = self.dropout(x)
        for layer, block in enumerate(self.blocks):
            if self.cfg.activation_checkpointing and self.training:
                x = checkpoint(block, x, cos, sin, None, layer, attn_mask, use_reentrant=False)
            else:
                x = block(x, cos, sin, cache, layer, attn_mask)
        if cache is not None and extend_cache:
            cache.advance(T)
        return self.norm(x)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Logits (..., vocab_size) from hidden states (..., n_embd), through the tied embedding."""
        logits = F.linear(h, self.embed.weight) + self.logit_bias  # (..., padded)
        return logits[..., : self.cfg.vocab_size]

    def forward(self, idx: torch.Tensor, only_at: "torch.Tensor | None" = None, cache: "KVCache | None" = None,
                positions: "torch.Tensor | None" = None, attn_mask: "torch.Tensor | None" = None,
                extend_cache: bool = True) -> torch.Tensor:
        """Logits (B, T, vocab_size) for ids (B, T).

        only_at: an optional boolean (B, T); then the output head runs only where it is
        True and the result is (N, vocab_size), N = only_at.sum(), in row-major order. The
        diffusion loss needs logits only at masked positions (about half of them), and the
        head is the largest matrix product of a small model.
        cache: a KVCache; the ids continue the cached sequence. A causal model's new ids see the
        cache and the new ids up to themselves; a block diffusion model's see all of both.
        extend_cache=False attends to the cache without adding the new keys and values to it.
        positions: the position of each id (T,), default 0, 1, ... after the cache; block
        diffusion gives the noisy and the clean copy of a sequence the same positions.
        attn_mask: a boolean (T, T), True where a query may attend to a key (default: none, or
        causal); block diffusion's pattern (block.block_attention_mask).
        """
        h = self.features(idx, cache, positions, attn_mask, extend_cache)  # (B, T, C)
        if only_at is not None:
            return self._head_at(h, only_at)  # (N, V)
        return self.head(h)

    @torch.compiler.disable
    def _head_at(self, h: torch.Tensor, only_at: torch.Tensor) -> torch.Tensor:
        """The head at the True positions of only_at (B, T): (N, vocab_size).

        N changes from batch to batch and the boolean index syncs with the host, so under
        torch.compile this part runs eagerly: the compiled graph (the trunk) keeps a fixed
        shape and is not recompiled for every new count of masked tokens.
        """
        return self.head(h[only_at])

    def new_cache(self, batch_size: int, approximate: bool = False) -> KVCache:
        """An empty key/value cache for `batch_size` sequences: causal and block diffusion models, or with
        approximate=True any model (Fast-dLLM's approximate caches for a bidirectional one, fastcache.py)."""
        if not self.cfg.causal and self.cfg.block_size is None and not approximate:
            raise ValueError("a key/value cache only makes sense for a causal model (causal=True) or a block "
                             "diffusion model (block_size set)")
        p = self.embed.weight
        return KVCache(self.cfg, batch_size, p.device, p.dtype)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count; non_embedding=True leaves out the (tied) token and the position embeddings."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.embed.weight.numel()
            if self.pos_embed is not None:
                n -= self.pos_embed.weight.numel()
        return n

    def flops_per_token(self, seq_len: "int | None" = None, head_share: float = 1.0, streams: int = 1) -> int:
        r"""Training FLOPs per token, forward and backward: $6 N_{body} + 6 s N_{head} + 12 \cdot L \cdot H \cdot Q \cdot T$.

        A weight costs a multiply and an add per token forward, twice that backward (6 per
        weight). $N_{head}$ is the tied embedding, which is a matrix product only as the output
        head (as an input it is a lookup); $N_{body}$ is every other weight except learned
        positions (a lookup too). The head runs at a share `head_share` = s of the positions:
        1 for the autoregressive loss, the expected masked share $E_t[1 - \alpha(t)]$ for the
        diffusion loss, whose head runs only at masked positions (1/2 for the linear schedule,
        $1 - 2/\pi$ for the cosine one: `corrupt.Schedule.mean_mask_prob`). Attention adds
        $QK^\top$ and $AV$, each $2 \cdot H \cdot Q \cdot T$ per token per layer forward, times
        three with the backward pass; Q is the head size, T the sequence length.
        streams=2 is block diffusion's training pass over $[x_t, x_0]$: the body runs over 2T
        positions for T tokens, and each position attends over 2T (counted dense).
        """
        if not 0 <= head_share <= 1:
            raise ValueError(f"head_share is a share of the positions, in [0, 1]; got {head_share}")
        L, H, Q = self.cfg.n_layer, self.cfg.n_head, self.cfg.head_dim
        T = seq_len or self.cfg.seq_len
        head = self.embed.weight.numel()
        body = self.num_params(non_embedding=True)
        return round(6 * streams * body + 6 * head_share * head) + 12 * L * H * Q * T * streams * streams
