"""Prompt/response pairs: packing (skips counted, nothing cut), the SFT losses (the prompt never masked
nor scored), answering, fine-tuning from a checkpoint, and the evaluation command."""

import json
import math
import re

import datasets
import pytest
import torch
import torch.nn as nn

from conftest import assert_one_line_error, tiny_net
from dllm_lite import evaluate, generate, loss, pairs, sample, train
from dllm_lite.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from dllm_lite.config import ConfigError, load_config
from dllm_lite.corrupt import get_schedule
from dllm_lite.tokenize import get_tokenizer

CHARS = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789+=?' "))
PAIRS = [{"prompt": f"{a}+{b}=", "response": str(a + b)} for a in range(20) for b in range(20)]


def char_tok():
    return get_tokenizer("char", chars=CHARS)


def write_pairs(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- packing

def test_pack_pairs_lays_out_prompt_response_eot_and_padding():
    tok = char_tok()
    packed = pairs.pack_pairs(tok, ["1+2=", "10+10="], ["3", "20"], seq_len=10)
    eot = tok.eot_id
    assert packed.ids[0].tolist() == tok.encode("1+2=") + tok.encode("3") + [eot] * 5
    assert packed.ids[1].tolist() == tok.encode("10+10=") + tok.encode("20") + [eot] * 2
    assert packed.prompt_len.tolist() == [4, 6] and packed.answer_len.tolist() == [2, 3]
    assert packed.skipped == 0 and packed.longest == 9


def test_too_long_pairs_are_skipped_and_counted_never_cut():
    tok = char_tok()
    prompts, responses = ["1+1=", "123+456=", "9+9="], ["2", "579", "18"]
    packed = pairs.pack_pairs(tok, prompts, responses, seq_len=8)
    assert packed.skipped == 1 and len(packed) == 2 and packed.longest == 12
    for row, p, a in zip(packed.ids, packed.prompt_len, packed.answer_len):  # every kept answer is whole
        text = tok.decode(row[: p + a - 1])
        assert text in ("1+1=2", "9+9=18")


def test_pack_pairs_needs_an_end_of_text_token():
    tok = get_tokenizer("char", chars=CHARS)
    tok.eot_id = None
    with pytest.raises(ValueError, match="no end-of-text token"):
        pairs.pack_pairs(tok, ["a"], ["b"], 4)


def test_read_pairs_names_the_bad_line(tmp_path):
    good = write_pairs(tmp_path / "good.jsonl", PAIRS[:3])
    prompts, responses, lines = pairs.read_pairs(good)
    assert prompts[1] == "0+1=" and responses[1] == "1" and lines == [1, 2, 3]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "a"\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        pairs.read_pairs(bad)
    bad.write_text('{"prompt": "a", "response": "b"}\n\n{"prompt": "a", "answer": "b"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 3 has no 'response' field"):
        pairs.read_pairs(bad)
    bad.write_text('{"prompt": 3, "response": "b"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 1: 'prompt' is int \(3\), not a string"):
        pairs.read_pairs(bad)


# ----------------------------------------------------------------------------- the losses

class Recorder(nn.Module):
    """A uniform denoiser over the V - 1 real tokens that remembers every input it is given."""

    def __init__(self, vocab_size):
        super().__init__()
        self.vocab_size, self.inputs = vocab_size, []
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, ids):
        self.inputs.append(ids.clone())
        logits = torch.zeros(*ids.shape, self.vocab_size) + self.dummy
        logits[..., -1] = float("-inf")  # SUBS: never the mask
        return logits


def test_sft_loss_never_masks_the_prompt_and_a_uniform_model_scores_log_v():
    V, L = 9, 12
    x0 = torch.randint(0, V - 1, (64, L), generator=torch.Generator().manual_seed(0))
    prompt_len = torch.randint(1, 8, (64,), generator=torch.Generator().manual_seed(1))
    net = Recorder(V)
    values = [loss.sft_loss(net, x0, prompt_len, "linear", V - 1, generator=torch.Generator().manual_seed(s)).item()
              for s in range(40)]
    for xt in net.inputs:
        prompt = loss.response_mask(prompt_len, L).logical_not()
        assert torch.equal(xt[prompt], x0[prompt])  # the prompt is given clean, every time
    assert abs(sum(values) / len(values) - math.log(V - 1)) < 0.03  # the bound, per region token


def test_sft_loss_ignores_what_the_net_says_at_the_prompt():
    net = tiny_net(vocab_size=7, seq_len=10)
    x0 = torch.randint(0, 6, (8, 10), generator=torch.Generator().manual_seed(0))
    prompt_len = torch.full((8,), 4)
    base = loss.sft_loss(net, x0, prompt_len, "linear", 6, generator=torch.Generator().manual_seed(3))

    class Noisy(nn.Module):  # the same net, with nonsense logits at the prompt positions
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, ids):
            logits = self.net(ids).clone()
            logits[:, :4] = torch.randn_like(logits[:, :4]) * 50
            return logits

    other = loss.sft_loss(Noisy(), x0, prompt_len, "linear", 6, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(base, other)


def test_sft_elbo_divides_each_row_by_its_response_region():
    ce = torch.tensor([1.0, 2.0, 3.0])  # masked cross-entropies of rows 0, 0, 1
    is_masked = torch.tensor([[False, True, True, False], [False, False, False, True]])
    t = torch.tensor([0.5, 0.25])
    w = torch.tensor([2.0, 4.0])  # 1/t
    linear = get_schedule("linear")
    got = loss.weigh(ce, is_masked, t, linear, lengths=torch.tensor([3, 1]))
    assert torch.allclose(got, (w[0] * 3.0 / 3 + w[1] * 3.0 / 1) / 2)
    # lengths of L everywhere is the plain per-token bound
    assert torch.allclose(loss.weigh(ce, is_masked, t, linear, lengths=torch.tensor([4, 4])),
                          loss.weigh(ce, is_masked, t, linear))


def test_ar_sft_loss_scores_the_answer_only():
    V, L = 7, 10
    net = tiny_net(vocab_size=V, seq_len=L, causal=True)
    x = torch.randint(0, V - 1, (3, L), generator=torch.Generator().manual_seed(0))
    prompt_len, answer_len = torch.tensor([2, 4, 5]), torch.tensor([3, 1, 5])
    bos = torch.full((3, 1), V - 1)
    ce = nn.functional.cross_entropy(net(torch.cat([bos, x[:, :-1]], 1)).transpose(1, 2), x, reduction="none")
    scored = [(b, i) for b in range(3) for i in range(prompt_len[b], prompt_len[b] + answer_len[b])]
    expected = sum(ce[b, i] for b, i in scored) / len(scored)
    assert torch.allclose(loss.ar_sft_loss(net, x, prompt_len, answer_len, V - 1), expected)


def test_pair_bound_is_per_answer_token_and_sees_no_mask_in_the_prompt():
    V, L = 9, 12
    x0 = torch.randint(0, V - 1, (16, L), generator=torch.Generator().manual_seed(0))
    prompt_len, answer_len = torch.full((16,), 4), torch.full((16,), 2)
    net = Recorder(V)
    per_answer = loss.nll_bound(net, x0, "linear", V - 1, n_samples=64, prompt_len=prompt_len, answer_len=answer_len,
                                generator=torch.Generator().manual_seed(0))
    assert all(not (xt[:, :4] == V - 1).any() for xt in net.inputs)
    # a uniform model pays log V for each of the 8 region tokens, counted over 2 answer tokens
    assert abs(per_answer - 8 / 2 * math.log(V - 1)) < 0.1
    per_region = loss.nll_bound(net, x0, "linear", V - 1, n_samples=64, prompt_len=prompt_len,
                                generator=torch.Generator().manual_seed(0))
    assert abs(per_region - math.log(V - 1)) < 0.03


# ----------------------------------------------------------------------------- answering

def test_generate_takes_one_prompt_per_row():
    net = tiny_net(vocab_size=7, seq_len=8)
    prompts = torch.tensor([[0, 1, 2], [3, 4, 5]])
    ids = sample.generate(net, mask_id=6, length=5, steps=5, prompt=prompts, temperature=0.0)
    assert ids.shape == (2, 8) and torch.equal(ids[:, :3], prompts) and not (ids == 6).any()
    causal = tiny_net(vocab_size=7, seq_len=8, causal=True)
    ids = sample.generate(causal, mask_id=6, length=4, steps=4, prompt=prompts, temperature=0.0)
    assert ids.shape == (2, 7) and torch.equal(ids[:, :3], prompts)


def test_answer_trims_at_end_of_text_and_keeps_the_order():
    tok = char_tok()
    V, eot = tok.vocab_size, tok.eot_id

    class Says(nn.Module):  # answers "7", then end-of-text, whatever the question (it finds the "=")
        def __init__(self):
            super().__init__()
            self.cfg = type("Cfg", (), {"seq_len": 10, "causal": False, "block_size": None})()
            self.dummy = nn.Parameter(torch.zeros(()))

        def forward(self, ids):
            logits = torch.full((*ids.shape, V), -10.0)
            logits[..., eot] = 0.0
            for b in range(ids.shape[0]):
                logits[b, int((ids[b] == tok.encode("=")[0]).nonzero()[0]) + 1, tok.encode("7")[0]] = 5.0
            logits[..., tok.mask_id] = float("-inf")
            return logits + self.dummy

    got = sample.answer(Says(), tok, ["10+20=", "1+2=", "3+4="])
    assert got == ["7", "7", "7"]
    assert sample.until_eot([1, 2, eot, 3], eot) == [1, 2] and sample.until_eot([1, 2], eot) == [1, 2]
    with pytest.raises(ValueError, match="no room is left for an answer"):
        sample.answer(Says(), tok, ["1234567890"])


# ----------------------------------------------------------------------------- training and commands

def pair_config(tmp_path, *overrides, records=PAIRS):
    """A tiny char-level SFT config on addition pairs written to tmp_path."""
    data = write_pairs(tmp_path / "pairs.jsonl", records)
    path = tmp_path / "sft_test.yaml"
    path.write_text(f"""\
model: {{n_layer: 2, n_head: 2, n_embd: 32, seq_len: 10}}
data: {{dataset: json, data_files: {data}, prompt_field: prompt, response_field: response, tokenizer: char,
       val_fraction: 0.1, cache_dir: {tmp_path / 'cache'}}}
train: {{batch_size: 8, max_steps: 6, lr: 3.0e-3, min_lr: 3.0e-4, warmup_steps: 2, log_every: 2, eval_every: 4,
        eval_batches: 1, bound_samples: 2, save_every: 2, keep_last: 2, out_dir: {tmp_path / 'run'}, seed: 0}}
sample: {{length: 8, steps: 4, temperature: 0.0}}
""", encoding="utf-8")
    return load_config(path, list(overrides))


@pytest.fixture(scope="module")
def sft_runs(tmp_path_factory):
    """A tiny diffusion and AR model trained on the addition pairs for a few steps."""
    datasets.disable_progress_bars()
    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TQDM_DISABLE", "1")
        for objective in ("diffusion", "autoregressive"):
            folder = tmp_path_factory.mktemp(objective)
            cfg = pair_config(folder, f"train.objective={objective}", "train.max_steps=6", "train.eval_every=3")
            runs[objective] = (train.train(cfg), folder)
    datasets.enable_progress_bars()
    return runs


@pytest.mark.parametrize("objective", ["diffusion", "autoregressive"])
def test_training_on_pairs_reports_and_answers(sft_runs, objective):
    summary, folder = sft_runs[objective]
    assert summary["step"] == 6 and math.isfinite(summary["val_loss"])
    records = train.read_metrics(folder / "run")
    evals = [r for r in records if "val_loss" in r]
    assert evals and all(" -> " in r["sample"] and r["sample"].split(" -> ")[0].endswith("=") for r in evals)
    assert ("val_bound" in evals[-1]) == (objective == "diffusion")


def test_validation_pairs_are_a_seeded_share_apart_from_training(tmp_path):
    cfg = pair_config(tmp_path)
    train_p, _ = pairs.pair_texts(cfg.data, "train")
    val_p, _ = pairs.pair_texts(cfg.data, "validation")
    assert len(val_p) == 40 and len(train_p) == 360 and not set(train_p) & set(val_p)
    assert pairs.pair_texts(cfg.data, "validation")[0] == val_p


def test_columns_are_mapped_and_joined(tmp_path):
    records = [{"instruction": "add", "input": f"{a} {a}", "output": str(2 * a)} for a in range(30)]
    records[0]["input"] = ""
    cfg = pair_config(tmp_path, "data.prompt_field=[instruction, input]", "data.response_field=output",
                      records=records)
    prompts, responses = pairs.pair_texts(cfg.data, "train")
    assert "add" in prompts and "add\n1 1" in prompts + pairs.pair_texts(cfg.data, "validation")[0]
    cfg = pair_config(tmp_path, "data.response_field=answer", records=PAIRS)
    with pytest.raises(pairs.DataError, match="line 1 has no 'answer' field.*data.response_field"):
        pairs.pair_texts(cfg.data, "train")


def test_long_pairs_are_reported_when_training(tmp_path, capsys):
    records = PAIRS + [{"prompt": "1234567+1=", "response": "1234568"}] * 3
    cfg = pair_config(tmp_path, "train.max_steps=2", records=records)
    tok = char_tok()
    lines = []
    pairs.load_pairs(cfg.data, tok, "train", 10, log=lines.append)
    pairs.load_pairs(cfg.data, tok, "validation", 10, log=lines.append)
    said = " ".join(lines)
    assert re.search(r"skipped \d of \d+ pairs longer than model.seq_len=10", said) and "to 18" in said


def test_config_checks_for_pairs(tmp_path):
    with pytest.raises(ConfigError, match="block_diffusion is not supported on pairs"):
        pair_config(tmp_path, "train.objective=block_diffusion", "model.block_size=5")
    with pytest.raises(ConfigError, match="data.response_field='prompt' must name a column"):
        pair_config(tmp_path, "data.response_field=prompt")
    with pytest.raises(ConfigError, match="train.init_from is empty"):
        pair_config(tmp_path, "train.init_from=''")


def test_init_from_starts_from_the_checkpoint_weights(sft_runs, tmp_path):
    _, folder = sft_runs["diffusion"]
    start = folder / "run" / "latest.pt"
    cfg = pair_config(tmp_path, f"train.init_from={start}", "data.tokenizer=char", "train.max_steps=1",
                      "train.lr=1e-12", "train.min_lr=0", "train.warmup_steps=0", "train.weight_decay=0")
    train.train(cfg)
    before, after = read_checkpoint(start)["model"], read_checkpoint(tmp_path / "run" / "latest.pt")
    assert after["step"] == 1 and "optimizer" in after
    for key, value in before.items():
        assert torch.allclose(value, after["model"][key], atol=1e-6), key
    # the checkpoint's tokenizer is used, not one built from these pairs
    assert after["tokenizer"] == read_checkpoint(start)["tokenizer"]


def test_init_from_refuses_another_shape_or_tokenizer(sft_runs, tmp_path):
    start = sft_runs["diffusion"][1] / "run" / "latest.pt"
    with pytest.raises(CheckpointError, match="model.n_embd=32 but the config asks for 64"):
        train.train(pair_config(tmp_path, f"train.init_from={start}", "model.n_embd=64"))
    with pytest.raises(CheckpointError, match="holds a char tokenizer but data.tokenizer is byte"):
        train.train(pair_config(tmp_path, f"train.init_from={start}", "data.tokenizer=byte"))
    unseen = [{"prompt": "x?", "response": "Z"}] * 40  # 'Z' is not in the checkpoint's vocabulary
    with pytest.raises(pairs.DataError, match="'Z'"):
        train.train(pair_config(tmp_path, f"train.init_from={start}", records=unseen))


def test_generate_answers_a_prompt(sft_runs, capsys):
    ckpt = str(sft_runs["diffusion"][1] / "run" / "latest.pt")
    assert generate.main(["--checkpoint", ckpt, "--prompt", "3+4="]) == 0
    out = capsys.readouterr().out.strip()
    net, tok, _, _ = load_checkpoint(ckpt)
    assert out.startswith("3+4=") and len(out) <= 10 and tok.decode([tok.eot_id]) not in out
    assert generate.main(["--checkpoint", ckpt]) == 2
    assert_one_line_error(2, capsys.readouterr().err, "give --prompt")


@pytest.mark.parametrize("objective", ["diffusion", "autoregressive"])
def test_evaluate_pairs_prints_exact_match_last(sft_runs, tmp_path, capsys, objective):
    ckpt = str(sft_runs[objective][1] / "run" / "latest.pt")
    test = write_pairs(tmp_path / "test.jsonl", PAIRS[:30])
    out = tmp_path / "out.json"
    assert evaluate.main(["--checkpoint", ckpt, "--pairs", str(test), "--out", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    match = re.fullmatch(r"exact_match=(\d\.\d{3}) n=30", last)
    assert match, last
    saved = json.loads(out.read_text())
    assert saved["n"] == 30 and len(saved["examples"]) == 30
    assert abs(sum(e["correct"] for e in saved["examples"]) / 30 - float(match.group(1))) < 1e-3
    assert all(e["correct"] == (e["answer"] == e["expected"]) for e in saved["examples"])


def test_evaluate_bound_lines(sft_runs, tmp_path, capsys):
    ckpt = str(sft_runs["diffusion"][1] / "run" / "latest.pt")
    assert evaluate.main(["--checkpoint", ckpt, "--samples", "2"]) == 0  # the config's validation pairs
    assert re.fullmatch(r"nll_bound=\d+\.\d{4} stderr=\d+\.\d{4} samples=80 rows=40 tokens=\d+",
                        capsys.readouterr().out.strip().splitlines()[-1])
    text = tmp_path / "t.txt"
    text.write_text("1+2=3" * 24, encoding="utf-8")
    assert evaluate.main(["--checkpoint", ckpt, "--text", str(text), "--samples", "3"]) == 0
    assert re.fullmatch(r"nll_bound=\d+\.\d{4} stderr=\d+\.\d{4} samples=36 rows=12 tokens=120",
                        capsys.readouterr().out.strip())
    ar = str(sft_runs["autoregressive"][1] / "run" / "latest.pt")
    assert evaluate.main(["--checkpoint", ar, "--text", str(text)]) == 0
    assert re.fullmatch(r"loss=\d+\.\d{4} stderr=\d+\.\d{4} samples=12 rows=12 tokens=120",
                        capsys.readouterr().out.strip())


def test_evaluate_names_the_bad_line(sft_runs, tmp_path, capsys):
    ckpt = str(sft_runs["diffusion"][1] / "run" / "latest.pt")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "1+1=", "response": "2"}\n{"prompt": "1+1="}\n', encoding="utf-8")
    assert evaluate.main(["--checkpoint", ckpt, "--pairs", str(bad)]) == 2
    assert_one_line_error(2, capsys.readouterr().err, "line 2", "'response'")
    bad.write_text('{"prompt": "1+1=", "response": "2"}\n{"prompt": "WHY", "response": "2"}\n', encoding="utf-8")
    assert evaluate.main(["--checkpoint", ckpt, "--pairs", str(bad)]) == 2
    assert_one_line_error(2, capsys.readouterr().err, "line 2", "'W'")
    bad.write_text('{"prompt": "1+1=1+1=1+1=", "response": "2"}\n', encoding="utf-8")
    assert evaluate.main(["--checkpoint", ckpt, "--pairs", str(bad)]) == 2
    assert_one_line_error(2, capsys.readouterr().err, "line 1", "no room for an answer")
    assert evaluate.main(["--checkpoint", ckpt, "--text", str(tmp_path / "none.txt")]) == 2
    assert_one_line_error(2, capsys.readouterr().err, "no text file")


def test_text_nats_is_the_exact_nll_for_ar_and_the_bound_for_diffusion():
    tok = get_tokenizer("char", chars=["a", "b"])
    texts = ["ab", "bba", "a"]
    ar = tiny_net(vocab_size=tok.vocab_size, seq_len=6, causal=True, seed=1)
    for text, nats in zip(texts, evaluate.text_nats(ar, tok, texts)):
        ids = torch.tensor(tok.encode(text) + [tok.eot_id])  # the padding after the eot is not scored
        with torch.no_grad():
            logp = ar(torch.cat([torch.tensor([tok.mask_id]), ids[:-1]])[None]).log_softmax(-1)[0]  # (n, V)
        assert nats == pytest.approx(-logp[torch.arange(len(ids)), ids].sum().item(), rel=1e-5)
    net = tiny_net(vocab_size=tok.vocab_size, seq_len=6, seed=2)
    row = torch.tensor(tok.encode("ab") + [tok.eot_id] * 4)  # the whole padded row is bounded
    exact = loss.exact_nelbo(net, row, tok.mask_id) * 6
    assert evaluate.text_nats(net, tok, ["ab"], samples=4000)[0] == pytest.approx(exact, rel=0.03)


def test_text_nats_gives_every_text_the_same_noise_and_refuses_a_text_too_long():
    tok = get_tokenizer("char", chars=["a", "b"])
    net = tiny_net(vocab_size=tok.vocab_size, seq_len=6, seed=3)
    together = evaluate.text_nats(net, tok, ["ab", "ba", "ab"], samples=3, seed=7)
    assert together[0] == together[2]  # the same text, the same draws: ranking sees only the model
    assert together == [evaluate.text_nats(net, tok, [t], samples=3, seed=7)[0] for t in ["ab", "ba", "ab"]]
    assert evaluate.text_nats(net, tok, ["ab"], samples=3, seed=8) != together[:1]
    with pytest.raises(ValueError, match="text 1 is 8 tokens with its eot.*shorten it"):
        evaluate.text_nats(net, tok, ["a", "abababa"])
