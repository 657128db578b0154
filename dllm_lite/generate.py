"""Generate text from a trained checkpoint, on the command line.

    python -m dllm_lite.generate --checkpoint runs/tiny/latest.pt --prompt "The quick brown"
    python -m dllm_lite.generate --checkpoint runs/tiny/latest.pt                  # unconditional
    python -m dllm_lite.generate --checkpoint runs/tiny/latest.pt --prompt "To be, or [MASK:4] to be"

A diffusion checkpoint continues the prompt with `--length` masked tokens and unmasks
them in `--steps` network calls (`sample.generate`); `[MASK]` in the prompt is one masked
token to fill in, `[MASK:5]` five, so the same command does infilling (with a GPT-2
tokenizer the space before a `[MASK]` goes to the first filled token, see `parse_prompt`).
An autoregressive checkpoint continues the prompt left to right (without --prompt, from
its beginning-of-sequence token alone) and cannot infill. A block diffusion checkpoint
(`train.objective=block_diffusion`) fills its blocks left to right against a key/value cache
and stops after the block in which every sample has written end-of-text: `--length` is then
a maximum, and each sample is printed up to its end-of-text. A checkpoint trained on
prompt/response pairs (`data.prompt_field`) answers `--prompt`: the rest of its row is
masked and denoised, and the answer printed after the prompt up to its end-of-text.
`--block-cache prefix|dual` decodes a diffusion checkpoint's blocks (`--block-size`) against Fast-dLLM's
approximate key/value caches (fastcache.py). `--compile` decodes an autoregressive or block diffusion checkpoint with a static key/value
cache and a compiled step (CUDA graphs on a GPU; the first call pays the compilation).
Every option defaults to the checkpoint's `sample` config section.

References: Nie et al. 2025 (LLaDA), sec. 2.4 (sampling, semi-autoregressive blocks);
Sahoo et al. 2024 (MDLM); karpathy/nanoGPT sample.py for the command's shape.
"""

import argparse
import math
import re
import sys
from contextlib import nullcontext

import torch

from .sample import STRATEGIES, decode_blocks, generate
from .tokenize import TiktokenTokenizer
from .train import load_checkpoint, resolve_device

__all__ = ["parse_prompt", "main", "MASK_PATTERN"]

# "[MASK]" is one masked token, "[MASK:5]" is five
MASK_PATTERN = re.compile(r"\[MASK(?::(\d+))?\]")


def parse_prompt(text: str, tokenizer) -> list[int]:
    """Prompt text -> ids, with each `[MASK]` / `[MASK:n]` turned into 1 / n mask ids.

    The text between the markers is encoded piece by piece and the pieces are joined. A BPE
    (tiktoken) tokenizer writes a word with its leading space, " be", so the one space just
    before a gap belongs to the gap's first token: "To be, or [MASK:2] to be" is
    encode("To be, or") + 2 masks + encode(" to be"), never a lone " " token before the
    masks, which GPT-2 text does not contain. Character and byte tokenizers keep that space
    as the character it is (there [MASK:n] counts characters): encode("To be, or ") + ...
    """
    drop_space_before_gap = isinstance(tokenizer, TiktokenTokenizer)
    ids, position = [], 0
    for match in MASK_PATTERN.finditer(text):
        piece = text[position : match.start()]
        if drop_space_before_gap and piece.endswith(" "):
            piece = piece[:-1]  # the gap's first token carries this space, as " to" does in " to be"
        if piece:
            ids += tokenizer.encode(piece)
        count = int(match.group(1)) if match.group(1) is not None else 1
        if count < 1:
            raise ValueError(f"{match.group(0)} masks no token; write [MASK] or [MASK:n] with n >= 1")
        ids += [tokenizer.mask_id] * count
        position = match.end()
    if position < len(text):
        ids += tokenizer.encode(text[position:])
    return ids


def _plan(args, net, tokenizer, cfg):
    """Check the request against the model; return (prompt ids or None, length, steps, block_size)."""
    seq_len, causal = cfg.model.seq_len, net.cfg.causal
    prompt = None
    if args.prompt is not None:
        if args.prompt == "":
            raise ValueError("--prompt is empty; omit --prompt for unconditional generation")
        prompt = parse_prompt(args.prompt, tokenizer)
    n_masks = prompt.count(tokenizer.mask_id) if prompt else 0
    if causal and n_masks:
        raise ValueError("this is an autoregressive checkpoint: it generates left to right and cannot infill "
                         "[MASK]; remove the [MASK]s or use a diffusion checkpoint")
    used = len(prompt) if prompt else 0
    if used > seq_len:
        raise ValueError(f"the prompt is {used} tokens but the model's seq_len is {seq_len}; use a shorter prompt")
    answers = cfg.data.prompt_field is not None  # trained on prompt/response pairs: it answers the prompt
    if answers and prompt is None:
        raise ValueError("this checkpoint was trained to answer prompts (data.prompt_field); give --prompt")
    if args.length is None:
        length = 0 if n_masks else seq_len - used if answers else min(cfg.sample.length, seq_len - used)
    else:
        length = args.length
        if length < 0:
            raise ValueError(f"--length must be at least 0, got {length}")
        if used + length > seq_len:
            raise ValueError(f"the prompt ({used} tokens) plus --length {length} is {used + length} tokens, more "
                             f"than the model's seq_len {seq_len}; use a shorter prompt or --length {seq_len - used}")
    if length + n_masks == 0 and used >= seq_len:
        raise ValueError(f"nothing to generate: the prompt fills all {seq_len} positions and has no [MASK]; use "
                         f"a shorter prompt")
    if length + n_masks == 0:
        raise ValueError("nothing to generate: --length is 0 and the prompt has no [MASK] to fill; give --length "
                         "of at least 1, or put [MASK] in the prompt")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    block_size, blocks = _block_plan(args, cfg, prompt, length, tokenizer.mask_id, causal)
    if args.steps is None:
        steps = max(min(cfg.sample.steps, length + n_masks), blocks)
    else:
        steps = args.steps
    return prompt, length, steps, block_size


def _block_plan(args, cfg, prompt, length, mask_id, causal):
    """(block_size or None, the number of blocks) the request decodes; --steps below that is an error."""
    if cfg.model.block_size is not None:  # a block diffusion model: its own blocks, from the first one to fill
        if args.block_size is not None:
            raise ValueError(f"this block diffusion checkpoint decodes in its own blocks of {cfg.model.block_size}; "
                             f"drop --block-size")
        K, T = cfg.model.block_size, len(prompt or []) + length
        is_masked = torch.tensor((prompt or []) + [mask_id] * length) == mask_id  # (T,)
        blocks = math.ceil(T / K) - int(is_masked.nonzero()[0]) // K
        if args.steps is not None and args.steps < blocks:
            raise ValueError(f"--steps {args.steps} is fewer than the {blocks} blocks of {K} to fill (one step per "
                             f"block at least); raise --steps to {blocks}")
        return None, blocks
    default = cfg.sample.block_size
    block_size = args.block_size if args.block_size is not None else (default if default and default <= length else None)
    if block_size is None or causal:
        return None, 1
    if block_size < 1:
        raise ValueError(f"--block-size must be at least 1, got {block_size}; omit it to decode in one block")
    is_masked = torch.tensor((prompt or []) + [mask_id] * length) == mask_id  # (T,)
    blocks = len(decode_blocks(is_masked, block_size))
    if args.steps is not None and args.steps < blocks:
        named = "--block-size" if args.block_size is not None else "the checkpoint's sample.block_size"
        region = len(is_masked) - int(is_masked.nonzero()[0])  # from the first mask to the end
        raise ValueError(f"--steps {args.steps} is fewer than the {blocks} blocks of {named} {block_size} (one step "
                         f"per block at least); raise --steps to {blocks} or --block-size to "
                         f"{math.ceil(region / args.steps)}")
    return block_size, blocks


def main(argv=None) -> int:
    """Command line: python -m dllm_lite.generate --checkpoint FILE [--prompt TEXT] [options]; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m dllm_lite.generate", description="Generate text from a "
                                     "dllm_lite checkpoint. [MASK] or [MASK:n] in the prompt marks tokens to fill in.")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint file (runs/tiny/latest.pt) or a folder written by dllm-export")
    parser.add_argument("--prompt", help="text to continue; omit for unconditional generation")
    parser.add_argument("--length", type=int, help="new tokens after the prompt (default: sample.length; 0 with [MASK])")
    parser.add_argument("--steps", type=int, help="network calls, at least one per block (default: sample.steps)")
    parser.add_argument("--strategy", choices=STRATEGIES, help="which masked tokens to reveal at each step")
    parser.add_argument("--temperature", type=float, help="0 is greedy")
    parser.add_argument("--top-k", type=int, help="keep the k most likely tokens")
    parser.add_argument("--top-p", type=float, help="keep the smallest set of tokens with this much probability")
    parser.add_argument("--block-size", type=int, help="decode blocks of this many tokens left to right")
    parser.add_argument("--threshold", type=float, help="confidence threshold of the 'threshold' strategy")
    parser.add_argument("--block-cache", choices=("prefix", "dual"), help="a diffusion checkpoint decoded in blocks "
                        "(--block-size): reuse the keys and values outside the block (Fast-dLLM; an approximation)")
    parser.add_argument("--cache-refresh", type=int, help="with --block-cache: recompute them every this many "
                        "network calls in a block (default: once per block; 1 is exact)")
    parser.add_argument("--compile", action="store_true", help="decode with a static key/value cache and a "
                        "torch.compile'd step (CUDA graphs on a GPU); autoregressive and block diffusion checkpoints")
    parser.add_argument("--num-samples", type=int, default=1, help="how many samples (one batch)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    args = parser.parse_args(argv)
    try:
        if args.num_samples < 1:
            raise ValueError(f"--num-samples must be at least 1, got {args.num_samples}")
        device = resolve_device(args.device, key="--device")
        net, tokenizer, cfg, _ = load_checkpoint(args.checkpoint, device)
        prompt, length, steps, block_size = _plan(args, net, tokenizer, cfg)
        s = cfg.sample

        def pick(given, default):  # a command-line option wins over the checkpoint's sample section
            return default if given is None else given

        generator = torch.Generator(device=device).manual_seed(args.seed)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
        with autocast:
            ids = generate(net, mask_id=tokenizer.mask_id, length=length, steps=steps,
                           prompt=None if prompt is None else torch.tensor(prompt, device=device),
                           strategy=pick(args.strategy, s.strategy), schedule=cfg.train.schedule,
                           temperature=pick(args.temperature, s.temperature), top_k=pick(args.top_k, s.top_k),
                           top_p=pick(args.top_p, s.top_p), block_size=block_size,
                           threshold=pick(args.threshold, s.threshold), batch_size=args.num_samples,
                           generator=generator, eot_id=tokenizer.eot_id,
                           compile=args.compile, block_cache=args.block_cache,
                           cache_refresh=args.cache_refresh)  # (num_samples, <= prompt + length)
    except ValueError as error:  # ConfigError and CheckpointError are ValueErrors too
        print(f"error: {error}", file=sys.stderr)
        return 2
    start = len(prompt or [])
    for index, row in enumerate(ids):
        if args.num_samples > 1:
            print(f"{'-' * 20} sample {index + 1} of {args.num_samples} {'-' * 20}")
        print(tokenizer.decode(_until_end_of_text(row, start, tokenizer.eot_id, cfg)))
    return 0


def _until_end_of_text(row, start: int, eot_id, cfg):
    """A block diffusion sample, or the answer of a model trained on pairs, ends at its first generated
    end-of-text token (which is left out, with what follows); other samples are printed whole."""
    if (cfg.model.block_size is None and cfg.data.prompt_field is None) or eot_id is None:
        return row
    ends = (row[start:] == eot_id).nonzero()
    return row if len(ends) == 0 else row[: start + int(ends[0])]


if __name__ == "__main__":
    sys.exit(main())
