"""The benchmark command on a CPU with the --tiny preset: rows, table, MFU units, error rows, targets, merging."""

import contextlib
import io
import json

import pytest
import torch

from dllm_lite import bench
from dllm_lite.model import ModelConfig, Transformer

PEAK = 0.5  # TFLOP/s, a made-up peak so that the CPU rows get an MFU


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the tiny shapes gain nothing from more, and a shared CPU makes threads spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_main(argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = bench.main(argv)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One --tiny run with a made-up peak, the full-head lever, block diffusion (K = 8) and the medium memory check:
    (results, stdout)."""
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code, printed = run_main(["--tiny", "--device", "cpu", "--json", str(path), "--no-progress",
                                  "--peak-tflops", str(PEAK), "--compare", "full-head", "--medium-memory",
                                  "--block-size", "8"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return json.loads(path.read_text()), printed


def test_training_rows_for_both_objectives(tiny_run):
    results, _ = tiny_run
    rows = {r["name"]: r for r in results["training"]}
    assert {"diffusion", "autoregressive", "diffusion full-head", "block_diffusion K=8"} <= set(rows)
    assert rows["block_diffusion K=8"]["block_size"] == 8 and rows["block_diffusion K=8"]["vs_base"] is None
    for row in results["training"]:
        assert row["error"] is None
        assert row["tokens_per_s"] > 0 and row["step_ms"] > 0
        assert row["peak_gib"] is None  # CPU: no allocator statistics
    assert rows["diffusion"]["seq_len"] == bench.TINY["seq_len"] and rows["diffusion"]["batch_size"] == bench.TINY["batch_size"]
    medium = next(r for r in results["training"] if r["lever"] == "medium")
    assert medium["n_layer"] == bench.TINY["medium"]["n_layer"] and medium["activation_checkpointing"]


def test_sampling_rows_count_network_calls(tiny_run):
    results, _ = tiny_run
    rows = results["sampling"]
    seen = {(r["strategy"], r["steps"], r["batch_size"]) for r in rows}
    for strategy in bench.BenchOptions().strategies:
        for steps in bench.TINY["sample_steps"]:
            for batch in bench.TINY["sample_batch_sizes"]:
                assert (strategy, steps, batch) in seen
    blocks = [r for r in rows if r["objective"] == "block_diffusion"]
    assert {r["steps"] for r in blocks if r["batch_size"] == 1} == set(bench.TINY["sample_steps"])
    for row in rows:
        assert row["error"] is None, row
        assert row["tokens_per_s"] > 0
        extra = row["length"] // row["block_size"] - 1 if row["objective"] == "block_diffusion" else 0  # cache passes
        assert 1 <= row["network_calls"] <= row["steps"] + extra
        if row["objective"] == "autoregressive":  # one call per generated token, with or without the cache
            assert row["network_calls"] == row["length"]
        else:
            assert row["vs_ar"] == pytest.approx(row["tokens_per_s"] / next(
                r["tokens_per_s"] for r in rows if r["name"] == "AR kv-cache" and r["batch_size"] == row["batch_size"]))
    assert any(r["use_cache"] is False for r in rows)
    assert any("untrained" in note for note in results["notes"])


def test_table_is_printed_last(tiny_run):
    results, printed = tiny_run
    lines = printed.rstrip("\n").splitlines()
    n_rows = len(results["training"]) + len(results["sampling"])
    table = lines[-(n_rows + 2):]
    assert table[0].split()[:3] == ["kind", "variant", "B"]
    assert set(table[1]) == {"-"}
    assert [line.split()[0] for line in table[2:]] == ["train"] * len(results["training"]) + ["sample"] * len(results["sampling"])
    assert "targets: checked on CUDA only" in printed


def test_mfu_uses_flops_per_token_and_the_given_peak(tiny_run):
    results, _ = tiny_run
    assert results["meta"]["peak_tflops"] == PEAK
    for row in results["training"]:
        cfg = ModelConfig(vocab_size=row["vocab_size"], n_layer=row["n_layer"], n_head=row["n_head"],
                          n_embd=row["n_embd"], seq_len=row["seq_len"], causal=row["objective"] == "autoregressive")
        flops = Transformer(cfg).flops_per_token(head_share=1.0 if cfg.causal else 0.5,
                                                 streams=2 if row["block_size"] else 1)
        assert row["flops_per_token"] == flops
        assert row["mfu"] == pytest.approx(row["tokens_per_s"] * flops / (PEAK * 1e12))
    # by hand: 6 N + 12 L H Q T, N counting the tied embedding once; the diffusion head runs at the masked half
    rows = {r["name"]: r for r in results["training"]}
    base, ar = rows["diffusion"], rows["autoregressive"]
    L, H, Q, T = base["n_layer"], base["n_head"], base["n_embd"] // base["n_head"], base["seq_len"]
    head = -(-base["vocab_size"] // 64) * 64 * base["n_embd"]
    assert ar["flops_per_token"] == 6 * ar["params"] + 12 * L * H * Q * T
    assert base["flops_per_token"] == 6 * (base["params"] - head) + 3 * head + 12 * L * H * Q * T
    assert rows["diffusion full-head"]["flops_per_token"] == base["flops_per_token"]  # useful work only


def test_ratios_compare_like_with_like(tiny_run):
    results, _ = tiny_run
    rows = {r["name"]: r for r in results["training"]}
    diffusion, ar, full = rows["diffusion"], rows["autoregressive"], rows["diffusion full-head"]
    assert diffusion["vs_ar"] == pytest.approx(diffusion["tokens_per_s"] / ar["tokens_per_s"])
    assert full["vs_base"] == pytest.approx(full["tokens_per_s"] / diffusion["tokens_per_s"])
    assert diffusion["vs_base"] is None and ar["vs_ar"] is None


def test_a_failing_variant_becomes_an_error_row(monkeypatch, tmp_path):
    def broken(net, x, mask_id):
        raise RuntimeError("simulated out of memory")

    monkeypatch.setattr(bench, "ar_loss", broken)
    path = tmp_path / "b.json"
    code, printed = run_main(["--tiny", "--device", "cpu", "--skip-sampling", "--steps", "1", "--warmup", "0",
                              "--json", str(path)])
    assert code == 0
    rows = {r["name"]: r for r in json.loads(path.read_text())["training"]}
    assert rows["autoregressive"]["error"] == "RuntimeError: simulated out of memory"
    assert rows["diffusion"]["error"] is None and rows["diffusion"]["tokens_per_s"] > 0
    assert rows["diffusion"]["vs_ar"] is None
    assert "autoregressive" in printed.splitlines()[-1] and "error: RuntimeError" in printed.splitlines()[-1]


def test_a_sampling_row_past_its_time_limit_is_stopped():
    net = Transformer(ModelConfig(vocab_size=16, n_layer=1, n_head=2, n_embd=16, seq_len=8)).eval()
    row = bench.time_sampling(net, torch.device("cpu"), "float32", name="x", length=8, steps=8, limit_s=0.0)
    assert row["error"].startswith("stopped by the 0 s row limit") and row["tokens_per_s"] is None
    row = bench.time_sampling(net, torch.device("cpu"), "float32", name="x", length=8, steps=4, strategy="ancestral")
    assert row["error"] is None and 1 <= row["network_calls"] <= 4 and row["steps_taken"] == 4


def test_config_file_sets_the_shape(tmp_path):
    config = tmp_path / "shape.yaml"
    config.write_text("model: {n_layer: 1, n_head: 2, n_embd: 32, seq_len: 16}\ntrain: {batch_size: 3}\n"
                      "sample: {length: 16}\n")
    path = tmp_path / "b.json"
    code, _ = run_main(["--tiny", "--config", str(config), "--device", "cpu", "--skip-sampling", "--steps", "1",
                        "--warmup", "0", "--n-embd", "64", "--json", str(path)])
    row = json.loads(path.read_text())["training"][0]
    assert code == 0
    assert (row["n_layer"], row["n_head"], row["n_embd"], row["seq_len"], row["batch_size"]) == (1, 2, 64, 16, 3)


def test_bad_lever_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--tiny", "--compare", "compiler"])
    assert "unknown lever 'compiler'" in capsys.readouterr().err


def cuda_results(**train):
    """A made-up CUDA result: one diffusion / AR pair, a medium row and the two sampling rows the targets read."""
    row = dict(kind="train", error=None, lever=None, vs_base=None, batch_size=16, step_ms=30.0)
    diffusion = dict(row, name="diffusion", objective="diffusion", tokens_per_s=615_000.0, mfu=0.46, peak_gib=20.0,
                     vs_ar=1.1, flops_per_token=738_869_760)
    diffusion.update(train)
    ar = dict(row, name="autoregressive", objective="autoregressive", tokens_per_s=480_000.0, mfu=0.42, peak_gib=21.0,
              vs_ar=None, flops_per_token=854_770_176)
    medium = dict(row, name="medium memory", objective="diffusion", lever="medium", tokens_per_s=1.0, peak_gib=23.0)
    sample = dict(kind="sample", objective="diffusion", batch_size=1, length=1024, block_size=None, error=None,
                  tokens_per_s=900.0, ms_per_call=4.0, peak_gib=1.0)
    confidence = dict(sample, name="confidence s=256", strategy="confidence", steps=256, network_calls=256, vs_ar=1.5)
    ancestral = dict(sample, name="ancestral s=1024", strategy="ancestral", steps=1024, network_calls=640, vs_ar=2.0)
    return {"meta": {"device_type": "cuda", "device_name": "H100", "dtype": "bfloat16", "torch": "x", "commit": None,
                     "peak_tflops": 989.0}, "training": [diffusion, ar, medium], "sampling": [confidence, ancestral], "notes": []}


def test_targets_pass_and_miss():
    targets = {t["name"]: t for t in bench.check_targets(cuda_results())}
    assert targets["diffusion training MFU"]["passed"] and targets["diffusion training tokens/s"]["passed"]
    assert targets["diffusion / AR training tokens/s"]["passed"]
    assert targets["small config training peak memory"]["passed"]
    assert not targets["medium config training peak memory"]["passed"]  # 23 GiB > 22
    assert targets["confidence s=256 sampling vs AR kv-cache, batch 1, L=1024"]["passed"]
    ancestral = targets["cached ancestral: steps / network calls at 1024 steps, L=1024"]
    assert ancestral["value"] == pytest.approx(1024 / 640) and not ancestral["passed"]
    assert targets["diffusion training tokens/s"]["goal"] == ">= 602,339 (45% MFU)"  # 45% of 989 TFLOP/s over F
    slow = {t["name"]: t for t in bench.check_targets(cuda_results(mfu=0.40, tokens_per_s=590_000.0))}
    assert not slow["diffusion training MFU"]["passed"] and not slow["diffusion training tokens/s"]["passed"]
    assert bench.check_targets(dict(cuda_results(), meta={"device_type": "cpu"})) == []


def test_merge_joins_runs_and_prints_one_table(tmp_path):
    first, second = cuda_results(), cuda_results()
    first["sampling"], second["training"] = [], []
    paths = []
    for i, part in enumerate((first, second)):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(part))
    merged_path = tmp_path / "all.json"
    code, printed = run_main(["--merge", *map(str, paths), str(tmp_path / "missing.json"), "--json", str(merged_path)])
    merged = json.loads(merged_path.read_text())
    assert code == 0 and len(merged["training"]) == 3 and len(merged["sampling"]) == 2
    assert "skipping" in printed and "MISS  medium config training peak memory" in printed
    assert printed.rstrip().splitlines()[-1].startswith("sample ancestral s=1024")


def test_a_block_model_times_with_and_without_its_cache():
    torch.manual_seed(0)
    net = Transformer(ModelConfig(vocab_size=11, n_layer=1, n_head=2, n_embd=16, seq_len=16, block_size=4)).eval()
    cached = bench.time_sampling(net, torch.device("cpu"), "float32", name="c", length=16, steps=8)
    uncached = bench.time_sampling(net, torch.device("cpu"), "float32", name="u", length=16, steps=8, use_cache=False)
    assert cached["network_calls"] == 8 + 3 and uncached["network_calls"] == 8  # no cache: no cache passes
    assert cached["use_cache"] is True and uncached["use_cache"] is False
