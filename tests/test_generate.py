"""The generation command: diffusion and AR checkpoints, the [MASK] prompt syntax, one-line errors."""

import datasets
import pytest
import torch

from conftest import CORPUS, assert_one_line_error, write_config
from dllm_lite import generate, train
from dllm_lite.checkpoint import load_checkpoint
from dllm_lite.config import load_config
from dllm_lite.tokenize import get_tokenizer


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny diffusion and a tiny autoregressive checkpoint (seq_len 32), trained for a few steps."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    datasets.disable_progress_bars()
    paths = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TQDM_DISABLE", "1")
        for objective in ("diffusion", "autoregressive"):
            folder = tmp_path_factory.mktemp(objective)
            cfg = load_config(write_config(folder), [f"train.objective={objective}", "train.max_steps=4",
                                                     "train.eval_every=100", "sample.length=12", "sample.steps=6"])
            train.train(cfg)
            paths[objective] = str(folder / "run" / "latest.pt")
    torch.set_num_threads(threads)
    datasets.enable_progress_bars()
    return paths


def run(capsys, *argv) -> tuple[int, str, str]:
    code = generate.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def token_ids(checkpoint, text) -> list[int]:
    """The checkpoint's (character) tokenizer's ids of a printed sample, end-of-text included, so that
    a generated end-of-text (printed as <|endoftext|>) counts as the one token it is."""
    return load_checkpoint(checkpoint)[1].encode(text, allow_eot=True)


def test_parse_prompt_masks_and_pieces():
    tok = get_tokenizer("char", text=CORPUS)
    m = tok.mask_id
    assert generate.parse_prompt("the [MASK]ox", tok) == tok.encode("the ") + [m] + tok.encode("ox")
    assert generate.parse_prompt("[MASK:3]a[MASK]", tok) == [m, m, m] + tok.encode("a") + [m]
    assert generate.parse_prompt("plain", tok) == tok.encode("plain")
    gpt2 = get_tokenizer("gpt2")
    assert generate.parse_prompt("Hello[MASK:2] world", gpt2) == gpt2.encode("Hello") + [gpt2.mask_id] * 2 + gpt2.encode(" world")
    with pytest.raises(ValueError, match="MASK:0"):
        generate.parse_prompt("a [MASK:0] b", tok)


def test_parse_prompt_gives_the_space_before_a_gap_to_the_gap_with_gpt2(gpt2):
    m = gpt2.mask_id
    ids = generate.parse_prompt("To be, or [MASK:2] to be", gpt2)
    assert ids == gpt2.encode("To be, or") + [m, m] + gpt2.encode(" to be")
    assert gpt2.encode(" ") == [220] and 220 not in ids  # no lone space token before the masks
    # two words that carry their own space fill the gap into exactly the natural encoding
    assert len(gpt2.encode(" not quite")) == 2
    assert ids[:4] + gpt2.encode(" not quite") + ids[6:] == gpt2.encode("To be, or not quite to be")
    # only the one space next to the gap moves: two spaces keep a lone one, as "or  not" encodes
    assert generate.parse_prompt("or  [MASK]", gpt2) == gpt2.encode("or ") + [m] == [273, 220, m]
    assert gpt2.encode("or  not")[:2] == [273, 220]
    assert generate.parse_prompt("[MASK] [MASK:2]", gpt2) == [m, m, m]
    assert generate.parse_prompt("Speak:\n[MASK]", gpt2) == gpt2.encode("Speak:\n") + [m]  # other whitespace stays
    assert generate.parse_prompt("The end ", gpt2) == gpt2.encode("The end ")  # no gap after it: kept


@pytest.mark.parametrize("name", ["char", "byte"])
def test_parse_prompt_keeps_the_space_before_a_gap_for_characters_and_bytes(name):
    tok = get_tokenizer(name, text=CORPUS) if name == "char" else get_tokenizer(name)
    m = tok.mask_id
    ids = generate.parse_prompt("she sells [MASK:3] shells", tok)
    assert ids == tok.encode("she sells ") + [m] * 3 + tok.encode(" shells")
    assert len(ids) == len("she sells ___ shells")  # [MASK:n] counts characters, spaces included


def test_diffusion_continues_the_prompt(checkpoints, capsys):
    code, out, err = run(capsys, "--checkpoint", checkpoints["diffusion"], "--prompt", "the ", "--length", "10",
                         "--steps", "5", "--seed", "1")
    assert code == 0, err
    text = out[:-1]  # print's newline (the text itself may hold newlines)
    assert text.startswith("the ") and len(token_ids(checkpoints["diffusion"], text)) == 14 and "[MASK]" not in text
    assert run(capsys, "--checkpoint", checkpoints["diffusion"], "--prompt", "the ", "--length", "10", "--steps", "5",
               "--seed", "1")[1] == out  # the seed fixes the sample


def test_unconditional_and_several_samples(checkpoints, capsys):
    code, out, err = run(capsys, "--checkpoint", checkpoints["diffusion"], "--num-samples", "3",
                         "--strategy", "ancestral", "--temperature", "0.8", "--top-k", "5")
    assert code == 0, err
    assert [out.count(f"sample {i} of 3") for i in (1, 2, 3)] == [1, 1, 1]


def test_infilling_fills_only_the_masks(checkpoints, capsys):
    code, out, err = run(capsys, "--checkpoint", checkpoints["diffusion"], "--prompt", "the [MASK:4] brown[MASK]",
                         "--block-size", "2")
    assert code == 0, err
    ids = token_ids(checkpoints["diffusion"], out[:-1])
    assert len(ids) == len("the ") + 4 + len(" brown") + 1
    assert out.startswith("the ") and ids[8:14] == token_ids(checkpoints["diffusion"], " brown")
    assert "[MASK]" not in out


def test_autoregressive_checkpoint(checkpoints, capsys):
    code, out, err = run(capsys, "--checkpoint", checkpoints["autoregressive"], "--prompt", "she ", "--length", "6")
    assert code == 0, err
    assert out.startswith("she ") and len(token_ids(checkpoints["autoregressive"], out[:-1])) == 10
    code, _, err = run(capsys, "--checkpoint", checkpoints["autoregressive"], "--prompt", "she [MASK] sea")
    assert_one_line_error(code, err, "autoregressive", "cannot infill")



def test_compile_flag_reaches_the_sampler_and_is_refused_for_a_diffusion_checkpoint(checkpoints, capsys,
                                                                                    monkeypatch):
    seen, sampler = [], generate.generate

    def spy(*args, **kwargs):  # the compiled decode itself is tested in test_decode.py
        seen.append(kwargs["compile"])
        return sampler(*args, **dict(kwargs, compile=False))

    monkeypatch.setattr(generate, "generate", spy)
    for flags, expected in (([], False), (["--compile"], True)):
        code, _, err = run(capsys, "--checkpoint", checkpoints["autoregressive"], "--length", "4", *flags)
        assert code == 0, err
        assert seen[-1] is expected
    monkeypatch.setattr(generate, "generate", sampler)
    code, _, err = run(capsys, "--checkpoint", checkpoints["diffusion"], "--length", "4", "--compile")
    assert_one_line_error(code, err, "compile", "causal and block diffusion")


def test_block_cache_refreshed_at_every_call_prints_the_uncached_text(checkpoints, capsys):
    argv = ["--checkpoint", checkpoints["diffusion"], "--prompt", "she ", "--length", "12", "--block-size", "4",
            "--num-samples", "2"]
    code, plain, err = run(capsys, *argv)
    assert code == 0, err
    for mode in ("prefix", "dual"):
        code, out, err = run(capsys, *argv, "--block-cache", mode, "--cache-refresh", "1")
        assert code == 0 and out == plain, err
    code, _, err = run(capsys, *argv[:6], "--block-cache", "dual")
    assert_one_line_error(code, err, "block_cache", "block_size")


def test_autoregressive_checkpoint_without_a_prompt_starts_from_its_beginning_of_sequence_token(checkpoints, capsys,
                                                                                              monkeypatch):
    calls = []

    def recording_generate(net, **kwargs):
        calls.append(kwargs)
        return generate_ids(net, **kwargs)

    generate_ids = generate.generate
    monkeypatch.setattr(generate, "generate", recording_generate)
    code, out, err = run(capsys, "--checkpoint", checkpoints["autoregressive"], "--seed", "3")
    assert code == 0, err
    assert calls[0]["prompt"] is None and calls[0]["length"] == 12  # sample.length: nothing added, nothing hidden
    assert len(token_ids(checkpoints["autoregressive"], out[:-1])) == 12


def test_errors_are_one_line(checkpoints, capsys, tmp_path):
    ckpt = checkpoints["diffusion"]
    assert_one_line_error(*run(capsys, "--checkpoint", str(tmp_path / "none.pt"))[::2], "no checkpoint", "none.pt")
    truncated = tmp_path / "cut.pt"
    data = open(ckpt, "rb").read()
    truncated.write_bytes(data[: len(data) // 3])
    assert_one_line_error(*run(capsys, "--checkpoint", str(truncated))[::2], "truncated", "cut.pt")
    assert_one_line_error(*run(capsys, "--checkpoint", ckpt, "--prompt", "x" * 40)[::2], "40", "32", "shorter prompt")
    assert_one_line_error(*run(capsys, "--checkpoint", ckpt, "--prompt", "the ", "--length", "30")[::2],
                          "34", "32", "--length 28")
    assert_one_line_error(*run(capsys, "--checkpoint", ckpt, "--prompt", "")[::2], "empty", "omit --prompt")
    assert_one_line_error(*run(capsys, "--checkpoint", ckpt, "--steps", "0")[::2], "--steps", "at least 1")
    code, _, err = run(capsys, "--checkpoint", ckpt, "--prompt", "the ", "--length", "0")  # 4 of 32 positions used
    assert_one_line_error(code, err, "--length is 0", "[MASK]")
    assert "fills all" not in err
    assert_one_line_error(*run(capsys, "--checkpoint", ckpt, "--prompt", "the ", "--strategy", "threshold")[::2],
                          "threshold")


def test_steps_below_the_number_of_blocks_is_one_line_before_sampling(checkpoints, capsys, monkeypatch):
    def no_sampling(*args, **kwargs):
        raise AssertionError("sampled although --steps is below the number of blocks")

    monkeypatch.setattr(generate, "generate", no_sampling)
    ckpt = checkpoints["diffusion"]
    assert_one_line_error(*run(capsys, "--checkpoint", ckpt, "--length", "16", "--block-size", "4", "--steps", "2")[::2],
                          "--steps 2 is fewer than the 4 blocks", "raise --steps to 4 or --block-size to 8")
    # infilling: the blocks run from the first mask to the end, and only those holding a mask count
    assert_one_line_error(*run(capsys, "--checkpoint", ckpt, "--prompt", "the [MASK:2] brown fox [MASK]",
                               "--block-size", "3", "--steps", "1")[::2], "fewer than the 2 blocks", "--steps to 2")
    assert_one_line_error(*run(capsys, "--checkpoint", ckpt, "--length", "4", "--block-size", "0")[::2],
                          "--block-size must be at least 1")


def test_default_steps_cover_every_block(checkpoints, capsys):
    # sample.steps is 6 in this checkpoint; blocks of one token need 10 steps
    code, out, err = run(capsys, "--checkpoint", checkpoints["diffusion"], "--length", "10", "--block-size", "1")
    assert code == 0, err
    assert len(token_ids(checkpoints["diffusion"], out[:-1])) == 10
    code, out, err = run(capsys, "--checkpoint", checkpoints["diffusion"], "--length", "10", "--block-size", "5",
                         "--steps", "2")
    assert code == 0, err
