"""The training loop: outputs, exact resume, atomic checkpoints, signals, NaN stop, DDP, user errors."""

import math
import os
import signal
import subprocess
import sys
import time

import datasets
import pytest
import torch

from conftest import assert_one_line_error, make_config, write_config
from dllm_lite import loss, train
from dllm_lite.config import load_config
from dllm_lite.corrupt import get_schedule
from dllm_lite.model import ModelConfig, Transformer


pytestmark = pytest.mark.usefixtures("one_thread_no_bars")  # conftest.py


def train_records(out_dir) -> list[dict]:
    """The metric records without the wall-clock fields."""
    return [{k: v for k, v in r.items() if k not in ("elapsed", "tokens_per_s")} for r in train.read_metrics(out_dir)]


def run_main(capsys, *argv) -> tuple[int, str, str]:
    code = train.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_writes_metrics_plot_and_checkpoints(tmp_path, capsys):
    cfg = make_config(tmp_path)
    summary = train.train(cfg)
    out_dir = tmp_path / "run"
    assert summary["step"] == 6 and summary["out_dir"] == str(out_dir) and summary["stopped"] == "max_steps"
    assert summary["val_ppl"] == pytest.approx(math.exp(summary["val_bound"]))
    records = train.read_metrics(out_dir)
    logs = [r for r in records if "loss" in r]
    evals = [r for r in records if "val_bound" in r]
    assert [r["step"] for r in logs] == [2, 4, 6] and [r["step"] for r in evals] == [4, 6]
    assert all(r["lr"] > 0 and r["tokens_per_s"] > 0 for r in logs)
    assert all(isinstance(r["sample"], str) and len(r["sample"]) == 8 for r in evals)
    assert (out_dir / "loss.png").stat().st_size > 1000 and (out_dir / "config.yaml").is_file()
    # keep_last=2 of the checkpoints at steps 2, 4, 6; latest.pt is the newest; no temporary file left
    assert sorted(p.name for p in out_dir.iterdir() if p.suffix == ".pt") == ["latest.pt", "step_000004.pt", "step_000006.pt"]
    assert [p.name for p in out_dir.iterdir() if p.name.startswith(".")] == [".run.lock"]  # no half-written file left
    net, tokenizer, cfg2, state = train.load_checkpoint(out_dir / "latest.pt")
    assert state["step"] == 6 and cfg2.model == cfg.model and tokenizer.decode(tokenizer.encode("fox")) == "fox"
    assert set(state) >= {"model", "optimizer", "rng", "data", "config", "tokenizer", "lr"}
    out = capsys.readouterr().out
    assert "parameters" in out and "latest.pt" in out


def test_training_loss_is_the_library_loss_and_splits_across_ranks():
    """One process: exactly loss.diffusion_loss. Two ranks' halves average to the one-process value."""
    torch.manual_seed(0)
    net = Transformer(ModelConfig(vocab_size=7, n_layer=1, n_head=2, n_embd=16, seq_len=12))
    x0 = torch.randint(0, 6, (4, 12))
    schedule = get_schedule("linear")
    for weighting in ("elbo", "mean"):
        g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
        ours = train.diffusion_step_loss(net, x0, schedule, 6, weighting, g())
        assert ours.item() == loss.diffusion_loss(net, x0, schedule, 6, generator=g(), weighting=weighting).item()
        halves = [train.diffusion_step_loss(net, x0[2 * r : 2 * r + 2], schedule, 6, weighting, g(), r, 2) for r in (0, 1)]
        assert (halves[0] + halves[1]).item() / 2 == pytest.approx(ours.item(), rel=1e-6)


def test_lr_warms_up_then_decays_to_min_lr(tmp_path):
    t = make_config(tmp_path, "train.max_steps=100", "train.warmup_steps=10").train
    lrs = [train.lr_at(step, t) for step in range(100)]
    assert lrs[0] == pytest.approx(t.lr / 10) and lrs[9] == pytest.approx(t.lr)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and train.lr_at(100, t) == pytest.approx(t.min_lr)


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_sigint_stops_after_the_step_and_resume_is_exact(tmp_path, monkeypatch, capsys, optimizer):
    """3 steps, SIGINT, resume, 3 more == 6 steps straight: every logged value, with dropout on."""
    extra = ("model.dropout=0.1", "train.log_every=2", "train.eval_every=4", "train.save_every=100",
             f"train.optimizer={optimizer}")
    straight = make_config(tmp_path, *extra, f"train.out_dir={tmp_path / 'straight'}")
    train.train(straight)
    cfg = make_config(tmp_path, *extra, f"train.out_dir={tmp_path / 'split'}")
    lr_at = train.lr_at

    def interrupt_at_step_3(step, t, time_fraction=0.0):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # arrives during step 3, which still finishes
        return lr_at(step, t, time_fraction)

    monkeypatch.setattr(train, "lr_at", interrupt_at_step_3)
    summary = train.train(cfg)
    assert summary["stopped"] == "signal" and summary["step"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    assert "continue with --resume" in capsys.readouterr().out
    monkeypatch.setattr(train, "lr_at", lr_at)
    assert summary["loss"] is not None  # the unfinished interval (step 3) is logged at the stop
    assert train.train(cfg, resume=True)["step"] == 6
    split, straight = train_records(tmp_path / "split"), train_records(tmp_path / "straight")
    # the stop cut the interval of steps 3-4 in two; everything else is identical
    cut = {r["step"]: r for r in split if r["step"] in (3, 4) and "loss" in r}
    whole = next(r for r in straight if r["step"] == 4 and "loss" in r)
    assert (cut[3]["loss"] + cut[4]["loss"]) / 2 == pytest.approx(whole["loss"], rel=1e-6)
    assert [r for r in split if r not in cut.values()] == [r for r in straight if r is not whole]


def test_time_fraction_moves_the_cosine_when_it_is_ahead_of_the_steps(tmp_path):
    t = make_config(tmp_path, "train.max_steps=100", "train.warmup_steps=10").train
    assert train.lr_at(20, t, time_fraction=0.05) == train.lr_at(20, t)  # steps ahead (0.11): time changes nothing
    assert train.lr_at(20, t, time_fraction=1.0) == pytest.approx(t.min_lr)
    assert train.lr_at(20, t, time_fraction=0.5) == pytest.approx(train.lr_at(55, t))  # half way either way
    assert train.lr_at(5, t, time_fraction=1.0) == train.lr_at(5, t)  # the warm-up follows the steps


def test_a_run_stopped_by_its_time_cap_ends_near_min_lr(tmp_path):
    """max_steps far out of reach: the cosine follows the clock and is at its floor when the cap stops the run."""
    cfg = make_config(tmp_path, "train.max_steps=100000", f"train.max_minutes={3 / 60}", "train.warmup_steps=2",
                      "train.log_every=1", "train.eval_every=100000", "train.save_every=100000")
    summary = train.train(cfg)
    assert summary["stopped"] == "max_minutes" and summary["step"] < 10000
    lrs = [r["lr"] for r in train.read_metrics(tmp_path / "run") if "lr" in r]
    t = cfg.train
    assert lrs[-1] < t.min_lr + 0.05 * (t.lr - t.min_lr)  # by steps alone it would still be at the peak
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))  # and it only went down after the warm-up


def test_max_minutes_leaves_room_for_the_closing_evaluation(tmp_path, monkeypatch):
    """Evaluations of 1 s every 2 steps under a 2.5 s cap: the run, closing evaluation included, fits."""
    evaluate = train.evaluate

    def slow_evaluate(*args, **kwargs):
        time.sleep(1.0)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(train, "evaluate", slow_evaluate)
    cfg = make_config(tmp_path, "train.max_steps=10000", f"train.max_minutes={2.5 / 60}", "train.eval_every=2",
                      "train.log_every=1000", "train.save_every=1000")
    summary = train.train(cfg)
    assert summary["stopped"] == "max_minutes" and summary["wall_time_s"] < 2.5 + 0.3
    logged = [r for r in train.read_metrics(tmp_path / "run") if "loss" in r]
    assert logged[-1]["step"] == summary["step"] and summary["loss"] == logged[-1]["loss"]  # the cut interval is logged


def test_a_failing_compiler_falls_back_to_eager(tmp_path, monkeypatch, capsys):
    """torch.compile needs a C++ toolchain on a CPU; without one the run goes on eagerly and says so."""
    def broken_compile(model, **kwargs):
        def fails(*args, **kw):
            raise RuntimeError("no C++ compiler found")
        return fails

    monkeypatch.setattr(torch, "compile", broken_compile)
    cfg = make_config(tmp_path, "train.compile=true", "train.max_steps=4", "train.eval_every=4")
    summary = train.train(cfg)
    assert summary["step"] == 4 and math.isfinite(summary["loss"])
    assert "torch.compile failed (RuntimeError: no C++ compiler found)" in capsys.readouterr().out


def test_compiled_bf16_training_does_not_recompile_after_the_warm_up(tmp_path, monkeypatch):
    """The trial step runs under the run's autocast and the masked head stays out of the graph, so the
    warm-up compiles every graph the run needs: the masked count changes every step, nothing recompiles."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: compile_(model, backend="aot_eager", **kw))  # no C++
    graphs_after_warm_up = []
    try_compile = train.try_compile

    def spy(*args, **kwargs):
        compiled = try_compile(*args, **kwargs)
        graphs_after_warm_up.append(counters["stats"]["unique_graphs"])
        return compiled

    monkeypatch.setattr(train, "try_compile", spy)
    cfg = make_config(tmp_path, "train.compile=true", "train.dtype=bfloat16", "train.max_steps=4",
                      "train.eval_every=100", "train.save_every=100")
    summary = train.train(cfg)
    assert summary["step"] == 4 and math.isfinite(summary["loss"])
    assert graphs_after_warm_up[0] >= 1
    assert counters["stats"]["unique_graphs"] == graphs_after_warm_up[0], dict(counters["recompiles"])
    torch._dynamo.reset()


def test_grad_accum_equals_one_big_batch():
    """Two micro-batches of 2 rows, accumulated, give the gradient of one batch of 4 rows (AR: no noise)."""
    torch.manual_seed(0)
    net = Transformer(ModelConfig(vocab_size=11, n_layer=1, n_head=2, n_embd=16, seq_len=8, causal=True))
    x = torch.randint(0, 10, (4, 8))
    loss.ar_loss(net, x, 10).backward()
    whole = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    for half in (x[:2], x[2:]):
        (loss.ar_loss(net, half, 10) / 2).backward()
    for a, b in zip(whole, (p.grad for p in net.parameters())):
        assert torch.allclose(a, b, atol=1e-6)


def test_grad_accum_run_matches_the_big_batch_run(tmp_path):
    """The trainer: batch 2 x grad_accum 2 logs the losses of batch 4 (same blocks, same masks)."""
    common = ["train.max_steps=3", "train.log_every=1", "train.eval_every=100", "train.save_every=100",
              "train.objective=autoregressive"]
    train.train(make_config(tmp_path, *common, "train.batch_size=4", f"train.out_dir={tmp_path / 'big'}"))
    train.train(make_config(tmp_path, *common, "train.batch_size=2", "train.grad_accum=2",
                            f"train.out_dir={tmp_path / 'accum'}"))
    big = [r for r in train.read_metrics(tmp_path / "big") if "loss" in r]
    accum = [r for r in train.read_metrics(tmp_path / "accum") if "loss" in r]
    assert [r["loss"] for r in accum] == pytest.approx([r["loss"] for r in big], rel=1e-5)
    assert [r["grad_norm"] for r in accum] == pytest.approx([r["grad_norm"] for r in big], rel=1e-4)


@pytest.mark.parametrize("objective", ["diffusion", "autoregressive"])
def test_a_bf16_autocast_step_on_cpu(tmp_path, objective):
    cfg = make_config(tmp_path, "train.dtype=bfloat16", f"train.objective={objective}", "train.max_steps=3",
                      "train.eval_every=3")
    summary = train.train(cfg)
    assert summary["step"] == 3 and math.isfinite(summary["loss"]) and math.isfinite(summary["val_loss"])
    state = train.read_checkpoint(tmp_path / "run" / "latest.pt")
    assert all(p.dtype == torch.float32 for p in state["model"].values())  # autocast keeps float32 weights


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path)
    overrides = ["train.max_steps=12", "train.log_every=10", "train.save_every=2"]
    batch_loss = train.batch_loss
    calls = []

    def nan_from_step_5(*args, **kwargs):
        calls.append(1)
        value = batch_loss(*args, **kwargs)
        return value * float("nan") if len(calls) >= 5 else value

    monkeypatch.setattr(train, "batch_loss", nan_from_step_5)
    code, out, err = run_main(capsys, "--config", str(config), *overrides)
    assert_one_line_error(code + 1, err, "NaN", "train.lr", "untouched")  # exit code 1: the run failed
    state = train.read_checkpoint(tmp_path / "run" / "latest.pt")
    assert state["step"] == 4 and all(torch.isfinite(p).all() for p in state["model"].values())


def test_autoregressive_objective_trains(tmp_path):
    cfg = make_config(tmp_path, "train.objective=autoregressive", "train.max_steps=12", "train.eval_every=12")
    summary = train.train(cfg)
    logs = [r for r in train.read_metrics(tmp_path / "run") if "loss" in r]
    assert logs[-1]["loss"] < logs[0]["loss"]
    assert summary["val_bound"] is None and summary["val_ppl"] == pytest.approx(math.exp(summary["val_loss"]))
    net, _, _, _ = train.load_checkpoint(tmp_path / "run" / "latest.pt")
    assert net.cfg.causal


def test_diffusion_loss_goes_down(tmp_path):
    cfg = make_config(tmp_path, "train.max_steps=40", "train.log_every=10", "train.eval_every=40",
                      "train.save_every=40", "train.batch_size=8")
    train.train(cfg)
    logs = [r["loss"] for r in train.read_metrics(tmp_path / "run") if "loss" in r]
    assert logs[-1] < logs[0] - 0.3


@pytest.mark.parametrize("argv, words", [
    (["train.lrr=1"], ["train.lrr", "did you mean"]),
    (["train.max_steps=many"], ["train.max_steps", "integer"]),
    (["--resume"], ["nothing to resume", "without --resume"]),
])
def test_user_errors_are_one_line(tmp_path, capsys, argv, words):
    config = write_config(tmp_path)
    assert_one_line_error(*run_main(capsys, "--config", str(config), *argv)[::2], *words)


def test_missing_config_file(tmp_path, capsys):
    assert_one_line_error(*run_main(capsys, "--config", str(tmp_path / "nope.yaml"))[::2], "nope.yaml", "not found")


@pytest.mark.parametrize("content, words", [(b"", ["empty"]), (b"caf\xe9 \xff\xfe", ["UTF-8"])])
def test_bad_data_is_one_line(tmp_path, capsys, content, words):
    config = write_config(tmp_path)
    (tmp_path / "corpus.txt").write_bytes(content)
    assert_one_line_error(*run_main(capsys, "--config", str(config))[::2], *words)


def test_unreachable_hub_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # offline: no network is touched
    config = write_config(tmp_path)
    code, _, err = run_main(capsys, "--config", str(config), "data.dataset=wikitext", "data.data_files=null",
                            "data.tokenizer=gpt2")
    assert_one_line_error(code, err, "wikitext", "tiny_shakespeare")


def test_bad_resumes_leave_checkpoints_alone(tmp_path, capsys):
    config = write_config(tmp_path)
    assert run_main(capsys, "--config", str(config))[0] == 0
    run = tmp_path / "run"
    before = {p.name: p.read_bytes() for p in run.glob("*.pt")}
    # a different model, starting fresh over a run, then a truncated latest.pt
    assert_one_line_error(*run_main(capsys, "--config", str(config), "--resume", "model.n_layer=3")[::2],
                          "model.n_layer=2", "3")
    assert_one_line_error(*run_main(capsys, "--config", str(config))[::2], "--resume", "--overwrite")
    assert_one_line_error(*run_main(capsys, "--config", str(config), "--resume-from", str(run))[::2],
                          "is a folder", "latest.pt")
    assert {p.name: p.read_bytes() for p in run.glob("*.pt")} == before
    (run / "latest.pt").unlink()  # a hard link: unlink first so the step file stays whole
    (run / "latest.pt").write_bytes(before["latest.pt"][: len(before["latest.pt"]) // 2])
    assert_one_line_error(*run_main(capsys, "--config", str(config), "--resume")[::2], "truncated", "step_")
    assert (run / "step_000006.pt").read_bytes() == before["step_000006.pt"]
    # resuming from the intact step file works, and runs on to the new max_steps
    assert run_main(capsys, "--config", str(config), "train.max_steps=8", "--resume-from", str(run / "step_000006.pt"))[0] == 0
    assert train.read_checkpoint(run / "latest.pt")["step"] == 8


def test_ddp_two_processes_match_one(tmp_path):
    """torchrun, 2 CPU processes (gloo) x batch 2 gives the loss curve of 1 process x batch 4."""
    config = write_config(tmp_path)
    common = ["train.max_steps=4", "train.log_every=1", "train.eval_every=100", "train.save_every=100"]
    train.train(load_config(config, common + ["train.batch_size=4", f"train.out_dir={tmp_path / 'one'}"]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "dllm_lite.train",
         "--config", str(config), *common, "train.batch_size=2", f"train.out_dir={tmp_path / 'two'}"],
        capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    one = [r["loss"] for r in train.read_metrics(tmp_path / "one") if "loss" in r]
    two = [r["loss"] for r in train.read_metrics(tmp_path / "two") if "loss" in r]
    assert len(one) == 4 and two == pytest.approx(one, rel=1e-5)
    assert train.read_checkpoint(tmp_path / "two" / "latest.pt")["step"] == 4


def test_ddp_resume_continues_exactly(tmp_path):
    """torchrun, 2 CPU processes: 2 steps, then --resume to 4, logs what 4 steps straight log (constant lr, so
    max_steps does not move the schedule)."""
    config = write_config(tmp_path)
    common = ["train.log_every=1", "train.eval_every=100", "train.save_every=100", "train.batch_size=2",
              "train.warmup_steps=0", "train.min_lr=3.0e-3", "model.dropout=0.1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}

    def torchrun(out, steps, *extra):
        result = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
             "dllm_lite.train", "--config", str(config), *common, f"train.max_steps={steps}",
             f"train.out_dir={tmp_path / out}", *extra], capture_output=True, text=True, env=env, timeout=240)
        assert result.returncode == 0, result.stderr[-3000:]

    torchrun("straight", 4)
    torchrun("split", 2)
    torchrun("split", 4, "--resume")
    straight, split = ([r for r in train_records(tmp_path / run) if "loss" in r] for run in ("straight", "split"))
    assert [r["step"] for r in split] == [1, 2, 3, 4]
    assert split == straight  # losses, gradient norms and learning rates, to the bit


def test_the_loss_plot_is_scaled_past_warm_up_and_marks_the_best_evaluation():
    records = [{"step": 10, "loss": 14.0}] + [{"step": s, "loss": 2.5 - s / 1000} for s in range(100, 1001, 100)]
    records += [{"step": 500, "val_loss": 2.1, "val_bound": 2.2}, {"step": 1000, "val_loss": 1.9, "val_bound": 1.95},
                {"step": 800, "val_loss": 1.8, "val_bound": 1.9}]
    fig = train.plot_metrics(records)
    ax = fig.axes[0]
    bottom, top = ax.get_ylim()
    assert top < 3.0 and bottom < 1.5  # the first loss of 14 is off the top; every later value fits
    best = [line for line in ax.lines if line.get_label().startswith("best")]
    assert len(best) == 1 and best[0].get_label() == "best: 1.9000 at step 800"
    assert list(best[0].get_xdata()) == [800] and list(best[0].get_ydata()) == [1.9]
