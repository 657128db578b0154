"""benchmarks/diffusion_wins.py, the driver of notebook 13's experiments, still runs end to end
(in seconds: every run stopped after a moment, results into a temporary folder)."""

import json

import pytest


@pytest.fixture(scope="module")
def driver():
    from conftest import load_script

    return load_script("benchmarks/diffusion_wins.py")


def test_the_data_experiment_picks_ar_regularisation_on_the_first_size_and_keeps_it(driver, tmp_path):
    assert driver.main(["data", "--minutes", "0.01", "--sizes", "4000", "3000", "--runs", str(tmp_path / "runs"),
                        "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "data.json").read_text())
    first, second = result["sizes"]["4000"], result["sizes"]["3000"]
    assert set(first) == set(driver.DATA_RUNS)  # every AR variant is tried on the first slice
    ar = [name for name in first if name != "diffusion"]
    assert result["regularisation"] == min(ar, key=lambda name: first[name]["best"]["value"])
    assert set(second) == {"diffusion", "autoregressive", result["regularisation"]}
    for run in [*first.values(), *second.values()]:
        assert run["curve"] and run["best"]["value"] == min(p["value"] for p in run["curve"])
    assert first["diffusion"]["metric"] == "val_bound" and first["autoregressive"]["metric"] == "val_loss"


def test_the_reversal_experiment_scores_every_question_and_infills_only_with_diffusion(driver, tmp_path):
    assert driver.main(["reversal", "--minutes", "0.01", "--candidates", "3", "--samples", "1",
                        "--runs", str(tmp_path / "runs"), "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "reversal.json").read_text())
    questions = {"forward", "reverse", "rank_right", "rank_left", "rank_reverse"}
    assert set(result["autoregressive"]) == questions  # an AR model cannot fill the left side
    assert set(result["diffusion"]) == questions | {"left_infill"}
    assert all(0 <= value <= 1 for row in (result["diffusion"], result["autoregressive"]) for value in row.values())
    assert result["n_facts"] == 100 and result["candidates"] == 3
