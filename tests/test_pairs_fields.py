"""One reader and one rule for prompt/response pairs, in training and in `evaluate --pairs`: a field that is not
a string, a key written twice and a file that is not UTF-8 are refused with the file and line, never coerced."""

import json

import datasets
import pytest

from conftest import assert_one_line_error
from dllm_lite import evaluate, pairs, train
from dllm_lite.config import load_config

GOOD = [{"prompt": f"{a}+{b}=", "response": str(a + b)} for a in range(6) for b in range(6)]


@pytest.fixture(autouse=True)
def no_bars(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def pair_config(tmp_path, lines: list[str], name="pairs.jsonl", *overrides):
    """A char-level SFT config on a pairs file of the given raw lines."""
    data = tmp_path / name
    data.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    path = tmp_path / "sft.yaml"
    path.write_text(f"""\
model: {{n_layer: 1, n_head: 2, n_embd: 16, seq_len: 10}}
data: {{dataset: json, data_files: {data}, prompt_field: prompt, response_field: response, tokenizer: byte,
       val_fraction: 0.1, cache_dir: {tmp_path / 'cache'}}}
train: {{batch_size: 4, max_steps: 1, eval_every: 1, eval_batches: 1, bound_samples: 1, out_dir: {tmp_path / 'run'}}}
""", encoding="utf-8")
    return path, data


@pytest.mark.parametrize("value, kind", [("0", "int"), ("false", "bool"), ("null", "null"), (None, "no 'response'"),
                                         ("true", "bool"), ('["cba"]', "list")])
def test_a_field_that_is_not_a_string_is_refused_by_training_and_evaluate_alike(tmp_path, capsys, value, kind):
    """Line 5 of the file: training (the config's data) and evaluate --pairs give one line naming the file, the
    line and the field; before, training read 0 / false / null / missing as an empty answer, true as "True"
    and a list as its Python text."""
    bad = '{"prompt": "1+1="}' if value is None else f'{{"prompt": "1+1=", "response": {value}}}'
    lines = [json.dumps(r) for r in GOOD[:4]] + [bad] + [json.dumps(r) for r in GOOD[4:]]
    config, data = pair_config(tmp_path, lines)
    code = train.main(["--config", str(config)])
    assert_one_line_error(code, capsys.readouterr().err, str(data), "line 5", "'response'", kind)
    with pytest.raises(pairs.DataError, match=f"{data}: line 5"):
        pairs.pair_texts(load_config(config, []).data, "train")
    code = evaluate.main(["--checkpoint", str(tmp_path / "unused.pt"), "--pairs", str(data)])
    assert_one_line_error(code, capsys.readouterr().err, str(data), "line 5", "'response'", kind)


def test_a_key_written_twice_is_refused_by_both(tmp_path, capsys):
    """json keeps the last of two equal keys without a word; both readers refuse the line instead."""
    lines = [json.dumps(r) for r in GOOD[:2]] + ['{"prompt": "1+1=", "response": "2", "response": "3"}']
    lines += [json.dumps(r) for r in GOOD[2:]]
    config, data = pair_config(tmp_path, lines)
    with pytest.raises(pairs.DataError, match=r"line 3: the key 'response' appears twice"):
        pairs.pair_texts(load_config(config, []).data, "train")
    code = evaluate.main(["--checkpoint", str(tmp_path / "unused.pt"), "--pairs", str(data)])
    assert_one_line_error(code, capsys.readouterr().err, str(data), "line 3", "'response' appears twice")


def test_bytes_that_are_not_utf8_name_the_file(tmp_path, capsys):
    data = tmp_path / "latin1.jsonl"
    data.write_bytes(b'{"prompt": "caf\xe9", "response": "1"}\n')
    code = evaluate.main(["--checkpoint", str(tmp_path / "unused.pt"), "--pairs", str(data)])
    assert_one_line_error(code, capsys.readouterr().err, str(data), "not UTF-8")


def test_rows_of_a_dataset_without_lines_keep_the_same_rule(tmp_path):
    """A .json file holding one document (a list) is read by datasets, not line by line: its rows are checked."""
    records = GOOD[:3] + [{"prompt": "1+1=", "response": None}] + GOOD[3:]
    config, data = pair_config(tmp_path, [json.dumps(records)], "pairs.json")
    with pytest.raises(pairs.DataError, match=r"train row \d+: 'response' is null"):
        pairs.pair_texts(load_config(config, ["data.val_fraction=0.01"]).data, "train")
