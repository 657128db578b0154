"""One YAML file describes a run: model, data, training and sampling, checked before anything starts.

A config file has up to four sections and two top-level keys::

    name: tiny            # optional; defaults to the file's stem
    params: 25M           # optional human size claim, checked by a test against the model
    model:  {n_layer: 6, n_head: 6, n_embd: 384, seq_len: 256}
    data:   {dataset: tiny_shakespeare, tokenizer: gpt2}
    train:  {objective: diffusion, batch_size: 32, max_steps: 1000, lr: 3e-4}
    sample: {length: 128, steps: 64, strategy: confidence}

Every key has a default (the dataclasses of config_keys.py, re-exported here), so a file
lists only what it changes. Dotted overrides change one value from the command line
(``train.max_steps=200``, ``data.subset=null``); the value is read as YAML. Validation is
strict: an unknown key, a wrong type or an impossible value is a `ConfigError` whose single
line names the file, the key and the fix, before a model is built or a byte of data is read.

YAML 1.1 (PyYAML) reads ``1e-3`` as a *string* (it wants ``1.0e-3``), so float fields
accept numeric strings, and whole-number fields accept ``1e4``. Float fields must be finite
(``.nan`` and ``.inf`` are refused for all of them).

The files of a config:

    config_keys.py  the sections as dataclasses: every key, its type, its default and its meaning
    config_yaml.py  PyYAML's safe loader, refusing a repeated key and an alias bomb
    config.py       this file: load_config, the dotted overrides, the strict checks

References: nanoGPT's configurator.py (a file plus ``--key=value`` overrides);
Python's dataclasses and difflib (the "did you mean" hints).
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from pathlib import Path

import yaml

from .config_keys import SECTIONS, TOP_LEVEL, Config, DataSection, ModelSection, SampleSection, TrainSection
from .config_yaml import ConfigLoader, Refused, short_repr
from .corrupt import SCHEDULES
from .sample import STRATEGIES
from .tasks import TASK_DATASETS
from .tokenize import BUNDLED_CORPORA, available_tokenizers

__all__ = [
    "ConfigError", "Config", "ModelSection", "DataSection", "TrainSection", "SampleSection",
    "load_config", "config_from_dict", "config_to_dict", "apply_overrides",
]


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key and the fix."""


OBJECTIVES = ("diffusion", "autoregressive", "block_diffusion")
MOVED = {"data.max_length": "model.seq_len", "model.vocab_size": "data.tokenizer (the tokenizer sets it)",
         "model.causal": "train.objective=autoregressive"}
EXAMPLES = {"name": "tiny", "params": "25M", "data.dataset": "tiny_shakespeare", "data.subset": "wikitext-103-raw-v1",
            "data.data_files": "data/*.txt", "data.text_field": "text", "data.tokenizer": "gpt2",
            "data.cache_dir": ".cache/dllm_lite", "train.out_dir": "runs/tiny", "train.device": "auto"}
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
MAX_SEED = 2**32 - 1  # numpy's legacy seeding (np.random.seed) takes [0, 2**32 - 1]


def _fail(source: str, message: str) -> typing.NoReturn:
    raise ConfigError(f"{source}: {message}")


def _suggest(word: str, choices, what: str = "choices") -> str:
    """'did you mean 'x'? (choices: a, b)' when a choice is close to `word`, else 'choices: a, b'."""
    close = difflib.get_close_matches(word[:100], list(choices), n=1)  # a longer word is close to no key
    listing = f"{what}: {', '.join(choices)}"
    return f"did you mean {close[0]!r}? ({listing})" if close else listing


def _type_name(hint) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list"}
    parts = [names.get(typing.get_origin(arg) or arg, "null") for arg in typing.get_args(hint) or (hint,)]
    return " or ".join(parts)


def _coerce(value, hint, source: str, key: str):
    """Check `value` against the field type `hint`; return it (ints made floats for float fields)."""
    allowed = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if value is None and type(None) in allowed:
        return None
    if isinstance(value, bool):
        if bool in allowed:
            return value
    elif float in allowed and (isinstance(value, (int, float)) or (isinstance(value, str) and NUMBER.fullmatch(value))):
        number = float(value)
        if not math.isfinite(number):  # .nan passes no comparison and .inf passes most: refuse both here, once
            default = _default(key)
            _fail(source, f"{key} must be a finite number, got {number}; e.g. {key}: "
                          f"{'null' if default is None else default} (its default)")
        return number
    elif int in allowed and isinstance(value, int):
        return value
    elif int in allowed and isinstance(value, (float, str)) and NUMBER.fullmatch(str(value)) and float(value).is_integer():
        return int(float(value))
    elif str in allowed and isinstance(value, str):
        return value
    elif list[str] in allowed and isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    example = EXAMPLES.get(key) or {int: "1000", float: "0.001", bool: "true", str: "'some text'"}[allowed[0]]
    _fail(source, f"{key} must be {_type_name(hint)}, got {short_repr(value)} ({type(value).__name__}); "
                  f"write e.g. {key}: {example}")


def _default(key: str):
    """The default value of a dotted `section.key` (None for top-level keys and unknown ones)."""
    section, _, name = key.partition(".")
    fields = {f.name: f for f in dataclasses.fields(SECTIONS[section])} if section in SECTIONS else {}
    return fields[name].default if name in fields else None


def _check_section(section_cls, values, source: str, section: str):
    """Build one section dataclass from a dict, rejecting unknown keys and wrong types."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        _fail(source, f"section {section!r} must be a mapping of key: value, got {type(values).__name__}; "
                      f"write e.g. '{section}: {{...}}' with one key per line")
    hints = typing.get_type_hints(section_cls)
    kwargs = {}
    for key, value in values.items():
        _check_key(section, key, source)
        kwargs[key] = _coerce(value, hints[key], source, f"{section}.{key}")
    return section_cls(**kwargs)


def _check_key(section: str, key, source: str) -> None:
    """Reject a key that the section does not have, suggesting the closest one (or where it moved)."""
    fields = [f.name for f in dataclasses.fields(SECTIONS[section])]
    dotted = f"{section}.{key}"
    if dotted in MOVED:
        _fail(source, f"{dotted} is not a config key; use {MOVED[dotted]} instead")
    if key not in fields:
        _fail(source, f"unknown key {short_repr(dotted)}: {_suggest(str(key), fields, f'the {section} keys')}")


def _require(ok: bool, source: str, message: str) -> None:
    if not ok:
        _fail(source, message)


def _validate(cfg: Config, source: str) -> None:
    """Reject values that cannot work, each with the key and the fix."""
    m, d, t, s = cfg.model, cfg.data, cfg.train, cfg.sample
    for key in ("n_layer", "n_head", "n_embd", "seq_len", "mlp_ratio"):
        _require(getattr(m, key) >= 1, source, f"model.{key} must be at least 1, got {getattr(m, key)}")
    _require(m.conv >= 0 and (m.conv % 2 == 1 or m.conv == 0 or t.objective == "autoregressive"), source,
             f"model.conv must be 0 (none) or an odd width such as 3 (the diffusion denoiser's window is centred), "
             f"got {m.conv}")
    _require(m.n_embd % m.n_head == 0, source, f"model.n_embd ({m.n_embd}) must be divisible by model.n_head "
             f"({m.n_head}); e.g. n_embd: {m.n_head * 64} or n_head: {_divisor_near(m.n_embd, m.n_head)}")
    _choice(m.position, ("rotary", "learned"), source, "model.position")
    _require(m.position != "rotary" or (m.n_embd // m.n_head) % 2 == 0, source,
             f"rotary embeddings need an even head size, but model.n_embd / model.n_head = {m.n_embd // m.n_head}; "
             f"change model.n_head or model.n_embd, or use model.position: learned")
    _require(0 <= m.dropout < 1, source, f"model.dropout must be in [0, 1), got {m.dropout}")
    for key in ("init_std", "embed_init_std"):
        _require(getattr(m, key) > 0, source, f"model.{key} must be positive, got {getattr(m, key)}; e.g. 0.02")

    _require(d.dataset.strip() != "", source, "data.dataset is empty; e.g. data.dataset: tiny_shakespeare")
    local = d.dataset in ("text", "json", "parquet")
    _require(not local or d.data_files is not None, source,
             f"data.dataset={d.dataset} reads local files but data.data_files is not set; "
             f"add e.g. data.data_files: path/*.{'txt' if d.dataset == 'text' else d.dataset}")
    task = d.dataset in TASK_DATASETS  # with data_files, a task's name reads those JSON lines in its place
    _require(d.data_files is None or local or task or "/" in d.dataset or Path(d.dataset).is_dir(), source,
             f"data.data_files is set but data.dataset={short_repr(d.dataset)} does not read files; "
             f"set data.dataset to text, json or parquet (or remove data.data_files)")
    _require(d.revision is None or not (local or d.dataset in BUNDLED_CORPORA or Path(d.dataset).is_dir()), source,
             f"data.revision is for hub datasets, but data.dataset={short_repr(d.dataset)} is read from local files; "
             f"remove data.revision")
    _require(d.revision is None or d.revision.strip() != "", source,
             "data.revision is empty; name a branch, tag or commit sha, or write data.revision: null")
    _choice(d.tokenizer, available_tokenizers(), source, "data.tokenizer")
    _require(0 < d.val_fraction < 1, source, f"data.val_fraction must be in (0, 1), got {d.val_fraction}; e.g. 0.05")
    _require(d.max_tokens is None or d.max_tokens >= 1, source, f"data.max_tokens must be at least 1 or null, got {d.max_tokens}")
    _require(d.val_tokens is None or d.val_tokens >= 1, source, f"data.val_tokens must be at least 1 or null, got {d.val_tokens}")
    _require(d.num_proc is None or d.num_proc >= 1, source, f"data.num_proc must be at least 1 or null, got {d.num_proc}")
    _require(d.text_field != "", source, "data.text_field is empty; name the column that holds the text, e.g. text")
    prompt_fields = [d.prompt_field] if isinstance(d.prompt_field, str) else list(d.prompt_field or [])
    _require(d.prompt_field is None or (prompt_fields and all(f.strip() for f in prompt_fields)), source,
             "data.prompt_field is empty; name the column that holds the prompt, e.g. data.prompt_field: prompt")
    _require(d.response_field.strip() != "" and d.response_field not in prompt_fields, source,
             f"data.response_field={short_repr(d.response_field)} must name a column that is not a prompt column, "
             f"e.g. data.response_field: response")
    _require(d.prompt_field is None or not d.streaming, source, "pairs (data.prompt_field) are read whole, not "
             "streamed; set data.streaming: false")
    _require(d.prompt_field is None or t.objective != "block_diffusion", source, "pairs (data.prompt_field) train "
             "train.objective diffusion or autoregressive; block_diffusion is not supported on pairs")

    _choice(t.objective, OBJECTIVES, source, "train.objective")
    block = t.objective == "block_diffusion"
    _require(block == (m.block_size is not None), source,
             "train.objective=block_diffusion needs model.block_size, e.g. model.block_size: 16"
             if block else f"model.block_size is set but train.objective={t.objective}; use "
                           f"train.objective: block_diffusion, or drop model.block_size")
    _require(not block or (1 <= m.block_size <= m.seq_len and m.seq_len % m.block_size == 0), source,
             f"model.block_size ({m.block_size}) must divide model.seq_len ({m.seq_len}); e.g. model.block_size: "
             f"{_divisor_near(m.seq_len, m.block_size or 1)}")
    _require(not block or m.conv == 0, source, "model.conv is not supported with train.objective=block_diffusion "
             "(its window would read across the noisy and clean copies); set model.conv: 0")
    _require(not block or s.block_size is None, source, "sample.block_size is for MDLM's semi-autoregressive "
             "decoding; a block diffusion model decodes in its own model.block_size: drop sample.block_size")
    _choice(t.weighting, ("elbo", "mean"), source, "train.weighting")
    _choice(t.optimizer, ("adamw", "muon"), source, "train.optimizer")
    _choice(t.schedule, tuple(SCHEDULES), source, "train.schedule")
    _choice(t.dtype, ("auto", "float32", "bfloat16"), source, "train.dtype")
    _require(re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", t.device) is not None, source,
             f"train.device={short_repr(t.device)} is not a device; use auto, cpu, cuda, cuda:0 or mps")
    for key in ("batch_size", "grad_accum", "max_steps", "eval_every", "eval_batches", "bound_samples",
                "log_every", "save_every", "keep_last"):
        _require(getattr(t, key) >= 1, source, f"train.{key} must be at least 1, got {getattr(t, key)}")
    _require(t.lr > 0, source, f"train.lr must be positive, got {t.lr}; e.g. train.lr: 3.0e-4")
    _require(t.muon_lr is None or t.muon_lr > 0, source,
             f"train.muon_lr must be positive or null, got {t.muon_lr}; e.g. train.muon_lr: 6.0e-3")
    _require(t.muon_lr is None or t.optimizer == "muon", source,
             "train.muon_lr is set but train.optimizer is adamw; set train.optimizer: muon or drop train.muon_lr")
    _require(0 <= t.min_lr <= t.lr, source, f"train.min_lr ({t.min_lr}) must be in [0, train.lr = {t.lr}]; "
             f"lower train.min_lr, e.g. to {t.lr / 10:g}")
    _require(t.max_minutes is None or t.max_minutes > 0, source, f"train.max_minutes must be positive or null, got {t.max_minutes}")
    _require(t.warmup_steps >= 0, source, f"train.warmup_steps must be at least 0, got {t.warmup_steps}")
    _require(0 <= t.seed <= MAX_SEED, source, f"train.seed must be in [0, 2**32 - 1 = {MAX_SEED}] (numpy's seed "
             f"range), got {t.seed}; e.g. train.seed: 0")
    for key in ("weight_decay", "grad_clip"):
        _require(getattr(t, key) >= 0, source, f"train.{key} must be at least 0 (0 turns it off), got {getattr(t, key)}")
    for key in ("beta1", "beta2"):
        _require(0 <= getattr(t, key) < 1, source, f"train.{key} must be in [0, 1), got {getattr(t, key)}; e.g. 0.9")
    _require(t.out_dir != "", source, "train.out_dir is empty; e.g. train.out_dir: runs/tiny")
    _require(t.init_from is None or t.init_from.strip() != "", source,
             "train.init_from is empty; give a checkpoint path, e.g. runs/shakespeare_char/latest.pt, or null")

    _require(s.length >= 1, source, f"sample.length must be at least 1, got {s.length}")
    # pairs answer in the rest of their row, so sample.length does not apply to them
    _require(s.length <= m.seq_len or d.prompt_field is not None, source,
             f"sample.length ({s.length}) exceeds model.seq_len ({m.seq_len}); lower sample.length")
    _require(s.steps >= 1, source, f"sample.steps must be at least 1, got {s.steps}")
    _choice(s.strategy, STRATEGIES, source, "sample.strategy")
    _require(s.temperature >= 0, source, f"sample.temperature must be >= 0 (0 is greedy), got {s.temperature}")
    _require(s.top_k is None or s.top_k >= 1, source, f"sample.top_k must be at least 1 or null, got {s.top_k}")
    _require(s.top_p is None or 0 < s.top_p <= 1, source, f"sample.top_p must be in (0, 1] or null, got {s.top_p}")
    _require(s.block_size is None or 1 <= s.block_size <= s.length, source,
             f"sample.block_size must be in [1, sample.length = {s.length}] or null, got {s.block_size}")
    blocks = math.ceil(s.length / (s.block_size or m.block_size or s.length))  # each block takes at least one step
    size_key = "model.block_size" if m.block_size else "sample.block_size"
    _require(s.steps >= blocks, source, f"sample.steps ({s.steps}) is fewer than the {blocks} blocks of "
             f"sample.length / {size_key} = {s.length} / {s.block_size or m.block_size} (one step per block at "
             f"least); raise sample.steps to {blocks}" + ("" if m.block_size else
                                                          f" or sample.block_size to {math.ceil(s.length / s.steps)}"))
    _require(s.threshold is None or 0 < s.threshold < 1, source, f"sample.threshold must be in (0, 1), got {s.threshold}")
    _require(s.strategy != "threshold" or s.threshold is not None, source,
             "sample.strategy=threshold needs sample.threshold, e.g. sample.threshold: 0.9")


def _choice(value: str, choices, source: str, key: str) -> None:
    if value not in choices:
        _fail(source, f"{key}={short_repr(value)} is not a choice; {_suggest(value, choices)}")


def _divisor_near(n: int, target: int) -> int:
    """The divisor of n closest to target (to suggest a valid n_head)."""
    return min((k for k in range(1, n + 1) if n % k == 0), key=lambda k: abs(k - target))


def config_from_dict(d: dict, source: str = "<dict>") -> Config:
    """Validate a nested dict (as read from YAML) into a Config; raise ConfigError naming `source`."""
    if not isinstance(d, dict):
        _fail(source, f"a config is a mapping of sections, got {type(d).__name__}; start with e.g. 'model:'")
    kwargs = {}
    for key, value in d.items():
        if key in SECTIONS:
            kwargs[key] = _check_section(SECTIONS[key], value, source, key)
        elif key in TOP_LEVEL:
            kwargs[key] = _coerce(value, typing.get_type_hints(Config)[key], source, key)
        else:
            _fail(source, f"unknown section {short_repr(key)}: "
                          f"{_suggest(str(key), [*SECTIONS, *TOP_LEVEL], 'a config has')}")
    if kwargs.get("name") is None:
        kwargs.pop("name", None)
    cfg = Config(**kwargs)
    _validate(cfg, source)
    return cfg


def config_to_dict(cfg: Config) -> dict:
    """The config as plain dicts / lists / str / int / float / bool / None (YAML- and checkpoint-safe)."""
    return dataclasses.asdict(cfg)


def apply_overrides(d: dict, overrides, source: str = "<overrides>") -> dict:
    """Apply dotted `section.key=value` strings to the nested dict `d` in place (and return it).

    The value is parsed as YAML: `train.max_steps=200` gives 200, `data.subset=null` gives None,
    `data.data_files=[a.txt, b.txt]` a list. `name=...` and `params=...` set the top-level keys.
    """
    for override in overrides:
        where = f"{source} (override {short_repr(override)})"
        key, sep, text = override.partition("=")
        key = key.strip()
        if not sep or not key:
            _fail(where, "an override is section.key=value, e.g. train.max_steps=200")
        try:
            value = yaml.load(text, Loader=ConfigLoader) if text.strip() else None
        except Refused as error:
            _fail(where, str(error))
        except yaml.YAMLError:
            _fail(where, f"the value {short_repr(text)} is not valid YAML; quote it, e.g. {key}='{short_repr(text)[1:-1]}'")
        parts = key.split(".")
        if len(parts) == 1 and key in TOP_LEVEL:
            d[key] = value
        elif len(parts) == 2 and parts[0] in SECTIONS:
            section = d.get(parts[0])
            d[parts[0]] = section = {} if section is None else section
            if not isinstance(section, dict):
                _fail(where, f"section {parts[0]!r} is not a mapping in the config file; fix the file")
            _check_key(parts[0], parts[1], where)
            section[parts[1]] = value
        elif len(parts) == 2:
            _fail(where, f"unknown section {short_repr(parts[0])}: {_suggest(parts[0], list(SECTIONS), 'sections')}")
        else:
            _fail(where, f"{short_repr(key)} is not section.key; use e.g. train.max_steps=200 "
                         f"(sections: {', '.join(SECTIONS)})")
    return d


def _config_folder() -> Path | None:
    for folder in (Path("configs"), Path(__file__).resolve().parent.parent / "configs"):
        if folder.is_dir():
            return folder
    return None


def load_config(path, overrides: list[str] = ()) -> Config:
    """Read a YAML config file, apply dotted overrides, validate, and return the Config.

    `name` defaults to the file's stem (configs/tiny.yaml -> "tiny").
    """
    path = Path(path)
    if not path.is_file():
        folder = _config_folder()
        files = sorted(p.name for p in folder.glob("*.yaml")) if folder else []
        hint = f"the files in {folder}/ are: {', '.join(files)}" if files else "pass --config path/to/file.yaml"
        raise ConfigError(f"config file {str(path)!r} not found; {hint}")
    source = str(path)
    try:
        d = yaml.load(path.read_text(encoding="utf-8"), Loader=ConfigLoader)
    except Refused as error:
        _fail(source, str(error))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        _fail(source, f"not valid YAML ({problem}{where}); fix the syntax there")
    except UnicodeDecodeError:
        _fail(source, "the file is not UTF-8 text; save it as UTF-8")
    if d is None:
        _fail(source, "the config file is empty; add at least one section, e.g. 'train: {max_steps: 100}'")
    if not isinstance(d, dict):
        _fail(source, f"a config is a mapping of sections, got {type(d).__name__}; start with e.g. 'model:'")
    d = apply_overrides(d, overrides, source)
    d.setdefault("name", path.stem)
    return config_from_dict(d, source)
