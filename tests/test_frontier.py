"""benchmarks/frontier.py, the speed-quality frontier driver, runs end to end in its --quick mode
(tiny models trained for a moment, a few samples per point) and writes the JSON and the plot."""

import json

import pytest
import torch


@pytest.fixture(scope="module")
def frontier():
    from conftest import load_script

    return load_script("benchmarks/frontier.py")


@pytest.fixture(scope="module")
def result(frontier, tmp_path_factory):
    out = tmp_path_factory.mktemp("frontier")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert frontier.main(["--quick", "--runs", str(out / "runs"), "--out", str(out), "--task-prompts", "6"]) == 0
    finally:
        torch.set_num_threads(threads)
    return out, json.loads((out / "frontier.json").read_text())


def test_every_point_of_the_frontier_is_measured_with_its_fields(frontier, result):
    out, data = result
    assert (out / "frontier.png").stat().st_size > 10_000
    assert data["gen_nll_unit"] == "nats per character" and data["seq_len"] == 32
    assert set(data["runs"]) == {"ar", "mdlm", "bd4", "bd16", "judge"}
    judge = data["judge"]
    assert {"loss", "stderr"} <= set(judge["validation"]) and "loss" in judge["ar_twin_validation"]
    assert judge["validation"]["loss"] != judge["ar_twin_validation"]["loss"]  # a model of its own, not the twin
    assert judge["minutes"] == 2 * data["minutes"]
    losses = {c["checkpoint"]: c["loss"] for c in judge["checkpoints"]}  # the judge: its run's best checkpoint
    assert "latest.pt" in losses and judge["validation"]["loss"] == losses[judge["checkpoint"]] == min(losses.values())
    fields = {"calls_per_token", "tokens_per_s_batch1", "tokens_per_s_batch16", "gen_nll", "gen_nll_stderr",
              "entropy", "distinct2", "memorisation", "example"}
    points = data["points"]
    for point in points:
        assert fields <= set(point) or ("skipped" in point and point.get("block_cache")), point
    measured = [p for p in points if "gen_nll" in p]
    assert all(p["samples"] == 16 for p in measured)
    assert {p["temperature"] for p in points} == {1.0, 0.8}
    ar = [p for p in measured if p["model"] == "ar"]
    assert len(ar) == 2 and all(p["calls_per_token"] == 1.0 for p in ar)
    confidence = {p["tokens_per_call"]: p["calls_per_token"] for p in measured
                  if p["sampler"] == "confidence" and p["temperature"] == 1.0}
    assert confidence == {k: 1 / k for k in (1, 2, 4, 8, 16)}  # L = 32 positions in 32 / k calls
    assert sorted(p["threshold"] for p in measured if p["sampler"] == "threshold") == [0.5, 0.5, 0.7, 0.7, 0.9, 0.9,
                                                                                     0.95, 0.95]
    assert {p["model"] for p in measured} == {"ar", "ar_best", "mdlm", "bd4", "bd16"}
    early = {c["checkpoint"]: c["loss"] for c in data["ar_best"]["checkpoints"]}  # the twin, early-stopped
    assert data["ar_best"]["validation"]["loss"] == early[data["ar_best"]["checkpoint"]] == min(early.values())
    caches = [p for p in points if p.get("block_cache")]
    assert len(caches) == 8  # prefix and dual, at 1 and 4 tokens per call, at two temperatures
    assert all("gen_nll" in p for p in caches) == frontier.HAS_BLOCK_CACHE


def test_task_decoding_gives_exact_match_against_calls_per_answer(result):
    _, data = result
    for task in ("sudoku", "addition"):
        rows = data["tasks"][task]["points"]
        assert data["tasks"][task]["test_prompts"] == 6
        assert [r["sampler"] for r in rows] == ["autoregressive"] + ["confidence"] * 5 + ["threshold"] * 6
        assert all(0 <= r["exact_match"] <= 1 and r["calls_per_answer"] >= 1 for r in rows)
        answer = data["tasks"][task]["answer_positions"]
        one_per_call = rows[1]["calls_per_answer"]
        assert one_per_call <= answer and rows[-1]["calls_per_answer"] <= one_per_call  # tau 0.95 needs no more


def test_samples_that_do_not_fill_batches_of_16_are_refused(frontier, capsys):
    with pytest.raises(SystemExit):
        frontier.main(["--quick", "--samples", "10"])
    assert "multiple of 16" in capsys.readouterr().err


def test_the_judge_is_the_checkpoint_lowest_on_validation_not_the_last(frontier, result, tmp_path):
    import shutil

    out, data = result
    folder = tmp_path / "judge"
    folder.mkdir()
    twin, judge = out / "runs" / "ar" / "latest.pt", out / "runs" / "judge" / "latest.pt"
    cfg = frontier.load_checkpoint(judge)[2]
    loss = {path: frontier.validation_loss(*frontier.load_checkpoint(path)[:2], cfg)["loss"] for path in (twin, judge)}
    better, worse = sorted(loss, key=loss.get)
    shutil.copy(better, folder / "step_000001.pt")  # an earlier checkpoint that is better than the last one
    shutil.copy(worse, folder / "latest.pt")
    path, validation, candidates = frontier.best_checkpoint(folder, cfg)
    assert path.name == "step_000001.pt" and validation["loss"] == loss[better]
    assert sorted(c["loss"] for c in candidates) == sorted(loss.values())


def test_tasks_only_refuses_an_out_folder_with_no_result_to_add_to(frontier, tmp_path, capsys):
    with pytest.raises(SystemExit, match="does not exist"):
        frontier.main(["--quick", "--tasks-only", "--out", str(tmp_path / "none")])


def test_resume_measures_only_the_points_not_yet_in_the_result(frontier, result, monkeypatch):
    out, data = result
    before = (out / "frontier.json").read_text()
    monkeypatch.setattr(frontier, "measure", lambda *a, **k: pytest.fail("a point measured again"))
    assert frontier.main(["--quick", "--resume", "--no-tasks", "--runs", str(out / "runs"), "--out", str(out)]) == 0
    after = json.loads((out / "frontier.json").read_text())
    assert after["points"] == data["points"] and after["tasks"] == data["tasks"]  # the task part is kept
    (out / "frontier.json").write_text(before)


def _point(model, sampler, gen_nll, entropy, calls, b1=100.0, b16=1000.0, k=None, temperature=1.0):
    return {"model": model, "sampler": sampler, "tokens_per_call": k, "temperature": temperature, "gen_nll": gen_nll,
            "gen_nll_stderr": 0.01, "entropy": entropy, "distinct2": 0.1, "memorisation": 0.1, "calls_per_token": calls,
            "tokens_per_s_batch1": b1, "tokens_per_s_batch16": b16}


def test_the_frontier_answer_is_the_fewest_calls_as_good_as_ar_and_repetition_does_not_count(frontier):
    ar = _point("ar", "autoregressive, key/value cache", 1.60, 3.00, 1.0, b1=200.0, b16=2000.0, k=1)
    one = _point("mdlm", "confidence", 1.62, 2.99, 1.0, k=1)
    four = _point("mdlm", "confidence", 1.64, 3.02, 0.25, b1=600.0, b16=8000.0, k=4)
    repeats = _point("mdlm", "confidence", 1.00, 2.50, 0.125, b1=900.0, k=8)  # low gen-NLL, low entropy
    (row,) = frontier.versus_ar({"points": [ar, one, four, repeats]})
    assert row["answer"] == "found" and row["point"] is four
    assert row["speedup_batch1"] == 3.0 and row["speedup_batch16"] == 4.0
    (target,) = [t for t in frontier.parallel_target({"points": [one, four, repeats]})]
    assert target["met"] and target["best"] is four and abs(target["miss"] - 0.02) < 1e-12

    far = _point("mdlm", "ancestral", 1.90, 3.01, 1.0, k=1)
    (row,) = frontier.versus_ar({"points": [ar, far, repeats]})
    assert row["answer"] == "never" and row["closest"] is far and row["entropy_matched"]
    assert abs(row["miss"] - 0.30) < 1e-12
    assert "never" in frontier.report({"points": [ar, far, repeats]})
    assert "| mdlm | ancestral, 1 per call | 1.0 | 1.000 | 1.900 ± 0.010 |" in frontier.table({"points": [far]})


def test_report_prints_the_answers_and_table_of_a_stored_result(frontier, result, capsys):
    out, _ = result
    assert frontier.main(["--report", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "T=1.0 vs ar " in text and "T=0.8 vs ar_best " in text and "| model | sampler |" in text
    with pytest.raises(SystemExit, match="does not exist"):
        frontier.main(["--report", "--out", str(out / "none")])
