"""The benchmark on a CPU with the --tiny preset: rows, table, MFU units, time limits, error rows, targets, merging,
the reference row, the commit, the profiler tables."""

import contextlib
import io
import json
import shutil
import subprocess
import time

import pytest
import torch

from dllm_lite import bench, bench_report, bench_suite, bench_timing
from dllm_lite.bench_reference import PlainGPT
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
    assert not any("stopped" in line for line in table)  # the tiny rows all finish inside the default limit


def test_mfu_uses_flops_per_token_and_the_given_peak(tiny_run):
    results, _ = tiny_run
    assert results["meta"]["peak_tflops"] == PEAK
    for row in results["training"]:
        if row["objective"] == "reference":
            continue  # test_the_reference_row_is_a_plain_gpt_of_the_same_shape
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


def test_the_reference_row_is_a_plain_gpt_of_the_same_shape(tiny_run):
    results, _ = tiny_run
    rows = {r["name"]: r for r in results["training"]}
    ref, diffusion = rows["reference"], rows["diffusion"]
    for key in ("n_layer", "n_head", "n_embd", "seq_len", "batch_size", "vocab_size", "dtype"):
        assert ref[key] == diffusion[key]
    assert ref["error"] is None and ref["tokens_per_s"] > 0 and not ref["compile"]
    assert diffusion["vs_ref"] == pytest.approx(diffusion["tokens_per_s"] / ref["tokens_per_s"])
    assert rows["autoregressive"]["vs_ref"] is None and ref["vs_ref"] is None
    # by hand: 6 N + 12 L C T, N without the learned positions, the tied (padded) embedding once, LayerNorm weights
    L, C, T, V = ref["n_layer"], ref["n_embd"], ref["seq_len"], ref["vocab_size"]
    weights = -(-V // 64) * 64 * C + L * (12 * C * C + 2 * C) + C
    assert ref["params"] == weights + T * C
    assert ref["flops_per_token"] == 6 * weights + 12 * L * C * T
    net = PlainGPT(vocab_size=V, n_layer=L, n_head=ref["n_head"], n_embd=C, seq_len=T)
    assert net(torch.zeros(2, T, dtype=torch.long)).shape == (2, T, V)  # the head at every position


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

    monkeypatch.setattr(bench_timing, "ar_loss", broken)
    path = tmp_path / "b.json"
    code, printed = run_main(["--tiny", "--device", "cpu", "--skip-sampling", "--steps", "1", "--warmup", "0",
                              "--json", str(path)])
    assert code == 0
    rows = {r["name"]: r for r in json.loads(path.read_text())["training"]}
    assert rows["autoregressive"]["error"] == "RuntimeError: simulated out of memory"
    assert rows["diffusion"]["error"] is None and rows["diffusion"]["tokens_per_s"] > 0
    assert rows["diffusion"]["vs_ar"] is None
    ar_line = next(line for line in printed.splitlines() if line.startswith("train  autoregressive"))
    assert "error: RuntimeError" in ar_line


def test_a_sampling_row_past_its_time_limit_is_stopped():
    net = Transformer(ModelConfig(vocab_size=16, n_layer=1, n_head=2, n_embd=16, seq_len=8)).eval()
    row = bench.time_sampling(net, torch.device("cpu"), "float32", name="x", length=8, steps=8, limit_s=0.0)
    assert row["error"].startswith("stopped by its 0 s limit") and row["tokens_per_s"] is None
    assert row["stopped_at_limit"] and row["limit_s"] == 0.0
    row = bench.time_sampling(net, torch.device("cpu"), "float32", name="x", length=8, steps=4, strategy="ancestral")
    assert row["error"] is None and 1 <= row["network_calls"] <= 4 and row["steps_taken"] == 4


def test_diffusion_sampling_rows_take_the_samplers_chunked_head(monkeypatch):
    # the meter must let the sampler see features/head, or every diffusion row computes all B x T x V logits
    # at once (the 4.15 GiB of the H200 run) instead of the bounded chunks a user's sample takes
    from dllm_lite import draw

    net = Transformer(ModelConfig(vocab_size=16, n_layer=1, n_head=2, n_embd=16, seq_len=8)).eval()
    assert draw.head_of(bench_timing._meter(net)) is not None
    whole = []
    real_forward = Transformer.forward
    monkeypatch.setattr(Transformer, "forward", lambda self, *a, **k: whole.append(1) or real_forward(self, *a, **k))
    row = bench.time_sampling(net, torch.device("cpu"), "float32", name="x", length=8, steps=4)
    assert row["error"] is None and row["network_calls"] == 4 and whole == []  # every call went through features


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
    """A made-up CUDA result: a diffusion / AR / reference trio, a medium row and the sampling rows the targets read."""
    row = dict(kind="train", error=None, lever=None, vs_base=None, batch_size=16, step_ms=30.0, compile=False,
               dtype="bfloat16")
    diffusion = dict(row, name="diffusion", objective="diffusion", tokens_per_s=615_000.0, mfu=0.46, peak_gib=20.0,
                     vs_ar=1.1, flops_per_token=738_869_760)
    diffusion.update(train)
    ar = dict(row, name="autoregressive", objective="autoregressive", tokens_per_s=480_000.0, mfu=0.42, peak_gib=21.0,
              vs_ar=None, flops_per_token=854_770_176)
    reference = dict(row, name="reference", objective="reference", tokens_per_s=600_000.0, mfu=0.5, peak_gib=19.0,
                     flops_per_token=854_770_176)
    medium = dict(row, name="medium memory", objective="diffusion", lever="medium", tokens_per_s=1.0, peak_gib=23.0)
    sample = dict(kind="sample", objective="diffusion", batch_size=1, length=1024, block_size=None, error=None,
                  tokens_per_s=900.0, ms_per_call=4.0, peak_gib=1.0, use_cache=None, compiled=False,
                  stopped_at_limit=False, extra_gib=None, forward_gib=None)
    confidence = dict(sample, name="confidence s=256", strategy="confidence", steps=256, network_calls=256, vs_ar=1.5)
    ancestral = dict(sample, name="ancestral s=1024", strategy="ancestral", steps=1024, network_calls=640, vs_ar=2.0)
    ar_eager = dict(sample, name="AR kv-cache", objective="autoregressive", strategy="autoregressive", steps=1024,
                    network_calls=1024, use_cache=True, tokens_per_s=350.0, ms_per_call=2.8)
    ar_compiled = dict(ar_eager, name="AR kv-cache compiled", compiled=True, tokens_per_s=900.0, ms_per_call=1.1)
    block = dict(sample, name="block K=16 confidence s=256", objective="block_diffusion", strategy="confidence",
                 steps=256, block_size=16, use_cache=True, network_calls=319, ms_per_call=6.0)
    wide = dict(block, name="block K=16 confidence s=256", batch_size=16, extra_gib=3.0, forward_gib=2.0)
    return {"meta": {"device_type": "cuda", "device_name": "H100", "dtype": "bfloat16", "torch": "x", "commit": None,
                     "peak_tflops": 989.0, "options": {"config_name": "tiny"}},
            "training": [diffusion, ar, reference, medium],
            "sampling": [confidence, ancestral, ar_eager, ar_compiled, block, wide], "notes": []}


def test_targets_pass_and_miss():
    results = cuda_results()
    bench_report.add_ratios(results)
    targets = {t["name"]: t for t in bench.check_targets(results)}
    assert targets["diffusion training MFU"]["passed"] and targets["diffusion training tokens/s"]["passed"]
    assert targets["diffusion / AR training tokens/s"]["passed"]
    assert targets["tiny config training peak memory"]["passed"]  # named after the run's --config
    assert not targets["medium config training peak memory"]["passed"]  # 23 GiB > 22
    assert targets["confidence s=256 sampling vs AR kv-cache, batch 1, L=1024"]["passed"]
    ancestral = targets["cached ancestral: steps / network calls at 1024 steps, L=1024"]
    assert ancestral["value"] == pytest.approx(1024 / 640) and not ancestral["passed"]
    assert targets["diffusion training tokens/s"]["goal"] == ">= 602,339 (45% MFU)"  # 45% of 989 TFLOP/s over F
    slow = {t["name"]: t for t in bench.check_targets(cuda_results(mfu=0.40, tokens_per_s=590_000.0))}
    assert not slow["diffusion training MFU"]["passed"] and not slow["diffusion training tokens/s"]["passed"]
    assert bench.check_targets(dict(cuda_results(), meta={"device_type": "cpu"})) == []


def test_the_gpu_path_targets():
    """The AR decode, block diffusion, memory, reference and tiny.yaml targets, each met and missed."""
    results = cuda_results()
    bench_report.add_ratios(results)
    targets = {t["name"]: t for t in bench.check_targets(results)}
    assert targets["AR decode with its cache, eager, batch 1, L=1024"]["passed"]  # 350 >= 300 tokens/s
    compiled = targets["AR decode with its cache, compiled, batch 1, L=1024"]
    assert compiled["value"] == 900.0 and not compiled["passed"]  # < 1,000 tokens/s
    block = targets["block diffusion K=16 with its cache: ms per network call over AR's"]
    assert block["value"] == pytest.approx(6.0 / 2.8) and not block["passed"]  # 2.14x > 2x
    memory = targets["sampling working set at batch 16, L=1024, over the forward activations"]
    assert memory["value"] == pytest.approx(1.5) and memory["passed"] and "3.00 vs 2.00 GiB" in memory["shown"]
    reference = targets["eager diffusion step vs the plain GPT-2 reference"]
    assert reference["value"] == pytest.approx(615 / 600) and reference["passed"]
    tiny = targets["tiny.yaml: 3,000 steps of training time (steps only)"]
    assert tiny["value"] == pytest.approx(90.0) and not tiny["passed"]  # 3,000 x 30 ms

    slow = cuda_results(tokens_per_s=550_000.0)
    slow["sampling"][2].update(stopped_at_limit=True, error="stopped by its 30 s limit after 700 network calls",
                               tokens_per_s=None, ms_per_call=43.0)
    bench_report.add_ratios(slow)
    targets = {t["name"]: t for t in bench.check_targets(slow)}
    assert not targets["eager diffusion step vs the plain GPT-2 reference"]["passed"]  # 0.92x
    eager = targets["AR decode with its cache, eager, batch 1, L=1024"]
    assert eager["shown"] == "no result" and not eager["passed"]  # a stopped row gives no value
    assert targets["block diffusion K=16 with its cache: ms per network call over AR's"]["shown"] == "no result"
    no_tiny = dict(cuda_results(), meta=dict(cuda_results()["meta"], options={"config_name": "small"}))
    assert not any(t["name"].startswith("tiny.yaml") for t in bench.check_targets(no_tiny))


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
    assert code == 0 and len(merged["training"]) == 4 and len(merged["sampling"]) == 6
    assert "skipping" in printed and "missed  medium config training peak memory" in printed
    assert "met     eager diffusion step vs the plain GPT-2 reference: 1.02x" in printed  # ratio found across parts
    assert printed.rstrip().splitlines()[-1].startswith("sample block K=16 confidence s=256")


def test_a_block_model_times_with_and_without_its_cache():
    torch.manual_seed(0)
    net = Transformer(ModelConfig(vocab_size=11, n_layer=1, n_head=2, n_embd=16, seq_len=16, block_size=4)).eval()
    cached = bench.time_sampling(net, torch.device("cpu"), "float32", name="c", length=16, steps=8)
    uncached = bench.time_sampling(net, torch.device("cpu"), "float32", name="u", length=16, steps=8, use_cache=False)
    assert cached["network_calls"] == 8 + 3 and uncached["network_calls"] == 8  # no cache: no cache passes
    assert cached["use_cache"] is True and uncached["use_cache"] is False


def test_every_sampling_row_has_a_time_limit_the_ar_rows_included(capsys):
    """A limit too short for any row stops every one of them, the AR rows at batch 1 too, and says so."""
    results = bench.run_bench(**{**bench.TINY, "device": "cpu", "training": False, "progress": False,
                                 "sample_steps": (4,), "sample_limit_s": 1e-9})
    rows = results["sampling"]
    assert {r["name"] for r in rows} >= {"AR kv-cache", "AR kv-cache L=8", "AR no-cache L=8", "ancestral s=4"}
    for row in rows:
        assert row["stopped_at_limit"] and row["limit_s"] == 1e-9 and row["tokens_per_s"] is None, row["name"]
        assert row["network_calls"] == 0 and row["ms_per_call"] is None and row["vs_ar"] is None
    table = bench.format_table(results).splitlines()[2:]
    assert all(line.split()[-8] == "stopped" for line in table)  # reported as stopped, not as an error
    assert "STOPPED at its 1e-09 s limit: 0 network calls" in capsys.readouterr().out
    with pytest.raises(ValueError, match="sample_limit_s must be a positive number"):
        bench.run_bench(sample_limit_s=None)


class SlowNet(Transformer):
    """A causal net whose every call takes at least 20 ms."""

    def forward(self, *args, **kwargs):
        time.sleep(0.02)
        return super().forward(*args, **kwargs)


def test_a_stopped_row_keeps_what_it_measured():
    net = SlowNet(ModelConfig(vocab_size=16, n_layer=1, n_head=2, n_embd=16, seq_len=64, causal=True)).eval()
    row = bench.time_sampling(net, torch.device("cpu"), "float32", name="AR kv-cache", length=60, limit_s=0.1)
    assert row["stopped_at_limit"] and row["objective"] == "autoregressive"
    assert 2 <= row["network_calls"] < 60 and row["ms_per_call"] >= 20 and row["seconds"] >= 0.1
    line = bench_report.row_line(row)
    assert line.startswith("sample AR kv-cache B=1: STOPPED at its 0.1 s limit") and f"{row['network_calls']} network calls" in line


def git(folder, *args):
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin", "HOME": str(folder)})


@pytest.fixture
def other_repo(tmp_path):
    """A git repository with one commit that does not track the dllm_lite package."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "other"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "notes.txt").write_text("not the package\n")
    git(repo, "add", "notes.txt")
    git(repo, "commit", "-q", "-m", "other")
    return repo


def test_the_commit_is_the_packages_own_not_the_working_directorys(other_repo, monkeypatch):
    own = subprocess.run(["git", "rev-parse", "HEAD"], cwd=bench_report.PACKAGE_DIR, capture_output=True, text=True)
    if own.returncode != 0:
        pytest.skip("this copy of the package is not a git checkout")
    monkeypatch.chdir(other_repo)
    assert bench_report.package_commit() == (own.stdout.strip(), None)


def test_a_copy_of_the_package_inside_another_repository_has_no_commit(other_repo):
    """The H200 run's case: the package copied, without its .git, into a folder of some other repository."""
    copy = other_repo / "copy" / "dllm_lite"
    shutil.copytree(bench_report.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("assets", "__pycache__"))
    commit, why = bench_report.package_commit(copy)
    assert commit is None and "not tracked by the enclosing git repository" in why and str(other_repo) in why
    commit, why = bench_report.package_commit(other_repo.parent)  # no repository around it at all
    assert commit is None and "not inside a git checkout" in why


def test_the_printed_commit_says_why_there_is_none(monkeypatch, tmp_path):
    monkeypatch.setattr(bench_suite, "package_commit", lambda: (None, "/x is not inside a git checkout"))
    code, printed = run_main(["--tiny", "--device", "cpu", "--skip-sampling", "--steps", "1", "--warmup", "0",
                              "--no-reference", "--json", str(tmp_path / "b.json")])
    meta = json.loads((tmp_path / "b.json").read_text())["meta"]
    assert code == 0 and meta["commit"] is None and meta["commit_note"] == "/x is not inside a git checkout"
    assert "commit none (/x is not inside a git checkout)" in printed


def test_profile_prints_the_top_ops_of_a_training_and_a_decode_step():
    code, printed = run_main(["--tiny", "--device", "cpu", "--profile", "--profile-rows", "5"])
    assert code == 0
    train, decode = printed.split("== one AR decode step")
    assert train.startswith("== one diffusion training step, batch 4 x 32") and "top ops by self CPU time" in train
    assert "aten::mm" in train  # the matrix products, the bulk of the step
    assert ": 1 token against a cache of 17, batch 1" in decode and "aten::" in decode and "Self CPU time total" in decode
    rules = [i for i, line in enumerate(train.splitlines()) if line.startswith("-----")]
    body = train.splitlines()[rules[1] + 1 : rules[2]]  # the rows between the header's rule and the closing one
    assert len(body) == 5  # --profile-rows
    share = [float(line.split("%")[0].split()[-1]) for line in body]  # Self CPU %, the first percentage
    assert share == sorted(share, reverse=True)  # sorted by self CPU time, largest first


def test_objectives_choose_the_training_rows():
    o = bench.BenchOptions(objectives=("diffusion",), compare=("compile", "full-head"), reference=False)
    assert [s.name for s in bench_suite.training_specs(o, "float32")] == ["diffusion", "diffusion full-head",
                                                                         "diffusion +compile"]
    with pytest.raises(ValueError, match="unknown objective 'ar'"):
        bench.BenchOptions(objectives=("ar",))


def test_compiled_decode_rows_warm_up_then_pass_compile_to_generate(monkeypatch):
    """--compile-decode B adds an AR and a block diffusion row that call generate(compile=True), each run once
    untimed first (the compile), and the targets read the compiled AR row as such."""
    seen = []

    def fake_generate(net, **kwargs):
        seen.append(kwargs.get("compile", False))
        net(torch.zeros(1, 1, dtype=torch.long))  # one metered call
        kwargs["stats"].update(network_calls=1, steps=1)

    monkeypatch.setattr(bench_timing, "generate", fake_generate)
    options = dict(bench.TINY, device="cpu", training=False, progress=False, verbose=False, block_size=8,
                   sample_batch_sizes=(), compile_decode=(1,), sample_steps=(4, 16))
    rows = bench.run_bench(**options)["sampling"]
    assert [r["name"] for r in rows] == ["AR kv-cache compiled", "block K=8 s=16 compiled"]  # the most steps
    assert all(r["compiled"] and r["batch_size"] == 1 and r["error"] is None for r in rows)
    assert seen == [True] * 4  # each row: a warm-up run, then the timed one
    bench_report.add_ratios({"training": [], "sampling": rows})
    assert rows[0]["vs_ar"] is None  # a compiled AR row is not the eager AR reference


def test_a_compiled_row_counts_what_its_timed_run_compiled(monkeypatch, capsys):
    """The warm-up compiles; a compile during the timed run (a recompile) is counted in the row and its line."""
    calls = []

    def fake_generate(net, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the timed run of the first row compiles something new
            torch.compile(lambda t: t * 2 + 1)(torch.ones(3))
        kwargs["stats"].update(network_calls=1, steps=1)

    monkeypatch.setattr(bench_timing, "generate", fake_generate)
    rows = bench.run_bench(**dict(bench.TINY, device="cpu", training=False, progress=False, sample_batch_sizes=(),
                                  compile_decode=(1,), block_size=8))["sampling"]
    assert [(r["graphs_compiled"], r["cudagraph_skips"]) for r in rows] == [(1, 0), (0, 0)]
    assert "compiled 1 graphs and skipped CUDA graphs 0 times while timed" in capsys.readouterr().out


def test_a_failed_compile_warm_up_is_reported_and_the_row_still_runs(monkeypatch, capsys):
    runs = []

    def fake_generate(net, **kwargs):
        runs.append(kwargs.get("compile"))
        if len(runs) == 1:
            raise RuntimeError("simulated compiler crash")
        kwargs["stats"].update(network_calls=1, steps=1)

    monkeypatch.setattr(bench_timing, "generate", fake_generate)
    rows = bench.run_bench(**dict(bench.TINY, device="cpu", training=False, progress=False, sample_batch_sizes=(),
                                  compile_decode=(1,)))["sampling"]
    assert [r["name"] for r in rows] == ["AR kv-cache compiled"] and rows[0]["error"] is None
    assert "warm-up (compiles) AR kv-cache compiled B=1: 0.0 s, RuntimeError: simulated compiler crash" in \
        capsys.readouterr().out


def test_fast_dllm_block_cache_rows():
    """--block-caches adds the semi-autoregressive variant with Fast-dLLM's prefix and dual caches."""
    rows = bench.run_bench(**dict(bench.TINY, device="cpu", training=False, progress=False, verbose=False,
                                  sample_batch_sizes=(1,), sample_steps=(8,), strategies=(), ar_nocache_length=0,
                                  sample_block_size=8, block_caches=("prefix", "dual")))["sampling"]
    rows = {r["name"]: r for r in rows}
    plain, prefix, dual = (rows[f"confidence block=8{mode} s=8"] for mode in ("", " prefix", " dual"))
    assert plain["block_cache"] is None and prefix["block_cache"] == "prefix" and dual["block_cache"] == "dual"
    for row in (plain, prefix, dual):
        assert row["error"] is None and row["network_calls"] == 8  # one call per step, cached or not
    with pytest.raises(ValueError, match="give sample_block_size"):
        bench.BenchOptions(block_caches=("prefix",))
    with pytest.raises(ValueError, match="unknown block cache 'full'"):
        bench.BenchOptions(sample_block_size=8, block_caches=("full",))
