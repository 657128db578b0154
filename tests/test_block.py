"""Block diffusion: the one-pass training forward, no leaks, the two limits (K = L is MDLM, K = 1 is AR),
the exact block NELBO against the Monte Carlo bound, and cached block-by-block sampling."""

import math

import pytest
import torch
import torch.nn.functional as F

from dllm_lite import block, loss, sample
from dllm_lite.model import ModelConfig, Transformer

V = 9  # vocabulary, mask included
MASK = V - 1


def block_net(seq_len=12, block_size=4, seed=0, scale=3.0, **kwargs):
    """A seeded 2-layer block diffusion model with enlarged weights, so its predictions depend on the context."""
    torch.manual_seed(seed)
    net = Transformer(ModelConfig(vocab_size=V, n_layer=2, n_head=2, n_embd=32, seq_len=seq_len, block_size=block_size,
                                  **kwargs))
    with torch.no_grad():
        for name, weight in net.named_parameters():
            if "norm" not in name:
                weight.mul_(scale)
    return net.eval()


def noisy_pair(seq_len=12, seed=1, rows=2):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randint(0, MASK, (rows, seq_len), generator=g)
    xt = torch.where(torch.rand(rows, seq_len, generator=g) < 0.5, torch.full_like(x0, MASK), x0)
    return xt, x0


def test_the_attention_pattern_is_the_table():
    mask = block.block_attention_mask(4, 2)
    noisy_noisy, noisy_clean = mask[:4, :4], mask[:4, 4:]
    clean_noisy, clean_clean = mask[4:, :4], mask[4:, 4:]
    assert noisy_noisy.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    assert noisy_clean.tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]]
    assert not clean_noisy.any()
    assert clean_clean.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]
    with pytest.raises(ValueError, match="divide"):
        block.block_attention_mask(10, 4)


def test_the_one_pass_forward_equals_a_loop_over_blocks():
    """Block b's logits from the 2L pass == one forward over [clean blocks < b, noisy block b] alone."""
    net = block_net()
    xt, x0 = noisy_pair()
    one_pass = block.block_logits(net, xt, x0, 4)  # (2, 12, V)
    for first in range(0, 12, 4):
        ids = torch.cat([x0[:, :first], xt[:, first : first + 4]], dim=1)  # (2, first + 4)
        blocks = torch.arange(first + 4) // 4
        causal_by_block = blocks[:, None] >= blocks[None, :]  # clean prefix block-causal, block b sees all before
        looped = net(ids, attn_mask=causal_by_block)[:, first:]
        assert torch.allclose(one_pass[:, first : first + 4], looped, atol=1e-5), first


def test_nothing_leaks_into_a_noisy_block():
    net = block_net()
    xt, x0 = noisy_pair()
    base = block.block_logits(net, xt, x0, 4)[:, 4:8]  # noisy block 1
    for position in range(12):
        for stream in ("clean", "noisy"):
            if (stream == "clean" and position < 4) or (stream == "noisy" and 4 <= position < 8):
                continue  # what block 1 may see: the clean block 0 and itself
            xt2, x02 = xt.clone(), x0.clone()
            changed = x02 if stream == "clean" else xt2
            changed[:, position] = (changed[:, position] + 1) % MASK
            assert torch.allclose(block.block_logits(net, xt2, x02, 4)[:, 4:8], base, atol=1e-6), (stream, position)
    # and what it may see does move it: the test has teeth
    x02 = x0.clone()
    x02[:, 1] = (x02[:, 1] + 1) % MASK
    assert not torch.allclose(block.block_logits(net, xt, x02, 4)[:, 4:8], base, atol=1e-4)


def test_block_size_l_is_mdlm_exactly():
    net = block_net(seq_len=6, block_size=6)
    x0 = torch.tensor([0, 3, 1, 7, 2, 5])
    mdlm = loss.exact_nelbo(net, x0, MASK)
    assert loss.exact_nelbo(net, x0, MASK, block_size=6) == pytest.approx(mdlm, rel=1e-5)
    rows = x0[None].repeat(3, 1)
    a = loss.nll_bound(net, rows, "linear", MASK, n_samples=64, generator=torch.Generator().manual_seed(0))
    b = loss.nll_bound(net, rows, "linear", MASK, n_samples=64, generator=torch.Generator().manual_seed(0), block_size=6)
    assert a == pytest.approx(b, rel=1e-5)  # the same draws: one time per row is one time per block


def test_block_size_1_is_the_autoregressive_nll():
    """K = 1: the exact block NELBO is the next-token cross-entropy of the network reading [MASK] at the position
    it predicts, computed here with a plain causal mask, one prefix at a time."""
    net = block_net(seq_len=6, block_size=1)
    x0 = torch.tensor([0, 3, 1, 7, 2, 5])
    nll = []
    for i in range(6):
        ids = torch.cat([x0[:i], torch.tensor([MASK])])[None]  # (1, i + 1)
        causal = torch.ones(i + 1, i + 1, dtype=torch.bool).tril()
        nll.append(F.cross_entropy(net(ids, attn_mask=causal)[0, -1:], x0[i : i + 1]).item())
    assert loss.exact_nelbo(net, x0, MASK, block_size=1) == pytest.approx(sum(nll) / 6, rel=1e-5)


@pytest.mark.parametrize("block_size", [2, 3])
def test_nll_bound_agrees_with_the_exact_block_nelbo(block_size):
    net = block_net(seq_len=6, block_size=block_size)
    x0 = torch.tensor([[0, 3, 1, 7, 2, 5]])
    exact = loss.exact_nelbo(net, x0[0], MASK, block_size=block_size)
    assert abs(exact - loss.exact_nelbo(net, x0[0], MASK)) > 1e-3  # a different bound from the MDLM one
    mean, stderr = loss.nll_bound(net, x0, "linear", MASK, n_samples=4096, generator=torch.Generator().manual_seed(0),
                                  batch_size=4096, return_stderr=True, block_size=block_size)
    assert abs(mean - exact) < 4 * stderr + 2e-3 * exact


def test_block_loss_trains_and_times_are_per_block():
    t = block.block_times(8, 12, 4, generator=torch.Generator().manual_seed(0))  # (8, 12)
    assert t.shape == (8, 12) and torch.equal(t[:, ::4].repeat_interleave(4, dim=1), t)
    for b in range(3):  # each block index sees the whole interval: the 8 rows' times are 1/8 apart
        gaps = t[:, 4 * b].sort().values.diff()
        assert torch.allclose(gaps, torch.full_like(gaps, (1 - 1e-3) / 8), atol=1e-5)
    net = block_net(scale=1.0).train()
    x0 = torch.arange(12).remainder(MASK).repeat(8, 1)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for step in range(40):
        value = loss.diffusion_loss(net, x0, "linear", MASK, torch.Generator().manual_seed(step), block_size=4)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        losses.append(value.item())
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5


@pytest.mark.parametrize("strategy", ["ancestral", "confidence", "threshold"])
def test_cached_block_sampling_equals_uncached(strategy):
    net = block_net(seq_len=16, block_size=4)
    kwargs = dict(mask_id=MASK, length=13, steps=8, prompt=[1, 2, 3], strategy=strategy, batch_size=3,
                  threshold=0.5 if strategy == "threshold" else None)
    a, trajectory = sample.generate(net, generator=torch.Generator().manual_seed(0), return_trajectory=True, **kwargs)
    b = sample.generate(net, generator=torch.Generator().manual_seed(0), use_cache=False, **kwargs)
    assert torch.equal(a, b) and a.shape == (3, 16) and (a != MASK).all()
    assert torch.equal(a[:, :3], torch.tensor([[1, 2, 3]] * 3))
    # the prompt ends inside block 0: the rest of that block is filled before anything of block 1
    for state in trajectory:
        assert not ((state[:, 4:] != MASK).any() and (state[:, 3] == MASK).any())


def test_block_sampling_costs_one_block_per_call(monkeypatch):
    net = block_net(seq_len=16, block_size=4)
    widths = []
    features = Transformer.features  # every call of the network, through forward or not

    def spy(self, idx, cache=None, positions=None, attn_mask=None, extend_cache=True):
        widths.append((idx.shape[1], extend_cache))
        return features(self, idx, cache, positions, attn_mask, extend_cache)

    monkeypatch.setattr(Transformer, "features", spy)
    stats = {}
    sample.generate(net, mask_id=MASK, length=16, steps=8, strategy="confidence", stats=stats,
                    generator=torch.Generator().manual_seed(0))
    denoising = [w for w, extend in widths if not extend]
    assert denoising == [4] * 8  # 2 steps per block, each a 4-token forward against the cache
    assert [w for w, extend in widths if extend] == [4, 4, 4]  # the first three blocks join the cache
    assert stats["network_calls"] == 8 + 3  # every forward counts


def test_sampling_stops_after_the_block_with_end_of_text():
    net = block_net(seq_len=16, block_size=4)
    eot = 0
    with torch.no_grad():  # make every token the end-of-text: the first block is the last
        net.logit_bias[1:MASK] = float("-inf")
    ids = sample.generate(net, mask_id=MASK, length=16, steps=8, strategy="confidence", eot_id=eot,
                          generator=torch.Generator().manual_seed(0))
    assert ids.shape == (1, 4) and (ids == eot).all()
    full = sample.generate(net, mask_id=MASK, length=16, steps=8, strategy="confidence",
                           generator=torch.Generator().manual_seed(0))
    assert full.shape == (1, 16)  # without eot_id the length is fixed, as in MDLM


def test_block_model_config_is_checked():
    with pytest.raises(ValueError, match="divide"):
        ModelConfig(vocab_size=V, n_embd=32, n_head=2, seq_len=12, block_size=5)
    with pytest.raises(ValueError, match="conv"):
        ModelConfig(vocab_size=V, n_embd=32, n_head=2, seq_len=12, block_size=4, conv=3)
    with pytest.raises(ValueError, match="own blocks of 4"):
        sample.generate(block_net(), mask_id=MASK, length=8, steps=4, block_size=2)
    assert math.isclose(block.block_positions(3).float().sum().item(), 6.0)


def test_flexattention_gives_the_numbers_of_sdpa():
    mask = block.flex_block_mask(12, 4)
    if mask is None:
        pytest.skip("this PyTorch has no FlexAttention")
    net = block_net()
    xt, x0 = noisy_pair()
    idx, positions = torch.cat([xt, x0], dim=1), block.block_positions(12)
    with torch.no_grad():  # on a CPU FlexAttention runs forward only
        flex = net(idx, positions=positions, attn_mask=mask)
        dense = net(idx, positions=positions, attn_mask=block.block_attention_mask(12, 4))
    assert torch.allclose(flex, dense, atol=1e-4)


def test_a_block_diffusion_run_trains_evaluates_resumes_and_generates(tmp_path, capsys):
    from conftest import make_config
    from dllm_lite import generate, train

    cfg = make_config(tmp_path, "train.objective=block_diffusion", "model.block_size=8", "train.max_steps=4",
                      "train.eval_every=4")
    summary = train.train(cfg)
    assert summary["val_bound"] is not None and math.isfinite(summary["val_bound"])
    net, tokenizer, _, _ = train.load_checkpoint(tmp_path / "run" / "latest.pt")
    assert net.cfg.block_size == 8 and not net.cfg.causal
    assert train.train(make_config(tmp_path, "train.objective=block_diffusion", "model.block_size=8",
                                   "train.max_steps=6", "train.eval_every=6"), resume=True)["step"] == 6
    capsys.readouterr()
    assert generate.main(["--checkpoint", str(tmp_path / "run" / "latest.pt"), "--prompt", "the ", "--length", "12"]) == 0
    assert capsys.readouterr().out.startswith("the ")
    code = train.main(["--config", str(tmp_path / "tiny_test.yaml"), "train.objective=block_diffusion",
                       "model.block_size=8", "--resume"])
    assert code == 0  # the same block size resumes; another one is refused:
    code = train.main(["--config", str(tmp_path / "tiny_test.yaml"), "train.objective=block_diffusion",
                       "model.block_size=4", "train.max_steps=8", "--resume"])
    assert code == 2 and "model.block_size=8" in capsys.readouterr().err


@pytest.mark.parametrize("overrides, words", [
    (["train.objective=block_diffusion"], ["needs model.block_size"]),
    (["model.block_size=8"], ["train.objective=diffusion", "block_diffusion"]),
    (["train.objective=block_diffusion", "model.block_size=5"], ["must divide model.seq_len"]),
    (["train.objective=block_diffusion", "model.block_size=8", "model.conv=3"], ["model.conv"]),
    (["train.objective=block_diffusion", "model.block_size=8", "sample.block_size=4"], ["sample.block_size"]),
    (["train.objective=block_diffusion", "model.block_size=2", "sample.steps=2"], ["4 blocks", "model.block_size"]),
])
def test_block_config_errors_are_one_line(tmp_path, overrides, words):
    from conftest import make_config
    from dllm_lite.config import ConfigError

    with pytest.raises(ConfigError) as error:
        make_config(tmp_path, *overrides)
    message = str(error.value)
    assert "\n" not in message and all(word in message for word in words), message
