"""Tests for dllm_lite.config: YAML loading, dotted overrides, round trips, and one-line errors with a fix."""
import math
import textwrap
import time
import typing

import pytest
import yaml

from dllm_lite.config import (SECTIONS, Config, ConfigError, apply_overrides, config_from_dict, config_to_dict,
                              load_config)

TINY = """\
params: 25M
model:
  n_layer: 4
  n_embd: 256
  n_head: 4
train:
  lr: 1e-3          # PyYAML reads this as the string '1e-3'
  min_lr: 1.0e-4
  max_steps: 1e4    # a whole number in scientific notation
"""


def write(tmp_path, text, name="tiny.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_load_a_yaml_file_with_defaults_for_what_it_leaves_out(tmp_path):
    cfg = load_config(write(tmp_path, TINY))
    assert cfg.name == "tiny" and cfg.params == "25M"  # name from the file's stem
    assert (cfg.model.n_layer, cfg.model.n_embd, cfg.model.n_head, cfg.model.seq_len) == (4, 256, 4, 256)
    assert cfg.train.lr == 1e-3 and isinstance(cfg.train.lr, float)
    assert cfg.train.max_steps == 10_000 and isinstance(cfg.train.max_steps, int)
    assert cfg.data.dataset == "tiny_shakespeare" and cfg.sample.strategy == "confidence"
    assert cfg.train.out_dir == "runs/tiny"  # runs/<name> unless the file sets it
    assert load_config(write(tmp_path, TINY), ["name=probe"]).train.out_dir == "runs/probe"


def test_dotted_overrides_are_parsed_as_yaml(tmp_path):
    cfg = load_config(write(tmp_path, TINY), ["train.max_steps=200", "train.lr=3e-4", "data.subset=null",
                                              "data.dataset=text", "data.data_files=[a.txt, b.txt]",
                                              "train.compile=true", "name=smoke", "model.dropout=0"])
    assert cfg.train.max_steps == 200 and cfg.train.lr == 3e-4 and cfg.data.subset is None
    assert cfg.data.data_files == ["a.txt", "b.txt"] and cfg.train.compile is True and cfg.name == "smoke"
    assert cfg.model.dropout == 0.0 and isinstance(cfg.model.dropout, float)  # an int is fine for a float


def test_round_trip_through_dict_and_yaml(tmp_path):
    cfg = load_config(write(tmp_path, TINY), ["data.data_files=x.txt", "data.dataset=text", "sample.top_p=0.9"])
    plain = config_to_dict(cfg)
    assert config_from_dict(plain) == cfg
    assert config_from_dict(yaml.safe_load(yaml.safe_dump(plain))) == cfg
    assert load_config(write(tmp_path, yaml.safe_dump(plain), "again.yaml")) == cfg
    assert config_from_dict({}) == Config()


def test_an_empty_data_section_keeps_the_bundled_default():
    assert config_from_dict({"data": None, "model": {}}).data.dataset == "tiny_shakespeare"


# (config dict, what the message must contain: the key, then the fix)
BAD = [
    ({"modle": {}}, "unknown section 'modle'", "did you mean 'model'?"),
    ({"model": {"n_layers": 2}}, "'model.n_layers'", "did you mean 'n_layer'?"),
    ({"data": {"max_length": 512}}, "data.max_length", "use model.seq_len"),
    ({"train": {"max_steps": "abc"}}, "train.max_steps must be an integer", "train.max_steps: 1000"),
    ({"train": {"max_steps": True}}, "train.max_steps must be an integer", "train.max_steps: 1000"),
    ({"train": {"max_steps": 2.5}}, "train.max_steps must be an integer", "train.max_steps: 1000"),
    ({"train": {"lr": "fast"}}, "train.lr must be a number", "train.lr: 0.001"),
    ({"train": {"compile": "yes please"}}, "train.compile must be true or false", "train.compile: true"),
    ({"data": {"subset": 5}}, "data.subset must be a string or null", "wikitext-103-raw-v1"),
    ({"model": {"n_embd": 100, "n_head": 6}}, "model.n_embd (100) must be divisible by model.n_head (6)", "n_head: 5"),
    ({"model": {"n_embd": 12, "n_head": 4}}, "even head size", "model.position: learned"),
    ({"model": {"seq_len": 0}}, "model.seq_len must be at least 1", "got 0"),
    ({"model": {"mlp_ratio": 0}}, "model.mlp_ratio must be at least 1", "got 0"),
    ({"model": {"conv": 4}}, "model.conv must be 0 (none) or an odd width", "got 4"),
    ({"model": {"position": "alibi"}}, "model.position='alibi'", "choices: rotary, learned"),
    ({"train": {"lr": 0}}, "train.lr must be positive", "train.lr: 3.0e-4"),
    ({"train": {"lr": 1e-4, "min_lr": 1e-3}}, "train.min_lr (0.001)", "lower train.min_lr"),
    ({"train": {"batch_size": 0}}, "train.batch_size must be at least 1", "got 0"),
    ({"train": {"objective": "autoregresive"}}, "train.objective='autoregresive'", "did you mean 'autoregressive'?"),
    ({"train": {"weighting": "uniform"}}, "train.weighting='uniform'", "choices: elbo, mean"),
    ({"train": {"optimizer": "moun"}}, "train.optimizer='moun'", "did you mean 'muon'?"),
    ({"train": {"muon_lr": 0.01}}, "train.muon_lr is set but train.optimizer is adamw", "train.optimizer: muon"),
    ({"train": {"optimizer": "muon", "muon_lr": -1}}, "train.muon_lr must be positive", "train.muon_lr: 6.0e-3"),
    ({"train": {"schedule": "cosin"}}, "train.schedule='cosin'", "did you mean 'cosine'?"),
    ({"train": {"dtype": "float16"}}, "train.dtype='float16'", "choices: auto, float32, bfloat16"),
    ({"train": {"device": "gpu"}}, "train.device='gpu'", "use auto, cpu, cuda"),
    ({"data": {"val_fraction": 1.0}}, "data.val_fraction must be in (0, 1)", "e.g. 0.05"),
    ({"data": {"val_fraction": 0}}, "data.val_fraction must be in (0, 1)", "e.g. 0.05"),
    ({"data": {"tokenizer": "gtp2"}}, "data.tokenizer='gtp2'", "did you mean 'gpt2'?"),
    ({"data": {"dataset": "json"}}, "data.data_files is not set", "data.data_files: path/*.json"),
    ({"data": {"data_files": "notes/*.txt"}}, "data.data_files is set but data.dataset='tiny_shakespeare'",
     "set data.dataset to text, json or parquet"),
    ({"sample": {"steps": 0}}, "sample.steps must be at least 1", "got 0"),
    ({"data": {"val_tokens": 0}}, "data.val_tokens must be at least 1 or null", "got 0"),
    ({"sample": {"length": 512}}, "sample.length (512) exceeds model.seq_len (256)", "lower sample.length"),
    ({"sample": {"strategy": "greedy"}}, "sample.strategy='greedy'", "choices: ancestral, confidence, threshold"),
    ({"sample": {"strategy": "threshold"}}, "sample.strategy=threshold needs sample.threshold", "threshold: 0.9"),
    ({"sample": {"top_p": 1.5}}, "sample.top_p must be in (0, 1]", "got 1.5"),
    ({"sample": {"length": 16, "steps": 2, "block_size": 4}}, "sample.steps (2) is fewer than the 4 blocks",
     "raise sample.steps to 4 or sample.block_size to 8"),
    ({"sample": {"length": 10, "steps": 3, "block_size": 3}}, "sample.steps (3) is fewer than the 4 blocks",
     "raise sample.steps to 4 or sample.block_size to 4"),
    ({"model": 6}, "section 'model' must be a mapping", "one key per line"),
    ({"train": {"seed": 2**32}}, "train.seed must be in [0, 2**32 - 1 = 4294967295]", "got 4294967296"),
    ({"train": {"seed": -1}}, "train.seed must be in [0, 2**32 - 1", "train.seed: 0"),
    ({"train": {"lr": float("nan")}}, "train.lr must be a finite number, got nan", "train.lr: 0.0003"),
    ({"train": {"lr": float("inf")}}, "train.lr must be a finite number, got inf", "train.lr: 0.0003"),
    ({"train": {"max_minutes": "1e999"}}, "train.max_minutes must be a finite number, got inf", "max_minutes: null"),
    ({"sample": {"temperature": float("inf")}}, "sample.temperature must be a finite number", "temperature: 1.0"),
    ({"sample": {"top_p": float("nan")}}, "sample.top_p must be a finite number, got nan", "sample.top_p: null"),
    ({"sample": {"threshold": float("-inf")}}, "sample.threshold must be a finite number, got -inf", "null"),
]


@pytest.mark.parametrize("bad, key, fix", BAD, ids=[next(iter(bad)) + "-" + key[:30] for bad, key, fix in BAD])
def test_each_invalid_value_is_one_line_naming_file_key_and_fix(tmp_path, bad, key, fix):
    path = write(tmp_path, yaml.safe_dump(bad), "broken.yaml")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    assert key in message and fix in message


def test_sample_steps_may_equal_the_number_of_blocks(tmp_path):
    cfg = load_config(write(tmp_path, TINY), ["sample.length=16", "sample.steps=4", "sample.block_size=4"])
    assert (cfg.sample.steps, cfg.sample.block_size) == (4, 4)
    assert load_config(write(tmp_path, TINY), ["sample.length=10", "sample.steps=4", "sample.block_size=3"])


def test_errors_from_overrides_name_the_override(tmp_path):
    path = write(tmp_path, TINY)
    for override, expected in [("train.lrr=1", "did you mean 'lr'?"), ("trian.lr=1", "did you mean 'train'?"),
                               ("train.lr", "section.key=value"), ("a.b.c=1", "is not section.key"),
                               ("data.max_length=5", "use model.seq_len")]:
        with pytest.raises(ConfigError) as error:
            load_config(path, [override])
        assert f"(override {override!r})" in str(error.value) and expected in str(error.value)
        assert "\n" not in str(error.value)


def test_apply_overrides_changes_the_dict_in_place():
    d = {"train": None}
    assert apply_overrides(d, ["train.max_steps=5", "sample.top_k=40"]) is d
    assert d == {"train": {"max_steps": 5}, "sample": {"top_k": 40}}


def test_missing_file_lists_the_configs_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    for name in ("small.yaml", "tiny.yaml"):
        (tmp_path / "configs" / name).write_text("train: {max_steps: 1}\n")
    with pytest.raises(ConfigError, match=r"config file 'configs/tiyn.yaml' not found; the files in configs/ are: "
                                          r"small.yaml, tiny.yaml"):
        load_config("configs/tiyn.yaml")


def test_empty_or_malformed_yaml_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"empty\.yaml: the config file is empty; add at least one section"):
        load_config(write(tmp_path, "# nothing but a comment\n", "empty.yaml"))
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML .*line 3.*fix the syntax") as error:
        load_config(write(tmp_path, "model:\n  n_layer: 6\n   n_head: 6\n", "bad.yaml"))
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match=r"list\.yaml: a config is a mapping of sections, got list"):
        load_config(write(tmp_path, "- model\n- train\n", "list.yaml"))


def test_every_float_key_refuses_nan_and_infinity():
    keys = [f"{name}.{key}" for name, section in SECTIONS.items()
            for key, hint in typing.get_type_hints(section).items() if float in (typing.get_args(hint) or (hint,))]
    assert {"train.lr", "sample.temperature", "sample.top_p", "sample.threshold", "model.dropout"} <= set(keys)
    for key in keys:
        section, name = key.split(".")
        for value in (math.nan, math.inf, -math.inf):
            with pytest.raises(ConfigError, match=rf"^<dict>: {key} must be a finite number, got {value}; e\.g\."):
                config_from_dict({section: {name: value}})


def test_train_seed_takes_the_whole_numpy_range(tmp_path):
    assert load_config(write(tmp_path, TINY), ["train.seed=4294967295"]).train.seed == 2**32 - 1


def test_a_key_written_twice_is_refused_naming_it_and_its_lines(tmp_path):
    path = write(tmp_path, """\
        train:
          lr: 1.0e-3
          max_steps: 10
          lr: 2.0e-3
        """, "twice.yaml")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"{path}: key 'lr' appears twice in one mapping (line 2 and line 4); keep one of them"
    with pytest.raises(ConfigError, match=r"key 'train' appears twice .*line 1 and line 3"):
        load_config(write(tmp_path, "train: {lr: 1.0e-3}\nmodel: {}\ntrain: {max_steps: 5}\n", "sections.yaml"))
    with pytest.raises(ConfigError, match=r"\(override 'sample.top_k=\{a: 1, a: 2\}'\): key 'a' appears twice"):
        load_config(write(tmp_path, TINY), ["sample.top_k={a: 1, a: 2}"])
    merged = load_config(write(tmp_path, "train: {<<: {lr: 1.0e-3, min_lr: 1.0e-4}, lr: 2.0e-3}\n", "merge.yaml"))
    assert (merged.train.lr, merged.train.min_lr) == (2.0e-3, 1.0e-4)  # a merge key's values may be overridden


def alias_bomb(levels: int, width: int = 9) -> str:
    """A billion-laughs document: each anchor is a list of `width` aliases of the one before (width**levels values)."""
    anchors = [f"&l0 [{', '.join(['lol'] * width)}]"]
    anchors += [f"&l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return f"params: [{', '.join(anchors)}]\n"


def test_an_alias_bomb_is_refused_at_once_in_one_short_line(tmp_path):
    started = time.time()
    for levels in (6, 30):  # 9**6 = 531,441 values; 9**30, about 4e28
        path = write(tmp_path, alias_bomb(levels), f"bomb{levels}.yaml")
        with pytest.raises(ConfigError) as error:
            load_config(path)
        message = str(error.value)
        assert message.startswith(f"{path}: its YAML aliases (*name) expand it by more than 10,000 values")
        assert "\n" not in message and len(message) < 300
    with pytest.raises(ConfigError, match=r"\(override 'params=&a \[\*a\]'\): its YAML aliases"):
        load_config(write(tmp_path, TINY), ["params=&a [*a]"])  # an alias inside its own anchor: endless
    assert time.time() - started < 5
    shared = load_config(write(tmp_path, "train: {optimizer: muon, lr: &peak 6.0e-3, muon_lr: *peak}\n", "ok.yaml"))
    assert shared.train.muon_lr == shared.train.lr == 6.0e-3  # a few aliases are fine


def test_a_huge_value_is_quoted_short(tmp_path):
    big = {"params": [f"item {i}" for i in range(5000)], "train": {"device": "x" * 100_000}}
    for bad in ({"params": big["params"]}, {"train": big["train"]}, {"x" * 100_000: 1}):
        with pytest.raises(ConfigError) as error:
            load_config(write(tmp_path, yaml.safe_dump(bad), "big.yaml"))
        assert len(str(error.value)) < 400 and "\n" not in str(error.value)
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, TINY), ["train.lr=" + "[" * 10 + "1" + "]" * 10])
    assert len(str(error.value)) < 400
