"""Tests for dllm_lite.sample: the reverse process and its building blocks, on tiny random nets."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from dllm_lite import draw, model, sample

V = 17  # vocabulary size, mask included
MASK = V - 1


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matrices: one thread is faster, and much faster on a busy machine, than several."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_net(causal=False, seq_len=48, seed=0):
    """A seeded one-layer Transformer with its weights scaled up tenfold, so that its predictions are
    peaked (top probability about 0.2, not 1/16) and depend on the context: then a wrong context
    (a broken cache) changes the sampled tokens."""
    torch.manual_seed(seed)
    net = model.Transformer(model.ModelConfig(vocab_size=V, n_layer=1, n_head=2, n_embd=16, seq_len=seq_len,
                                              causal=causal))
    with torch.no_grad():
        for name, weight in net.named_parameters():
            if "norm" not in name:
                weight.mul_(10.0)
    return net


class CountingNet(nn.Module):
    """Wraps a net and counts its forward passes, independently of `stats`."""

    def __init__(self, net):
        super().__init__()
        self.net, self.cfg, self.calls, self.modes = net, net.cfg, 0, set()

    def forward(self, idx, **kwargs):
        self.calls += 1
        self.modes.add(self.training)
        return self.net(idx, **kwargs)

    def new_cache(self, batch_size):
        return self.net.new_cache(batch_size)


class FixedConfidenceNet(nn.Module):
    """Predicts token (position % (V-1)) at every position, whatever the context, with logit
    `sharpness[position]` against 0 for the other real tokens: its probability is
    e^x / (e^x + V - 2). By default x = 0.5 * position, more confident further right."""

    def __init__(self, seq_len=32, sharpness=None):
        super().__init__()
        self.cfg = SimpleNamespace(seq_len=seq_len, causal=False)
        self.dummy = nn.Parameter(torch.zeros(1))
        self.sharpness = 0.5 * torch.arange(seq_len).float() if sharpness is None else torch.tensor(sharpness)

    def forward(self, idx):
        B, T = idx.shape
        logits = torch.zeros(B, T, V)
        positions = torch.arange(T)
        logits[:, positions, positions % (V - 1)] = self.sharpness[:T]
        logits[..., MASK] = float("-inf")
        return logits


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


CASES = [
    dict(strategy="ancestral"),
    dict(strategy="ancestral", cache=False),
    dict(strategy="confidence"),
    dict(strategy="confidence", schedule="cosine", top_k=5),
    dict(strategy="threshold", threshold=0.1),
    dict(strategy="ancestral", block_size=4),
    dict(strategy="confidence", block_size=5, top_p=0.9),
    dict(strategy="threshold", threshold=0.1, block_size=3),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_generate_fills_masks_keeps_prompt_and_is_deterministic(case):
    net = CountingNet(tiny_net())
    prompt = [3, 1, 4, 1, 5]
    stats = {}
    out = sample.generate(net, mask_id=MASK, length=12, steps=6, prompt=prompt, batch_size=3, generator=seeded(1),
                          stats=stats, **case)
    assert out.shape == (3, 17) and out.dtype == torch.long
    assert not (out == MASK).any()
    assert (out[:, :5] == torch.tensor(prompt)).all()
    assert net.calls == stats["network_calls"] <= 6
    assert stats["strategy"] == case["strategy"] and 1 <= stats["steps"] <= 6
    again = sample.generate(net, mask_id=MASK, length=12, steps=6, prompt=prompt, batch_size=3,
                            generator=seeded(1), **case)
    assert torch.equal(out, again)
    assert net.modes == {False} and net.training  # called in eval mode, training mode restored after
    net.eval()
    sample.generate(net, mask_id=MASK, length=4, steps=2, generator=seeded(1), **case)
    assert not net.training


@pytest.mark.parametrize("case", CASES[::2] + [CASES[-1]], ids=lambda c: c["strategy"])
def test_infilling_changes_only_masked_prompt_positions(case):
    net = tiny_net()
    prompt = torch.tensor([2, MASK, 7, MASK, MASK, 9, 4, MASK, 1])
    out = sample.generate(net, mask_id=MASK, length=0, steps=5, prompt=prompt, generator=seeded(2), **case)
    fixed = prompt != MASK
    assert out.shape == (1, 9) and not (out == MASK).any()
    assert torch.equal(out[0, fixed], prompt[fixed])
    out = sample.generate(net, mask_id=MASK, length=3, steps=5, prompt=prompt, generator=seeded(2), **case)
    assert out.shape == (1, 12) and not (out == MASK).any() and torch.equal(out[0, :9][fixed], prompt[fixed])


def test_trajectory_starts_all_masked_and_only_reveals():
    net = tiny_net()
    out, trajectory = sample.generate(net, mask_id=MASK, length=10, steps=4, prompt=[5], strategy="confidence",
                                      generator=seeded(3), return_trajectory=True)
    assert len(trajectory) == 5 and all(s.device.type == "cpu" and s.shape == (1, 11) for s in trajectory)
    assert (trajectory[0][0, 1:] == MASK).all() and torch.equal(trajectory[-1], out)
    for before, after in zip(trajectory, trajectory[1:]):
        revealed = before != MASK
        assert torch.equal(after[revealed], before[revealed])  # revealed tokens stay
    masked = [int((s == MASK).sum()) for s in trajectory]
    assert masked == [10, 10 - 3, 10 - 5, 10 - 8, 0] == [10 - c for c in [0, 3, 5, 8, 10]]


@pytest.mark.parametrize("schedule,block_size", [("linear", None), ("cosine", None), ("quadratic", None),
                                                 ("linear", 8), ("cosine", 8), ("quadratic", 16)])
def test_cached_ancestral_matches_uncached_with_fewer_calls(schedule, block_size):
    net = CountingNet(tiny_net(seq_len=64))
    runs = {}
    for cache in (True, False):
        net.calls, stats = 0, {}
        runs[cache] = sample.generate(net, mask_id=MASK, length=40, steps=64, prompt=[1, 2], strategy="ancestral",
                                      schedule=schedule, block_size=block_size, batch_size=2, generator=seeded(4),
                                      cache=cache, stats=stats, return_trajectory=True)
        runs[cache, "calls"], runs[cache, "steps"] = net.calls, stats["steps"]
        assert stats["network_calls"] == net.calls
    (tokens, trajectory), (uncached_tokens, uncached_trajectory) = runs[True], runs[False]
    assert not (tokens == MASK).any()
    assert torch.equal(tokens, uncached_tokens)
    # the same steps (a block stops early once all its masks are revealed), the same states
    assert runs[True, "steps"] == runs[False, "steps"] == len(trajectory) - 1 == len(uncached_trajectory) - 1
    assert all(torch.equal(a, b) for a, b in zip(trajectory, uncached_trajectory))
    assert runs[False, "calls"] == runs[False, "steps"]  # uncached: one call per step
    # with the cache, the network runs exactly at the steps that reveal a token
    revealing_steps = sum(not torch.equal(a, b) for a, b in zip(trajectory, trajectory[1:]))
    assert runs[True, "calls"] == revealing_steps < runs[False, "calls"]


def test_confidence_reveals_the_most_confident_first():
    net = FixedConfidenceNet()
    out, trajectory = sample.generate(net, mask_id=MASK, length=8, steps=8, temperature=0, strategy="confidence",
                                      return_trajectory=True)
    first_revealed = [int((before != after).nonzero()[0, 1]) for before, after in zip(trajectory, trajectory[1:])]
    assert first_revealed == [7, 6, 5, 4, 3, 2, 1, 0]
    assert out[0].tolist() == [p % (V - 1) for p in range(8)]


def test_threshold_commits_all_confident_positions_at_once():
    net = CountingNet(FixedConfidenceNet())
    stats = {}
    # greedy confidence = e^{x} / (e^{x} + 15) with x = 0.5 p: above 0.5 from position 6 on
    sample.generate(net, mask_id=MASK, length=12, steps=12, temperature=0, strategy="threshold", threshold=0.5,
                    stats=stats)
    confident = [p for p in range(12) if math.exp(0.5 * p) / (math.exp(0.5 * p) + V - 2) > 0.5]
    assert confident == list(range(6, 12))
    assert stats["network_calls"] == net.calls == 1 + 6  # the confident six at once, then one by one


# Eight positions in no particular order of confidence; the model's own probability of its top
# token, e^x / (e^x + 15), runs from 0.33 (x = 2.0) to 0.69 (x = 3.5), so top_p = 0.3 keeps only
# the top token, like top_k = 1 and a temperature near 0: every draw below is the argmax.
SCRAMBLED = [2.6, 3.5, 2.0, 3.0, 2.2, 3.3, 2.8, 2.4]
MOST_CONFIDENT_FIRST = sorted(range(8), key=lambda p: -SCRAMBLED[p])  # [1, 5, 3, 6, 0, 7, 4, 2]


def reveal_order(trajectory):
    """The positions each step of a trajectory revealed, as a list per step."""
    return [(before != after).nonzero()[:, 1].tolist() for before, after in zip(trajectory, trajectory[1:])]


@pytest.mark.parametrize("sampling", [dict(temperature=0), dict(top_k=1), dict(top_p=0.3), dict(temperature=0.02),
                                      dict(temperature=0.02, top_k=2, top_p=0.5)], ids=str)
def test_confidence_ranks_by_the_model_probability_not_the_filtered_one(sampling):
    # top_k=1, top_p=0.3 and temperature 0.02 all make the drawn token certain under the
    # filtered, tempered distribution (probability 1 everywhere): ranking by that would
    # reveal left to right; the model's own probabilities give the order above
    net = FixedConfidenceNet(sharpness=SCRAMBLED)
    out, trajectory = sample.generate(net, mask_id=MASK, length=8, steps=8, strategy="confidence", generator=seeded(20),
                                      return_trajectory=True, **sampling)
    assert reveal_order(trajectory) == [[p] for p in MOST_CONFIDENT_FIRST]
    assert out[0].tolist() == list(range(8))


@pytest.mark.parametrize("threshold,first_step", [(0.9, []), (0.6, [1, 5])])
def test_threshold_compares_the_model_probability(threshold, first_step):
    # the model's probabilities top out at 0.69: with threshold 0.9 nothing is above it (one token
    # per step, most confident first) even with top_k=1, where every filtered probability is 1
    net = CountingNet(FixedConfidenceNet(sharpness=SCRAMBLED))
    stats = {}
    _, trajectory = sample.generate(net, mask_id=MASK, length=8, steps=8, strategy="threshold", threshold=threshold,
                                    top_k=1, generator=seeded(21), return_trajectory=True, stats=stats)
    first = first_step or MOST_CONFIDENT_FIRST[:1]  # at least one per step
    assert reveal_order(trajectory)[0] == first
    assert sum(reveal_order(trajectory), []) == first + [p for p in MOST_CONFIDENT_FIRST if p not in first]
    assert net.calls == stats["network_calls"] == 1 + 8 - len(first)


@pytest.mark.parametrize("sampling", [dict(temperature=0.5), dict(temperature=2.0), dict(top_k=3), dict(top_p=0.5),
                                      dict(temperature=0.7, top_k=5, top_p=0.8), dict(temperature=0)], ids=str)
def test_sample_tokens_confidence_is_the_unfiltered_probability_at_temperature_one(sampling):
    logits = 3 * torch.randn(200, V, generator=seeded(22))
    tokens, confidence = sample.sample_tokens(logits, generator=seeded(23), **sampling)
    assert confidence.dtype == torch.float64 and confidence.shape == (200,)
    plain = logits.double().softmax(-1).gather(-1, tokens[:, None]).squeeze(-1)
    assert torch.allclose(confidence, plain, rtol=1e-12, atol=0)


def test_steps_larger_than_masks_finishes_early():
    net = CountingNet(tiny_net())
    stats = {}
    out = sample.generate(net, mask_id=MASK, length=5, steps=20, strategy="confidence", generator=seeded(5),
                          stats=stats)
    assert not (out == MASK).any() and net.calls == stats["network_calls"] == stats["steps"] == 5


@pytest.mark.parametrize("steps,expected", [(7, [3, 2, 2]), (3, [1, 1, 1])])
def test_blocks_share_the_steps(steps, expected):
    net = CountingNet(tiny_net())
    stats = {}
    _, trajectory = sample.generate(net, mask_id=MASK, length=9, steps=steps, block_size=3, strategy="confidence",
                                    generator=seeded(6), return_trajectory=True, stats=stats)
    assert len(trajectory) == steps + 1 and net.calls == stats["network_calls"] == steps
    blocks_done = [sum(bool((s[0, i : i + 3] != MASK).all()) for i in (0, 3, 6)) for s in trajectory]
    assert [blocks_done.index(b) for b in (1, 2, 3)] == torch.tensor(expected).cumsum(0).tolist()
    # a later block is untouched until the earlier ones are finished
    for state in trajectory:
        blocks_done = [bool((state[0, i : i + 3] != MASK).all()) for i in (0, 3, 6)]
        for i in (1, 2):
            if not blocks_done[i - 1]:
                assert (state[0, 3 * i : 3 * i + 3] == MASK).all()


def test_decode_blocks_start_at_the_first_mask_and_skip_blocks_without_one():
    is_masked = torch.tensor([False, False, True, True, False, False, False, False, True, True])
    assert [cols.tolist() for cols in sample.decode_blocks(is_masked, 3)] == [[2, 3, 4], [8, 9]]  # not [5, 6, 7]
    assert [cols.tolist() for cols in sample.decode_blocks(is_masked, None)] == [list(range(10))]
    assert len(sample.decode_blocks(torch.ones(16, dtype=torch.bool), 4)) == 4


class InputRecordingNet(CountingNet):
    """A CountingNet that also keeps every input it was called with."""

    def __init__(self, net):
        super().__init__(net)
        self.inputs = []

    def forward(self, idx, **kwargs):
        self.inputs.append(idx.clone())
        return super().forward(idx, **kwargs)


@pytest.mark.parametrize("prompt", [[4, 2, 8], None], ids=["prompt", "no-prompt"])
def test_autoregressive_cache_matches_recompute(prompt):
    net = InputRecordingNet(tiny_net(causal=True))
    n_prompt = len(prompt or [])
    outs = []
    for use_cache in (True, False):
        net.calls, net.inputs, stats = 0, [], {}
        outs.append(sample.generate(net, mask_id=MASK, length=15, steps=1, prompt=prompt, batch_size=2,
                                    use_cache=use_cache, generator=seeded(7), stats=stats))
        assert net.calls == stats["network_calls"] == 15 and stats["strategy"] == "autoregressive"
        # the first call reads the beginning-of-sequence token (the mask id), then the prompt
        assert torch.equal(net.inputs[0], torch.tensor([[MASK] + (prompt or [])] * 2))
        if not use_cache:  # every call recomputes from the start token, never past the last needed token
            assert [tuple(i.shape) for i in net.inputs] == [(2, 1 + n_prompt + j) for j in range(15)]
            assert torch.equal(net.inputs[-1][:, 1:], outs[-1][:, :-1])
    assert torch.equal(outs[0], outs[1]) and outs[0].shape == (2, n_prompt + 15) and not (outs[0] == MASK).any()
    assert outs[0].is_contiguous()
    if prompt:
        assert (outs[0][:, :3] == torch.tensor(prompt)).all()


@pytest.mark.parametrize("kind", ["autoregressive", "autoregressive-conv", "block-diffusion"])
def test_the_cache_path_never_concatenates(kind, monkeypatch):
    """Decoding with a key/value cache writes into the cache's buffers and reads views of them: no torch.cat
    anywhere (a concatenation per call and layer reallocates the whole cache), and the same tokens as the
    uncached path, which recomputes everything."""
    causal = kind != "block-diffusion"
    torch.manual_seed(0)
    net = model.Transformer(model.ModelConfig(vocab_size=V, n_layer=2, n_head=2, n_embd=16, seq_len=24, causal=causal,
                                              conv=3 if kind.endswith("conv") else 0,
                                              block_size=None if causal else 4))
    kwargs = dict(mask_id=MASK, length=17, steps=10, prompt=[1, 2, 3, 4, 5], batch_size=2, strategy="confidence")
    uncached = sample.generate(net, use_cache=False, generator=seeded(5), **kwargs)
    cat, calls = torch.cat, []

    def counting_cat(*args, **kw):
        calls.append(1)
        return cat(*args, **kw)

    monkeypatch.setattr(torch, "cat", counting_cat)
    cached = sample.generate(net, use_cache=True, generator=seeded(5), **kwargs)
    monkeypatch.undo()
    assert len(calls) == 0
    assert torch.equal(cached, uncached)


def test_autoregressive_fills_the_whole_sequence_and_keeps_the_trajectory_shape():
    net = tiny_net(causal=True, seq_len=48)
    for use_cache in (True, False):
        out, trajectory = sample.generate(net, mask_id=MASK, length=48, steps=1, use_cache=use_cache,
                                          generator=seeded(17), return_trajectory=True)
        assert out.shape == (1, 48) and not (out == MASK).any()
        assert len(trajectory) == 49 and all(state.shape == (1, 48) for state in trajectory)
        assert (trajectory[0] == MASK).all() and torch.equal(trajectory[-1], out)
        out = sample.generate(net, mask_id=MASK, length=40, steps=1, prompt=[1] * 8, use_cache=use_cache)
        assert out.shape == (1, 48)
    with pytest.raises(ValueError, match=r"prompt \(8\) \+ length \(41\) exceeds the model's seq_len=48"):
        sample.generate(net, mask_id=MASK, length=41, steps=1, prompt=[1] * 8)


class Float64Meter(TorchDispatchMode):
    """Records the size in bytes of every float64 tensor that any torch operation returns."""

    def __init__(self):
        super().__init__()
        self.sizes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.dtype == torch.float64:
                self.sizes.append(t.numel() * 8)
        return out


@pytest.mark.parametrize("strategy,sampling", [("confidence", {}), ("ancestral", {}), ("threshold", {}),
                                               ("confidence", dict(top_p=0.9, temperature=0.8)),
                                               ("confidence", dict(top_k=7))])
def test_the_float64_working_set_is_bounded_and_chunks_draw_the_same_tokens(strategy, sampling, monkeypatch):
    """The draw runs FLOAT64_BUDGET bytes of rows at a time: no float64 array above it, whatever B * T * V,
    and (a CPU generator being one stream) the very tokens of a single unchunked draw."""
    Vbig = 300
    torch.manual_seed(0)
    net = model.Transformer(model.ModelConfig(vocab_size=Vbig, n_layer=1, n_head=2, n_embd=16, seq_len=40))
    kwargs = dict(mask_id=Vbig - 1, length=40, steps=8, strategy=strategy, batch_size=3, threshold=0.3, **sampling)
    whole = sample.generate(net, generator=seeded(6), **kwargs)  # the default budget: every draw one chunk
    budget = 4 * Vbig * 8  # four rows of a 300-token vocabulary; the first step alone holds 120 masked rows
    monkeypatch.setattr(draw, "FLOAT64_BUDGET", budget)
    with Float64Meter() as meter:
        chunked = sample.generate(net, generator=seeded(6), **kwargs)
    assert max(meter.sizes) <= budget < 3 * 40 * Vbig * 8
    assert torch.equal(chunked, whole)


def test_the_sampler_runs_the_head_only_where_a_token_may_be_revealed(monkeypatch):
    """The head's rows: the hidden states at the masks of the block being decoded (confidence, threshold,
    ancestral), at the revealed positions alone for the fixed orders (left_to_right, random); for AR's prefill,
    only_at at the last position. The fixed orders draw values only where they reveal, so at a temperature
    above 0 they use the random stream differently and their samples at a fixed seed are not those of
    earlier versions (greedy ones are)."""
    seen, features, head, forward = [], model.Transformer.features, model.Transformer.head, model.Transformer.forward

    def spy_features(self, idx, *args, **kwargs):
        h = features(self, idx, *args, **kwargs)
        seen.append(["features", idx.clone(), h.clone()])
        return h

    def spy_head(self, h):
        seen.append(["head", h.clone()])
        return head(self, h)

    monkeypatch.setattr(model.Transformer, "features", spy_features)
    monkeypatch.setattr(model.Transformer, "head", spy_head)
    net = tiny_net(seq_len=24)

    def head_positions():  # (ids, the hidden states the head got, all of them) per network call
        assert [kind for kind, *_ in seen] == ["features", "head"] * (len(seen) // 2)
        return [(ids, rows, h) for (_, ids, h), (_, rows) in zip(seen[::2], seen[1::2])]

    sample.generate(net, mask_id=MASK, length=20, steps=8, prompt=[1, 2], block_size=10, generator=seeded(0))
    for ids, rows, h in head_positions():
        in_block = torch.zeros(22, dtype=torch.bool)
        in_block[2:12] = bool((ids[0, 2:12] == MASK).any())  # the first block until it is full, then the second
        in_block[12:] = not in_block[2:12].any()
        assert torch.equal(rows, h[(ids == MASK) & in_block])
    for strategy in ("left_to_right", "random"):  # 20 masks in 8 steps: reveal_counts' 2 or 3 per step
        seen.clear()
        sample.generate(net, mask_id=MASK, length=20, steps=8, strategy=strategy, batch_size=2, generator=seeded(0))
        assert [rows.shape[0] for _, rows, _ in head_positions()] == [2 * n for n in sample.reveal_counts(20, 8)]
    monkeypatch.setattr(model.Transformer, "features", features)
    monkeypatch.setattr(model.Transformer, "head", head)
    seen.clear()

    def spy(self, idx, only_at=None, **kwargs):
        seen.append((idx.clone(), None if only_at is None else only_at.clone()))
        return forward(self, idx, only_at=only_at, **kwargs)

    monkeypatch.setattr(model.Transformer, "forward", spy)
    sample.generate(tiny_net(causal=True), mask_id=MASK, length=3, steps=1, prompt=[1, 2], generator=seeded(0))
    assert seen[0][1].tolist() == [[False, False, True]] and seen[1][1] is None  # prefill, then one-token decodes


def test_sample_tokens_greedy_limits():
    logits = torch.randn(50, V, generator=seeded(8))
    best = logits.argmax(-1)
    for kwargs in (dict(temperature=0), dict(top_k=1), dict(top_p=1e-9)):
        tokens, probs = sample.sample_tokens(logits, generator=seeded(9), **kwargs)
        assert torch.equal(tokens, best), kwargs
    top_probability = logits.double().softmax(-1).max(-1).values  # the model's, not the filter's 1
    for kwargs in (dict(temperature=0), dict(top_k=1), dict(top_p=1e-9)):
        _, confidence = sample.sample_tokens(logits, generator=seeded(9), **kwargs)
        assert torch.allclose(confidence, top_probability), kwargs


def chi_square(tokens, p):
    n = tokens.numel()
    counts = torch.bincount(tokens, minlength=p.numel()).double()
    keep = p > 0
    assert counts[~keep].sum() == 0
    return float(((counts[keep] - n * p[keep]) ** 2 / (n * p[keep])).sum())


def test_sample_tokens_frequencies_match_the_distribution():
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, float("-inf")])
    n = 20000
    tokens, probs = sample.sample_tokens(logits.expand(n, -1), generator=seeded(10))
    p = logits.double().softmax(-1)
    # 5 degrees of freedom: the 99.9% quantile of chi-square is 20.5
    assert chi_square(tokens, p) < 20.5
    assert torch.allclose(probs, p[tokens])
    tokens, _ = sample.sample_tokens(logits.expand(n, -1), temperature=2.0, generator=seeded(11))
    assert chi_square(tokens, (logits.double() / 2).softmax(-1)) < 20.5
    # top_p = 0.8 keeps the smallest head with mass >= 0.8: the first three here (0.61, 0.22, 0.14)
    tokens, probs = sample.sample_tokens(logits.expand(n, -1), top_p=0.8, generator=seeded(12))
    head = p.clone()
    head[3:] = 0
    assert chi_square(tokens, head / head.sum()) < 18.5  # 2 degrees of freedom: 13.8
    assert torch.allclose(probs, p[tokens])  # drawn from the head, scored by the whole distribution
    tokens, _ = sample.sample_tokens(logits.expand(n, -1), top_k=2, generator=seeded(13))
    assert set(tokens.unique().tolist()) == {0, 1}


def test_reveal_probability():
    assert float(sample.reveal_probability("linear", 1.0, 0.75)) == pytest.approx(0.25)
    assert float(sample.reveal_probability("linear", 0.5, 0.25)) == pytest.approx(0.5)
    assert float(sample.reveal_probability("cosine", 0.3, 0.0)) == pytest.approx(1.0)
    expected = (math.cos(0.5 * math.pi * 0.4) - math.cos(0.5 * math.pi * 0.8)) / (1 - math.cos(0.5 * math.pi * 0.8))
    assert float(sample.reveal_probability("cosine", 0.8, 0.4)) == pytest.approx(expected)


def test_ancestral_step_reveals_at_the_right_rate_and_only_masks():
    T = 4000
    x = torch.full((1, T), MASK)
    x[0, ::2] = 3  # half already revealed
    logits = torch.zeros(1, T, V)
    logits[..., MASK] = float("-inf")
    x_new = sample.ancestral_step(x, logits, MASK, t=0.8, s=0.6, schedule="linear", generator=seeded(14))
    assert torch.equal(x_new[0, ::2], x[0, ::2])
    rate = (x_new[0, 1::2] != MASK).double().mean().item()
    assert rate == pytest.approx(0.25, abs=0.035)  # (0.4 - 0.2) / (1 - 0.2); 2000 coins, sd 0.01
    final = sample.ancestral_step(x_new, logits, MASK, t=0.6, s=0.0, schedule="linear", generator=seeded(15))
    assert not (final == MASK).any() and torch.equal(final[x_new != MASK], x_new[x_new != MASK])


@pytest.mark.parametrize("schedule", ["linear", "cosine", "quadratic"])
@pytest.mark.parametrize("n_masked,steps", [(10, 10), (10, 4), (3, 6), (100, 7), (1024, 256), (0, 3), (5, 1)])
def test_reveal_counts(schedule, n_masked, steps):
    counts = sample.reveal_counts(n_masked, steps, schedule)
    assert len(counts) == steps and sum(counts) == n_masked
    busy = min(steps, n_masked)
    assert all(c >= 1 for c in counts[:busy]) and all(c == 0 for c in counts[busy:])


def test_reveal_counts_follow_the_schedule():
    assert sample.reveal_counts(100, 4, "linear") == [25, 25, 25, 25]
    cosine = sample.reveal_counts(1000, 10, "cosine")
    revealed = torch.tensor(cosine).cumsum(0).double() / 1000
    expected = torch.sin(0.5 * math.pi * torch.arange(1, 11).double() / 10)  # alpha(1 - i/10)
    assert torch.allclose(revealed, expected, atol=1e-3)


def test_select_most_confident():
    confidence = torch.tensor([[0.9, 0.1, 0.8, 0.7, 0.3], [0.2, 0.95, 0.5, 0.6, 0.99]])
    is_masked = torch.tensor([[False, True, True, True, True], [True, False, True, True, False]])
    picked = sample.select_most_confident(confidence, is_masked, 2)
    assert picked.tolist() == [[False, False, True, True, False], [False, False, True, True, False]]
    picked = sample.select_most_confident(confidence, is_masked, torch.tensor([1, 5]))
    assert picked.tolist() == [[False, False, True, False, False], [True, False, True, True, False]]
    # masked positions win even when every confidence is -inf
    picked = sample.select_most_confident(torch.full((2, 5), float("-inf")), is_masked, 1)
    assert not (picked & ~is_masked).any() and picked.sum(1).tolist() == [1, 1]


def test_select_most_confident_never_picks_unmasked_random():
    g = seeded(16)
    confidence = torch.rand(8, 30, generator=g)
    is_masked = torch.rand(8, 30, generator=g) < 0.4
    for k in (0, 1, 3, 30):
        picked = sample.select_most_confident(confidence, is_masked, k)
        assert not (picked & ~is_masked).any()
        assert picked.sum(1).tolist() == is_masked.sum(1).clamp(max=k).tolist()


BAD = [
    (dict(strategy="greedy"), "unknown strategy 'greedy': choose one of ancestral, confidence, threshold"),
    (dict(steps=0), "steps must be at least 1"),
    (dict(length=0), "length must be at least 1"),
    (dict(length=40, prompt=[1] * 10), r"exceeds the model's seq_len=48"),
    (dict(prompt=[]), "prompt is an empty list: pass prompt=None"),
    (dict(prompt=torch.ones(2, 3, 1, dtype=torch.long)), "prompt must be 1-D"),
    (dict(prompt=torch.full((2, 3), MASK, dtype=torch.long)), "a 2-D prompt must hold no mask_id"),
    (dict(temperature=-0.5), "temperature must be >= 0"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
    (dict(top_k=0), "top_k must be at least 1"),
    (dict(strategy="threshold"), "strategy='threshold' needs threshold="),
    (dict(strategy="threshold", threshold=1.0), r"threshold must be in \(0, 1\)"),
    (dict(block_size=2, steps=3), "steps=3 is fewer than the 4 blocks: raise steps or block_size"),
    (dict(block_size=0), "block_size must be at least 1"),
    (dict(batch_size=0), "batch_size must be at least 1"),
]


@pytest.mark.parametrize("kwargs,message", BAD, ids=[m.split(":")[0][:30] for _, m in BAD])
def test_bad_input_raises_a_helpful_error(kwargs, message):
    args = dict(mask_id=MASK, length=8, steps=4) | kwargs
    with pytest.raises(ValueError, match=message):
        sample.generate(tiny_net(), **args)


def test_bad_input_for_autoregressive_nets():
    net = tiny_net(causal=True)
    with pytest.raises(ValueError, match="cannot infill"):
        sample.generate(net, mask_id=MASK, length=4, steps=1, prompt=[1, MASK, 2])


def test_bad_input_for_building_blocks():
    logits = torch.zeros(3, V)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        sample.sample_tokens(logits, temperature=-1)
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        sample.sample_tokens(logits, top_k=0)
    with pytest.raises(ValueError, match="steps >= 1"):
        sample.reveal_counts(5, 0)
    with pytest.raises(ValueError, match="k must be >= 0"):
        sample.select_most_confident(torch.zeros(1, 3), torch.ones(1, 3, dtype=torch.bool), -1)


def test_left_to_right_and_random_orders_reveal_the_counts_of_confidence():
    net = tiny_net()
    kwargs = dict(mask_id=MASK, length=8, steps=4, temperature=0.0, return_trajectory=True)
    _, left = sample.generate(net, strategy="left_to_right", generator=seeded(0), **kwargs)
    for before, after in zip(left, left[1:]):
        newly = ((before == MASK) & (after != MASK))[0].nonzero().flatten().tolist()
        still = (after[0] == MASK).nonzero().flatten().tolist()
        assert len(newly) == 2 and (not still or max(newly) < min(still))  # the leftmost masks, two per step
    runs = [sample.generate(net, strategy="random", generator=seeded(s), **kwargs)[1] for s in (0, 0, 1)]
    orders = [[tuple((b == MASK)[0].tolist()) for b in run] for run in runs]
    assert orders[0] == orders[1] and orders[0] != orders[2]  # seeded: reproducible, and not a fixed order
    assert all(((b == MASK).sum() == 8 - 2 * i) for i, b in enumerate(runs[2]))
