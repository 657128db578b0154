"""The sections of a config file as dataclasses: every key, its type, its default and its meaning.

A config file has up to four sections and two top-level keys; each section is one dataclass
below, and the comment beside each field is what the key means (docs/build_config.py writes
docs/config.md, the config reference, from these comments: a key without one fails its check).
The dataclasses only hold values; `config.py` reads the YAML into them and refuses what cannot
work.

References: nanoGPT's `GPTConfig` (one dataclass of knobs); Python's dataclasses.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Config", "ModelSection", "DataSection", "TrainSection", "SampleSection", "SECTIONS", "TOP_LEVEL"]


@dataclass
class ModelSection:
    """The denoiser's shape (vocab_size comes from the tokenizer, causal from train.objective)."""

    n_layer: int = 6  # Transformer blocks
    n_head: int = 6  # attention heads per block; must divide n_embd
    n_embd: int = 384  # width of the residual stream
    seq_len: int = 256  # tokens per training row, and the longest sequence the model can read
    dropout: float = 0.0  # dropout on attention and MLP outputs (0: off)
    position: str = "rotary"  # "rotary" | "learned"
    mlp_ratio: int = 4  # the MLP's hidden width over n_embd
    conv: int = 0  # width of the blocks' short convolution over neighbouring positions (0: none; model.LocalMix)
    activation_checkpointing: bool = False  # recompute each block in the backward pass: less memory, more time
    init_std: float = 0.02  # weight matrices' init std (GPT-2)
    embed_init_std: float = 0.02  # token embedding's init std; a character model learns faster with 1.0
    # block diffusion (train.objective: block_diffusion): blocks of this many tokens. It lives with the model,
    # not the training, because it is the trained network's attention pattern and the way it must be sampled
    block_size: int | None = None


@dataclass
class DataSection:
    """Where the text comes from and how it becomes token ids (see dllm_lite.data)."""

    # bundled corpus | text/json/parquet | a task of tasks.py (addition, sudoku, facts: generated into cache_dir
    #   the first time) | hub short name | hub id | folder
    dataset: str = "tiny_shakespeare"
    subset: str | None = None  # hub config name, e.g. "wikitext-103-raw-v1"
    revision: str | None = None  # hub dataset branch, tag or commit sha (null: the default branch)
    data_files: str | list[str] | None = None  # path(s) or glob(s) for text/json/parquet (a task's name: read as JSON)
    text_field: str = "text"  # the column that holds the text (hub, json, parquet)
    # prompt/response pairs (pairs.py): set prompt_field to train on pairs instead of text; a list of columns is
    # joined with newlines (e.g. an instruction dataset's [instruction, input])
    prompt_field: str | list[str] | None = None
    response_field: str = "response"  # with prompt_field: the column that holds the answer
    tokenizer: str = "gpt2"  # "gpt2" | "char" | "byte" | any tiktoken encoding
    val_fraction: float = 0.05  # share of the text carved out as validation when the dataset has no validation split
    max_tokens: int | None = None  # cap on training tokens (validation: val_fraction of it, unless val_tokens)
    val_tokens: int | None = None  # cap on validation tokens (null: val_fraction of max_tokens): slice the training
                                   #   text with max_tokens and keep the same validation set
    streaming: bool | None = None  # None: stream the big hub sets (openwebtext, c4, the_pile); bundled text never is
    num_proc: int | None = None  # worker processes for tokenizing
    cache_dir: str = ".cache/dllm_lite"  # where tokenized data (and hub downloads) are kept between runs


@dataclass
class TrainSection:
    """The optimisation: objective, batch, optimiser and its schedule, evaluation, checkpoints, device."""

    objective: str = "diffusion"  # "diffusion" | "autoregressive" | "block_diffusion" (needs model.block_size)
    weighting: str = "elbo"  # "elbo" (w(t) = -alpha'/(1-alpha)) | "mean" (plain masked cross-entropy)
    schedule: str = "linear"  # alpha(t): "linear" | "cosine" | "quadratic" (corrupt.SCHEDULES)
    batch_size: int = 32  # rows per micro-batch (per process with torchrun)
    grad_accum: int = 1  # micro-batches per optimiser step
    max_steps: int = 1000  # optimiser steps; also sets the length of the lr cosine
    max_minutes: float | None = None  # stop after this much wall time; the lr cosine then keeps pace (train.lr_at)
    optimizer: str = "adamw"  # "adamw" | "muon" (Muon for the blocks' matrices, AdamW for the rest; see muon.py)
    muon_lr: float | None = None  # Muon's peak learning rate (null: lr); same warm-up and decay, scaled
    lr: float = 3e-4  # peak learning rate, reached after warmup_steps
    min_lr: float = 3e-5  # learning rate at the end of the cosine
    warmup_steps: int = 100  # steps of linear warm-up from 0 to lr
    weight_decay: float = 0.1  # AdamW decoupled weight decay, on the matrices and the embedding (never norm gains)
    beta1: float = 0.9  # AdamW first-moment decay
    beta2: float = 0.95  # AdamW second-moment decay
    grad_clip: float = 1.0  # 0 turns clipping off
    eval_every: int = 200  # steps between validation passes (and one at the end)
    eval_batches: int = 8  # validation batches per pass (the same ones every time)
    bound_samples: int = 4  # t samples per validation sequence for the NLL bound
    log_every: int = 10  # steps between lines of the training log
    save_every: int = 500  # steps between checkpoints (and one whenever training stops)
    keep_last: int = 3  # numbered checkpoints kept on disk (latest.pt is always kept)
    out_dir: str | None = None  # None: runs/<name>
    init_from: str | None = None  # a checkpoint to start from: its weights (and tokenizer), a fresh optimiser
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"
    dtype: str = "auto"  # "auto" | "float32" | "bfloat16"
    compile: bool = False  # torch.compile the model (falls back to eager, with a message, if it fails)
    seed: int = 0  # seeds the weights, the batches and the noise


@dataclass
class SampleSection:
    """Defaults for generation (see dllm_lite.sample.generate)."""

    length: int = 128  # tokens to generate
    steps: int = 64  # denoising steps (network calls, at most)
    strategy: str = "confidence"  # "ancestral" | "confidence" | "threshold" | "left_to_right" | "random"
    temperature: float = 1.0  # divides the logits before a value is drawn (0: greedy; lower: safer)
    top_k: int | None = None  # draw only from the k most likely tokens (null: all)
    top_p: float | None = None  # draw only from the smallest set with this much probability (null: all)
    block_size: int | None = None  # decode in blocks of this many positions, left to right (null: one block)
    threshold: float | None = None  # strategy "threshold": reveal every mask whose confidence exceeds it


@dataclass
class Config:
    """A whole run. `name` defaults to the config file's stem; `params` is a claim like "25M".
    `train.out_dir` defaults to runs/<name>."""

    name: str = "default"  # the run's name (default: the config file's stem); runs/<name> holds its files
    params: str | None = None  # a size claim such as "25M", checked by a test against the built model
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    sample: SampleSection = field(default_factory=SampleSection)

    def __post_init__(self):
        if self.train.out_dir is None:
            self.train.out_dir = f"runs/{self.name}"


SECTIONS = {"model": ModelSection, "data": DataSection, "train": TrainSection, "sample": SampleSection}
TOP_LEVEL = ("name", "params")  # the keys outside any section
