"""Sample-quality measures (quality.py) on inputs whose answers can be worked out by hand."""

import json
import math
import shutil
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from conftest import assert_one_line_error, tiny_net, write_config
from dllm_lite import evaluate, quality, train
from dllm_lite.checkpoint import load_checkpoint
from dllm_lite.config import load_config
from dllm_lite.loss import ar_loss
from dllm_lite.sample import generate
from dllm_lite.tokenize import EOT_TEXT, get_tokenizer

TOK = get_tokenizer("char", chars=["a", "b", "c"])  # a b c, eot, mask: V = 5


class FixedJudge(nn.Module):
    """A 'causal' judge whose next-token distribution is the same everywhere: softmax(logits)."""

    def __init__(self, logits, seq_len=16, causal=True):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits, dtype=torch.float32))
        self.cfg = SimpleNamespace(causal=causal, seq_len=seq_len)

    def forward(self, idx):
        return self.logits.expand(*idx.shape, -1)  # (B, T, V)


# p(a) = 1/2, p(b) = p(c) = 1/4, p(eot) = 0 + tiny, never the mask
JUDGE_LOGITS = [math.log(2), 0.0, 0.0, -30.0, float("-inf")]


def test_gen_nll_is_the_exact_nll_per_token_and_per_character():
    result = quality.gen_nll(FixedJudge(JUDGE_LOGITS), TOK, ["aab", "abcc"], batch_size=1)
    z = 4 + math.exp(-30)
    nll_aab = 2 * math.log(z / 2) + math.log(z)  # -log(1/2) twice, -log(1/4) once
    nll_abcc = math.log(z / 2) + 3 * math.log(z)
    per_token = [nll_aab / 3, nll_abcc / 4]
    assert result["nll_per_token"] == pytest.approx(sum(per_token) / 2, rel=1e-6)
    assert result["nll_per_token_stderr"] == pytest.approx(abs(per_token[0] - per_token[1]) / 2, rel=1e-5)
    assert result["nll_per_char"] == pytest.approx(result["nll_per_token"], rel=1e-6)  # one char per token
    assert (result["samples"], result["judge_tokens"], result["chars"]) == (2, 7, 7)


def test_gen_nll_batches_pad_without_changing_any_score():
    texts = ["aab", "abcc", "c", "abcabcab"]
    one = quality.gen_nll(FixedJudge(JUDGE_LOGITS), TOK, texts, batch_size=1)
    together = quality.gen_nll(FixedJudge(JUDGE_LOGITS), TOK, texts, batch_size=4)
    assert together["nll_per_token"] == pytest.approx(one["nll_per_token"], rel=1e-6)
    assert together["nll_per_char_stderr"] == pytest.approx(one["nll_per_char_stderr"], rel=1e-6)


def test_gen_nll_agrees_with_the_ar_training_loss_of_a_real_causal_model():
    judge = tiny_net(vocab_size=TOK.vocab_size, seq_len=8, causal=True, seed=3)
    texts = ["abcabcab", "ccbbaacc"]
    rows = torch.tensor([TOK.encode(t) for t in texts])  # (2, 8)
    expected = ar_loss(judge, rows, TOK.mask_id, per_row=True).mean().item()
    assert quality.gen_nll(judge, TOK, texts)["nll_per_token"] == pytest.approx(expected, rel=1e-5)


def test_the_judge_scores_in_float32_inside_a_bf16_autocast():
    judge = tiny_net(vocab_size=TOK.vocab_size, seq_len=8, causal=True, seed=3)
    texts = ["abcabcab", "ccbbaacc"]
    plain = quality.gen_nll(judge, TOK, texts)["nll_per_token"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert quality.gen_nll(judge, TOK, texts)["nll_per_token"] == pytest.approx(plain, rel=1e-6)


def test_an_end_of_text_is_one_judge_token_and_one_character():
    result = quality.gen_nll(FixedJudge(JUDGE_LOGITS), TOK, ["ab" + EOT_TEXT + "c"])
    assert result["judge_tokens"] == 4 and result["chars"] == 4
    assert result["nll_per_token"] > 7  # the eot costs ~30 nats: it was read as the eot id, not as text


def test_gen_nll_refuses_a_diffusion_judge_a_long_sample_and_foreign_characters():
    with pytest.raises(ValueError, match="autoregressive"):
        quality.gen_nll(FixedJudge(JUDGE_LOGITS, causal=False), TOK, ["ab"])
    with pytest.raises(ValueError, match="sample 1 is 17 judge tokens.*longer model.seq_len"):
        quality.gen_nll(FixedJudge(JUDGE_LOGITS, seq_len=16), TOK, ["ab", "a" * 17])
    with pytest.raises(ValueError, match="cannot encode the samples"):
        quality.gen_nll(FixedJudge(JUDGE_LOGITS), TOK, ["abz"])


def test_unigram_entropy_by_hand():
    assert quality.unigram_entropy([1, 2, 1, 2]) == pytest.approx(math.log(2))
    assert quality.unigram_entropy(torch.tensor([7, 7, 7])) == 0
    assert quality.unigram_entropy([0, 1, 2, 3]) == pytest.approx(math.log(4))
    assert quality.unigram_entropy([0, 0, 0, 1]) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert quality.mean_entropy([[1, 2], [5, 5]]) == pytest.approx(math.log(2) / 2)
    with pytest.raises(ValueError, match="empty"):
        quality.unigram_entropy([])


def test_distinct_n_by_hand():
    assert quality.distinct_n([[1, 2, 3, 4]], 2) == 1.0
    assert quality.distinct_n([[5, 5, 5, 5, 5]], 2) == pytest.approx(1 / 4)
    # pooled: (1,2) (2,1) (1,2) | (1,2): 2 distinct of 4; no (2,1) across the two samples' border
    assert quality.distinct_n([[1, 2, 1, 2], [1, 2]], 2) == pytest.approx(2 / 4)
    assert quality.distinct_n(["abab"], 3) == pytest.approx(2 / 2)  # aba, bab
    assert quality.distinct_n(["aaaa", "aaa"], 3) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="no 3-gram"):
        quality.distinct_n([[1, 2]], 3)


def test_memorisation_counts_the_windows_found_verbatim():
    training = "to be or not to be"
    assert quality.memorisation(["to be or"], training, width=8) == 1.0  # the one window is there
    # "not to be!": windows "not to b", "ot to be", "t to be!": the first two are there
    assert quality.memorisation(["not to be!"], training, width=8) == pytest.approx(2 / 3)
    windows = quality.training_windows(training, 8)
    assert quality.memorisation(["xyzxyzxyz"], windows) == 0.0
    assert quality.memorisation(["to be or", "xyzxyzxy"], windows) == pytest.approx(1 / 2)  # pooled windows
    with pytest.raises(ValueError, match="8-character window"):
        quality.memorisation(["short"], windows)


def test_parallel_reveal_gap_of_two_tokens_that_must_agree():
    # "AA" or "BB", each half the time: one call draws the marginals and writes "AB" or "BA" half the time
    gap = quality.parallel_reveal_gap([[0.5, 0.0], [0.0, 0.5]])
    assert gap["kl_joint_product"] == pytest.approx(math.log(2))  # one bit of mutual information lost
    assert gap["kl_product_joint"] == math.inf
    assert gap["total_variation"] == pytest.approx(0.5)
    assert torch.allclose(gap["product"], torch.full((2, 2), 0.25, dtype=torch.float64))


def test_parallel_reveal_gap_is_zero_for_independent_tokens():
    first, second = torch.tensor([0.2, 0.8], dtype=torch.float64), torch.tensor([0.1, 0.3, 0.6], dtype=torch.float64)
    joint = torch.outer(first, second)
    gap = quality.parallel_reveal_gap(joint)
    assert gap["kl_joint_product"] == pytest.approx(0, abs=1e-12)
    assert gap["kl_product_joint"] == pytest.approx(0, abs=1e-12)
    assert gap["total_variation"] == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError, match="sum to 1"):
        quality.parallel_reveal_gap([[0.5, 0.6]])


# ---- the command: python -m dllm_lite.evaluate --checkpoint X --samples N --judge Y ------------------

@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Tiny char checkpoints (seq_len 32), a few steps each: diffusion, AR, and a second AR as the judge."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    paths = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TQDM_DISABLE", "1")
        for name, objective, seed in [("diffusion", "diffusion", 0), ("ar", "autoregressive", 0),
                                      ("judge", "autoregressive", 1)]:
            folder = tmp_path_factory.mktemp(name)
            cfg = load_config(write_config(folder), [f"train.objective={objective}", "train.max_steps=3",
                                                     "train.eval_every=100", f"train.seed={seed}"])
            train.train(cfg)
            paths[name] = str(folder / "run" / "latest.pt")
    torch.set_num_threads(threads)
    return paths


def last_line_values(out: str) -> dict:
    pairs = [part.split("=") for part in out.strip().splitlines()[-1].split()]
    return {key: float(value) for key, value in pairs}


def test_the_command_scores_samples_and_its_last_line_names_the_five_numbers(checkpoints, tmp_path, capsys):
    out_file = tmp_path / "samples.json"
    code = evaluate.main(["--checkpoint", checkpoints["diffusion"], "--judge", checkpoints["judge"], "--samples", "5",
                          "--steps", "8", "--batch-size", "2", "--out", str(out_file)])
    out, err = capsys.readouterr()
    assert code == 0, err
    values = last_line_values(out)
    assert list(values) == ["gen_nll", "entropy", "distinct2", "calls_per_token", "tokens_per_s"]
    assert "nats per character" in out.strip().splitlines()[-2]
    assert values["calls_per_token"] == 8 / 32  # confidence decoding: 8 calls for 32 positions, whatever the batch
    result = json.loads(out_file.read_text())
    assert len(result["texts"]) == 5 and all(len(text.replace(EOT_TEXT, "#")) == 32 for text in result["texts"])
    assert 0 <= result["memorisation"] <= 1 and 0 < result["distinct3"] <= 1
    assert result["entropy"] == pytest.approx(values["entropy"], abs=1e-4)
    judge, judge_tokenizer, _, _ = load_checkpoint(checkpoints["judge"])  # the number is the judge's exact NLL
    expected = quality.gen_nll(judge, judge_tokenizer, result["texts"])
    assert result["gen_nll"] == pytest.approx(expected["nll_per_char"], rel=1e-5)
    assert result["gen_nll_stderr"] == pytest.approx(expected["nll_per_char_stderr"], rel=1e-5)


def test_the_command_samples_an_ar_model_one_call_per_token_and_threshold_fewer(checkpoints, capsys):
    assert evaluate.main(["--checkpoint", checkpoints["ar"], "--judge", checkpoints["judge"], "--samples", "2"]) == 0
    assert last_line_values(capsys.readouterr().out)["calls_per_token"] == 1.0
    assert evaluate.main(["--checkpoint", checkpoints["diffusion"], "--judge", checkpoints["judge"], "--samples", "2",
                          "--strategy", "threshold", "--threshold", "0.5", "--steps", "16", "--block-size", "8"]) == 0
    assert last_line_values(capsys.readouterr().out)["calls_per_token"] <= 16 / 32


@pytest.mark.parametrize("judge, words", [("diffusion", ["is a diffusion model", "--judge"]),
                                          ("ar", ["is the model being judged"])])
def test_a_judge_that_is_not_autoregressive_or_is_the_model_itself_is_one_line(checkpoints, capsys, judge, words):
    code = evaluate.main(["--checkpoint", checkpoints["ar"], "--judge", checkpoints[judge], "--samples", "2"])
    assert_one_line_error(code, capsys.readouterr().err, *words)


def test_a_copy_of_the_judged_model_is_refused_too(checkpoints, tmp_path, capsys):
    copy = tmp_path / "copy.pt"
    shutil.copy(checkpoints["ar"], copy)
    code = evaluate.main(["--checkpoint", checkpoints["ar"], "--judge", str(copy), "--samples", "2"])
    assert_one_line_error(code, capsys.readouterr().err, "is the model being judged")


class AgreeingPair(nn.Module):
    """A denoiser of two tokens that must agree ("aa" or "bb"): alone, each is a coin; next to a
    revealed token, it copies it. Ids: a = 0, b = 1, mask = 2."""

    cfg = SimpleNamespace(causal=False, seq_len=2)

    def forward(self, idx):  # (B, 2) -> (B, 2, 3)
        logits = torch.zeros(*idx.shape, 3)
        logits[..., 2] = float("-inf")
        other = idx.flip(1)  # (B, 2) the token beside each position
        for value in (0, 1):
            logits[..., 1 - value] = torch.where(other == value, float("-inf"), logits[..., 1 - value])
        return logits


@pytest.mark.parametrize("steps, expected_tv", [(2, 0.0), (1, 0.5)])
def test_one_call_for_both_tokens_samples_the_product_of_marginals(steps, expected_tv):
    joint = torch.tensor([[0.5, 0.0], [0.0, 0.5]], dtype=torch.float64)
    ids = generate(AgreeingPair(), mask_id=2, length=2, steps=steps, batch_size=4000, strategy="confidence",
                   generator=torch.Generator().manual_seed(0))  # (4000, 2)
    empirical = torch.zeros(2, 2, dtype=torch.float64)
    empirical.index_put_((ids[:, 0], ids[:, 1]), torch.ones(len(ids), dtype=torch.float64), accumulate=True)
    empirical /= len(ids)
    target = joint if steps == 2 else quality.parallel_reveal_gap(joint)["product"]
    assert torch.allclose(empirical, target, atol=0.03)  # two calls: the joint; one call: the product
    assert 0.5 * (empirical - joint).abs().sum().item() == pytest.approx(expected_tv, abs=0.03)


def test_the_command_passes_the_fast_dllm_cache_options_to_generate(checkpoints, capsys):
    common = ["--checkpoint", checkpoints["diffusion"], "--judge", checkpoints["judge"], "--samples", "2",
              "--steps", "8", "--block-size", "8", "--seed", "3"]
    assert evaluate.main(common) == 0
    plain = last_line_values(capsys.readouterr().out)
    assert evaluate.main(common + ["--block-cache", "dual", "--cache-refresh", "1"]) == 0
    refreshed = last_line_values(capsys.readouterr().out)  # refreshed at every call: the uncached tokens exactly
    assert refreshed["gen_nll"] == plain["gen_nll"] and refreshed["entropy"] == plain["entropy"]
    assert evaluate.main(common + ["--block-cache", "prefix"]) == 0
    assert last_line_values(capsys.readouterr().out)["calls_per_token"] == 8 / 32


def test_the_command_compiles_an_ar_sampler_outside_the_clock(checkpoints, capsys, monkeypatch):
    calls = []

    def eager(*args, compile=False, **kwargs):  # records the options; compiling itself is decode.py's to test
        calls.append({"compile": compile, **kwargs})
        return real(*args, **kwargs)

    real = quality.generate
    monkeypatch.setattr(quality, "generate", eager)
    assert evaluate.main(["--checkpoint", checkpoints["ar"], "--judge", checkpoints["judge"], "--samples", "3",
                          "--batch-size", "2", "--compile"]) == 0
    assert last_line_values(capsys.readouterr().out)["calls_per_token"] == 1.0
    assert len(calls) == 3 and all(kwargs["compile"] for kwargs in calls)  # one untimed warm-up, then two batches
    assert "stats" not in calls[0] and "stats" in calls[1]
