"""Faults a training run must survive or report in one line: signals at awkward moments, kill -9,
devices that are not there, leftovers of a killed write."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from conftest import assert_one_line_error, make_config, write_config
from dllm_lite import generate, train, validation


pytestmark = pytest.mark.usefixtures("one_thread_no_bars")  # conftest.py


def loss_records(out_dir) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("elapsed", "tokens_per_s")}
            for r in train.read_metrics(out_dir) if "loss" in r]


def test_sigterm_during_a_long_evaluation_stops_within_seconds_and_saves(tmp_path, monkeypatch):
    """Each validation batch takes 1 s; SIGTERM half a second into the evaluation stops the run before the
    next batch, with a checkpoint of that step and no half-finished evaluation record."""
    nll_bound, sent = validation.nll_bound, []

    def slow_bound(*args, **kwargs):
        if not sent:
            sent.append(time.time() + 0.5)
            threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
        time.sleep(1.0)
        return nll_bound(*args, **kwargs)

    monkeypatch.setattr(validation, "nll_bound", slow_bound)
    cfg = make_config(tmp_path, "train.max_steps=10", "train.eval_every=2", "train.eval_batches=1000",
                      "train.save_every=100")
    summary = train.train(cfg)
    assert time.time() - sent[0] < 2.0  # the 6-batch evaluation would have taken 5 more seconds
    assert summary["stopped"] == "signal" and summary["signal"] == signal.SIGTERM and summary["step"] == 2
    assert train.read_checkpoint(tmp_path / "run" / "latest.pt")["step"] == 2
    assert not [r for r in train.read_metrics(tmp_path / "run") if "val_loss" in r]


def test_eval_batches_beyond_the_split_are_capped_and_said_once(tmp_path, monkeypatch, capsys):
    calls = []
    nll_bound = validation.nll_bound
    monkeypatch.setattr(validation, "nll_bound", lambda *a, **k: calls.append(1) or nll_bound(*a, **k))
    cfg = make_config(tmp_path, "train.max_steps=4", "train.eval_every=2", "train.eval_batches=100000000")
    train.train(cfg)
    out = capsys.readouterr().out
    assert out.count("more than the validation split holds") == 1
    per_evaluation = len(calls) / 2  # evaluations at steps 2 and 4
    assert per_evaluation == 6  # the split's 26 blocks of 32 characters make 6 batches of 4


@pytest.mark.parametrize("device", ["cuda", "cuda:9", "mps"])
def test_a_device_that_is_not_there_is_one_line(tmp_path, capsys, device):
    if device in train.available_devices() or (device == "cuda" and torch.cuda.is_available()):
        pytest.skip(f"this machine has {device}")
    code = train.main(["--config", str(write_config(tmp_path)), f"train.device={device}"])
    assert_one_line_error(code, capsys.readouterr().err, f"train.device={device}", "cpu", "auto")


def test_generate_on_a_device_that_is_not_there_is_one_line(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has cuda")
    cfg = make_config(tmp_path, "train.max_steps=2", "train.eval_every=2")
    train.train(cfg)
    capsys.readouterr()
    code = generate.main(["--checkpoint", str(tmp_path / "run" / "latest.pt"), "--device", "cuda"])
    assert_one_line_error(code, capsys.readouterr().err, "--device=cuda", "cpu")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_run_exits_with_the_signal_code_and_a_second_signal_is_one_line(tmp_path, monkeypatch, capsys,
                                                                                  signum):
    config = write_config(tmp_path)
    set_lr, calls = train._set_lr, []

    def signalling(at_call, times):  # _set_lr runs once at the top of every step
        def set_lr_and_signal(optimizer, lr):
            calls.append(1)
            if len(calls) == at_call:
                for _ in range(times):
                    os.kill(os.getpid(), signum)
            return set_lr(optimizer, lr)
        return set_lr_and_signal

    monkeypatch.setattr(train, "_set_lr", signalling(at_call=3, times=1))  # during step 3, which still finishes
    assert train.main(["--config", str(config), "train.max_steps=6"]) == 128 + signum  # 130 / 143, as shells expect
    assert train.read_checkpoint(tmp_path / "run" / "latest.pt")["step"] == 3
    capsys.readouterr()
    calls.clear()
    monkeypatch.setattr(train, "_set_lr", signalling(at_call=2, times=2))  # step 5 of the resumed run: abort
    code = train.main(["--config", str(config), "train.max_steps=6", "--resume"])
    err = capsys.readouterr().err
    assert code == 128 + signum and "Traceback" not in err
    assert err.strip().startswith("error: stopped at once by") and len(err.strip().splitlines()) == 1
    assert train.read_checkpoint(tmp_path / "run" / "latest.pt")["step"] == 4  # the save at step 4 stands


def test_halves_of_killed_writes_are_removed_at_start(tmp_path):
    cfg = make_config(tmp_path, "train.max_steps=2", "train.eval_every=2")
    out = tmp_path / "run"
    out.mkdir()
    leftovers = [out / ".step_000002.pt.tmp4242", out / ".latest.pt.tmp4242"]
    for path in leftovers:
        path.write_bytes(b"half a checkpoint")
    train.train(cfg)
    assert not any(path.exists() for path in leftovers)
    leftovers[0].write_bytes(b"half a checkpoint")
    train.train(make_config(tmp_path, "train.max_steps=4", "train.eval_every=2"), resume=True)
    assert not leftovers[0].exists()


def kill_9_and_resume(tmp_path, config, *overrides, steps=24):
    """Run `config` straight, and again killed with SIGKILL at some moment after its third checkpoint (one per step)
    and then resumed; assert that both log the same records and end with the same weights."""
    common = [f"train.max_steps={steps}", "train.log_every=1", "train.save_every=1", "train.eval_every=1000",
              "train.keep_last=2", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    command = [sys.executable, "-m", "dllm_lite.train", "--config", str(config), *common]
    straight = subprocess.run([*command, f"train.out_dir={tmp_path / 'straight'}"], env=env, capture_output=True,
                              text=True, timeout=240)
    assert straight.returncode == 0, straight.stderr[-2000:]
    killed_dir = tmp_path / "killed"
    victim = subprocess.Popen([*command, f"train.out_dir={killed_dir}"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed_dir / "step_000003.pt").exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # somewhere in the middle of a step or of a checkpoint write
    victim.kill()
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, "the run ended before it could be killed: make it longer"
    resumed = subprocess.run([*command, f"train.out_dir={killed_dir}", "--resume"], env=env, capture_output=True,
                             text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert loss_records(killed_dir) == loss_records(tmp_path / "straight")
    a = train.read_checkpoint(killed_dir / "latest.pt")["model"]
    b = train.read_checkpoint(tmp_path / "straight" / "latest.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path):
    """Weights, optimiser, data position and every generator come back from the newest checkpoint that was
    written whole: the resumed run logs exactly what a run that was never killed logs."""
    kill_9_and_resume(tmp_path, write_config(tmp_path), "model.dropout=0.1")


def test_kill_9_then_resume_is_exact_for_pairs_and_block_diffusion(tmp_path):
    """The same for a fine-tuning run on prompt/response pairs (its own loader and loss) and for a block-diffusion
    run (its per-block noise), each with dropout."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"{a}+{b}=", "response": str(a + b)}) + "\n"
                             for a in range(12) for b in range(12)), encoding="utf-8")
    config = write_config(tmp_path)
    kill_9_and_resume(tmp_path / "sft", config, "data.dataset=json", f"data.data_files={pairs}",
                      "data.prompt_field=prompt", "data.response_field=response", "model.seq_len=10",
                      "model.dropout=0.1", steps=12)
    kill_9_and_resume(tmp_path / "block", config, "train.objective=block_diffusion", "model.block_size=8",
                      "model.dropout=0.1", steps=12)


@pytest.mark.parametrize("where, words", [
    ("file", ["is a file, not a folder"]),
    ("under_file", ["which is a file"]),
    ("/proc/dllm_lite_run", ["/proc/dllm_lite_run", "cannot be"]),
    ("/sys/dllm_lite_run", ["/sys/dllm_lite_run", "cannot be"]),
])
def test_an_unusable_out_dir_is_one_line_before_any_work(tmp_path, capsys, monkeypatch, where, words):
    (tmp_path / "file").write_text("not a folder")
    out = {"file": tmp_path / "file", "under_file": tmp_path / "file" / "run"}.get(where, where)
    monkeypatch.setattr(train, "load_tokens", lambda *a, **k: pytest.fail("data was read before the check"))
    code = train.main(["--config", str(write_config(tmp_path)), f"train.out_dir={out}"])
    assert_one_line_error(code, capsys.readouterr().err, "train.out_dir", "writable folder", *words)


def test_a_second_run_on_a_locked_out_dir_is_refused_naming_the_holder(tmp_path, capsys):
    """Another process holds the run folder's lock: a run on that folder is one line naming its PID, and
    writes nothing; once the holder is gone (killed, so the lock was never released by hand) a run starts."""
    config = write_config(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom dllm_lite._run import RunLock\n"
         "with RunLock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)", str(tmp_path / "run")],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = train.main(["--config", str(config), "train.max_steps=2"])
        assert_one_line_error(code, capsys.readouterr().err, str(tmp_path / "run"), "in use", f"PID {holder.pid}")
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".run.lock"]
    finally:
        holder.kill()
        holder.wait()
    assert train.main(["--config", str(config), "train.max_steps=2", "train.eval_every=2"]) == 0


def test_a_run_holds_its_folder_lock_until_it_ends(tmp_path, monkeypatch):
    """While the loop runs, taking the folder's lock again (a second open file, as a second process would)
    fails naming this process; after the run it succeeds."""
    set_lr, refusals = train._set_lr, []

    def set_lr_and_try_the_lock(optimizer, lr):
        try:
            with train.RunLock(tmp_path / "run"):
                pass
        except train.FolderInUseError as error:
            refusals.append(str(error))
        return set_lr(optimizer, lr)

    monkeypatch.setattr(train, "_set_lr", set_lr_and_try_the_lock)
    train.train(make_config(tmp_path, "train.max_steps=2", "train.eval_every=2"))
    assert len(refusals) == 2 and f"PID {os.getpid()}" in refusals[0]
    with train.RunLock(tmp_path / "run"):
        pass
