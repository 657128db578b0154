"""The evaluation command's faults: --out checked before any work and written whole or not at all, pairs
too long for the model skipped and counted, --offset refused where it means nothing."""

import errno
import json

import datasets
import pytest

from conftest import assert_one_line_error
from dllm_lite import evaluate, train
from dllm_lite.config import load_config

PAIRS = [{"prompt": f"{a}+{b}=", "response": str(a + b)} for a in range(10) for b in range(10)]


def write_pairs(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pairs_checkpoint(tmp_path_factory):
    """A char-level diffusion model of seq_len 10 trained for two steps on addition pairs."""
    folder = tmp_path_factory.mktemp("sft")
    data = write_pairs(folder / "pairs.jsonl", PAIRS)
    config = folder / "sft.yaml"
    config.write_text(f"""\
model: {{n_layer: 1, n_head: 2, n_embd: 16, seq_len: 10}}
data: {{dataset: json, data_files: {data}, prompt_field: prompt, response_field: response, tokenizer: char,
       val_fraction: 0.1, cache_dir: {folder / 'cache'}}}
train: {{batch_size: 4, max_steps: 2, warmup_steps: 1, log_every: 1, eval_every: 2, eval_batches: 1, bound_samples: 1,
        save_every: 2, out_dir: {folder / 'run'}, seed: 0}}
sample: {{length: 4, steps: 4}}
""", encoding="utf-8")
    datasets.disable_progress_bars()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TQDM_DISABLE", "1")
        summary = train.train(load_config(config, []))
    datasets.enable_progress_bars()
    return summary["checkpoint"]


@pytest.mark.parametrize("where, words", [
    ("", ["--out is empty"]),
    ("folder", ["is a folder", "results.json"]),
    ("missing/results.json", ["does not exist"]),
    ("a_file/results.json", ["is not a folder"]),
    ("/proc/results.json", ["cannot write in /proc"]),
])
def test_out_is_checked_before_any_work(tmp_path, capsys, monkeypatch, where, words):
    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("x")
    out = where if where in ("", "/proc/results.json") else str(tmp_path / where)
    monkeypatch.setattr(evaluate, "load_checkpoint", lambda *a, **k: pytest.fail("the checkpoint was read first"))
    code = evaluate.main(["--checkpoint", str(tmp_path / "any.pt"), "--text", "t.txt", "--out", out])
    assert_one_line_error(code, capsys.readouterr().err, *words)


def test_a_failed_write_keeps_the_score_line_and_the_earlier_file(pairs_checkpoint, tmp_path, capsys, monkeypatch):
    """A full disk during the write: the score is printed first, the error is one line, and the results file of
    an earlier evaluation is left whole (the new one went to a temporary file that is removed)."""
    test = write_pairs(tmp_path / "test.jsonl", PAIRS[:5])
    out = tmp_path / "results.json"
    assert evaluate.main(["--checkpoint", pairs_checkpoint, "--pairs", str(test), "--out", str(out)]) == 0
    earlier = out.read_bytes()
    assert json.loads(earlier)["n"] == 5
    capsys.readouterr()

    def disk_full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(evaluate.os, "fsync", disk_full)
    code = evaluate.main(["--checkpoint", pairs_checkpoint, "--pairs", str(test), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1 and captured.out.strip().splitlines()[-1].startswith("exact_match=")
    err = [line for line in captured.err.splitlines() if line.startswith("error")]  # (the progress bar aside)
    assert len(err) == 1 and "No space left on device" in err[0] and "score above stands" in err[0]
    assert out.read_bytes() == earlier
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_pairs_too_long_for_the_model_are_skipped_and_counted(pairs_checkpoint, tmp_path, capsys):
    """seq_len 10: "1+1=" with "2222222" and its end-of-text needs 12 tokens. It is skipped, not scored as a
    miss, and the line before the score names the seq_len that would fit it."""
    test = write_pairs(tmp_path / "test.jsonl", [{"prompt": "1+1=", "response": "2"},
                                                 {"prompt": "1+1=", "response": "2222222"},
                                                 {"prompt": "2+2=", "response": "4"}])
    out = tmp_path / "results.json"
    assert evaluate.main(["--checkpoint", pairs_checkpoint, "--pairs", str(test), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("exact_match=") and lines[-1].endswith(" n=2 skipped=1"), lines[-1]
    assert "skipped 1 of 3 pairs" in lines[-2] and "seq_len=10" in lines[-2] and "seq_len=12" in lines[-2]
    saved = json.loads(out.read_text())
    assert saved["n"] == 2 and saved["skipped"] == 1 and len(saved["examples"]) == 2
    write_pairs(test, [{"prompt": "1+1=", "response": "2222222"}])
    code = evaluate.main(["--checkpoint", pairs_checkpoint, "--pairs", str(test)])
    assert_one_line_error(code, capsys.readouterr().err, "no pair fits", "seq_len=12")


def test_offset_is_refused_for_pairs(pairs_checkpoint, tmp_path, capsys):
    """--offset shifts text rows: with a pairs file, or on a checkpoint whose validation split holds pairs, it would
    be ignored, so it is one line instead; on text it still works."""
    code = evaluate.main(["--checkpoint", pairs_checkpoint, "--samples", "1", "--offset", "3"])
    assert_one_line_error(code, capsys.readouterr().err, "--offset 3", "one pair per row")
    test = write_pairs(tmp_path / "test.jsonl", PAIRS[:2])
    code = evaluate.main(["--checkpoint", pairs_checkpoint, "--pairs", str(test), "--offset", "3"])
    assert_one_line_error(code, capsys.readouterr().err, "--offset 3", "one pair per row")
    text = tmp_path / "t.txt"
    text.write_text("1+2=3" * 24, encoding="utf-8")
    code = evaluate.main(["--checkpoint", pairs_checkpoint, "--text", str(text), "--samples", "1", "--offset", "3"])
    assert code == 0


def test_a_text_file_that_is_not_utf8_is_named(pairs_checkpoint, tmp_path, capsys):
    text = tmp_path / "latin1.txt"
    text.write_bytes(b"1+2=3 caf\xe9 " * 20)
    code = evaluate.main(["--checkpoint", pairs_checkpoint, "--text", str(text), "--samples", "1"])
    assert_one_line_error(code, capsys.readouterr().err, str(text), "not UTF-8", "offset 9")


def test_a_write_cut_short_leaves_the_earlier_results_whole(tmp_path, monkeypatch):
    """A kill half way through writing (here an interrupt after half the JSON) used to leave a truncated or empty
    file in place of the earlier results; the new results go to a temporary file that is removed instead."""
    path = tmp_path / "results.json"
    path.write_text('{"exact_match": 0.5}', encoding="utf-8")

    def half_then_killed(obj, file, **kwargs):
        file.write('{"exact_ma')
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate.json, "dump", half_then_killed)
    with pytest.raises(KeyboardInterrupt):
        evaluate.write_results(path, {"exact_match": 0.75})
    assert path.read_text(encoding="utf-8") == '{"exact_match": 0.5}' and list(tmp_path.iterdir()) == [path]
