"""Smoke test of benchmarks/run.py: `--quick` end to end (three 32×32 crops, budgets 1, 10, 50, the
classical codecs), and the committed evaluation crops. The CI's check that the README's numbers can be made."""
from __future__ import annotations

import csv
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from ardmzip.ardm import min_budget
from ardmzip.registry import default_model_id, load_model

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / "benchmarks" / "run.py"
OUTPUTS = ("results.json", "results.csv", "results.md", "bpd_vs_calls.png", "seconds_vs_budget.png")

def _load_run_module():
    """benchmarks/run.py as a module (it is a script, not part of the package)."""
    if "benchmark_run" not in sys.modules:
        spec = importlib.util.spec_from_file_location("benchmark_run", RUN)
        module = importlib.util.module_from_spec(spec)
        sys.modules["benchmark_run"] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
    return sys.modules["benchmark_run"]


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Path:
    """Run `benchmarks/run.py --quick` once in a subprocess; the output folder."""
    from ardmzip.errors import ModelError
    from ardmzip.registry import default_model_id
    try:
        default_model_id("image")
    except ModelError as e:
        pytest.skip(f"no shipped image model to benchmark: {e}")
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([sys.executable, str(RUN), "--quick", "--out", str(out), "--cache", str(out / "cache")],
                          cwd=REPO, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, f"run.py --quick failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return out


def _finite_positive(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


class TestQuickRun:
    def test_writes_every_output(self, quick):
        for name in OUTPUTS:
            assert (quick / name).stat().st_size > 0, name
        for name in ("bpd_vs_calls.png", "seconds_vs_budget.png"):
            assert (quick / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name

    def test_every_round_trip_exact(self, quick):
        res = json.loads((quick / "results.json").read_text())
        assert res["failures"] == []
        ardm = [r for r in res["items"] if r["method"] == "ardmzip"]
        assert len(ardm) == 3 * 3  # 3 crops × budgets 1, 10, 50
        assert {r["budget"] for r in ardm} == {"1", "10", "50"}
        assert len({r["image"] for r in ardm}) == 3
        for r in res["items"]:
            assert r["exact"] is True and r["error"] is None, r
        floor = min_budget(load_model(default_model_id("image")).cfg.order)  # one call per group at least
        for r in ardm:
            assert 1 <= r["calls"] <= max(r["budget_calls"], floor), r
            assert r["bytes"] * 8 == r["bits"] and r["dims"] in (32 * 32, 32 * 32 * 3)

    def test_bpd_positive_and_finite(self, quick):
        res = json.loads((quick / "results.json").read_text())
        classical = {r["method"] for r in res["items"] if r["method"] != "ardmzip"}
        assert classical == {"png", "webp", "jxl-e7", "jxl-e9"}
        for r in res["items"] + res["summary"]:
            assert _finite_positive(r["bpd"]), r
            if r["method"] == "ardmzip":
                assert _finite_positive(r["predicted_bpd"]) and _finite_positive(r["model_bpd"]), r
                # a model-coded file can't be shorter than the model's ideal code length (minus ANS slack);
                # a stored fallback (raw/deflate, chosen when smaller) can
                if r.get("stored_as") == "ardm":
                    assert r["bits"] >= r.get("model_bits", r["model_bpd"] * r["dims"]) - 64, r

    def test_records_environment(self, quick):
        env = json.loads((quick / "results.json").read_text())["environment"]
        for key in ("date", "git_commit", "cpu", "torch_threads", "model_id", "model_sha256"):
            assert env[key] not in (None, ""), key
        assert len(env["model_sha256"]) == 64
        for package in ("torch", "constriction", "imagecodecs", "numpy"):
            assert env["versions"][package], package

    def test_csv_matches_json(self, quick):
        res = json.loads((quick / "results.json").read_text())
        lines = (quick / "results.csv").read_text().splitlines()
        assert any(line.startswith("# model_sha256: ") for line in lines)
        rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
        assert sum(r["level"] == "item" for r in rows) == len(res["items"])
        assert sum(r["level"] == "dataset" for r in rows) == len(res["summary"])
        for r in rows:
            assert _finite_positive(float(r["bpd"]))

    def test_markdown_tables(self, quick):
        md = (quick / "results.md").read_text()
        for text in ("| crops32 |", "PNG", "WebP", "JPEG-XL e7", "JPEG-XL e9", "Schedule check"):
            assert text in md, text
        assert "FAILURES" not in md


class TestEvalCrops:
    def test_restore_rebuilds_the_cache_from_results_json(self, quick, tmp_path):
        run = _load_run_module()
        res = json.loads((quick / "results.json").read_text())
        model = load_model(res["environment"]["model_id"])
        entries = run.restorable(res, tmp_path, model)
        assert len(entries) == len(res["items"])
        assert run.restore(entries) == len(entries) and run.restore(entries) == 0  # never replaces an entry
        for path, _ in entries:  # the same files, paths and contents, as the run's own cache
            mine = quick / "cache" / path.relative_to(tmp_path)
            assert json.loads(path.read_text()) == json.loads(mine.read_text())
        other_format = {**res, "items": [{**r, "format_version": run.FORMAT_VERSION + 1} for r in res["items"]]}
        other_model = {**res, "environment": {**res["environment"], "model_sha256": "0" * 64}}
        classical = sum(r["method"] != "ardmzip" for r in res["items"])
        assert len(run.restorable(other_format, tmp_path, model)) == classical
        assert len(run.restorable(other_model, tmp_path, model)) == classical

    def test_a_partial_budget_is_no_total(self, quick, tmp_path):
        """--cached-only with one item's result missing at a budget: that budget's total is "—" in the
        table, named under it, marked incomplete in results.json and left out of the curves."""
        import shutil
        shutil.copytree(quick / "cache", tmp_path / "cache")
        gone = sorted((tmp_path / "cache" / "ardmzip").rglob("*-b50.json"))[0]
        gone.unlink()
        proc = subprocess.run([sys.executable, str(RUN), "--quick", "--cached-only", "--out", str(tmp_path / "out"),
                               "--cache", str(tmp_path / "cache")], cwd=REPO, capture_output=True, text=True, timeout=150)
        assert proc.returncode == 0, proc.stderr[-3000:]
        summary = json.loads((tmp_path / "out" / "results.json").read_text())["summary"]
        b50 = next(s for s in summary if s["method"] == "ardmzip" and s["budget"] == "50")
        assert b50["items"] == 2 and not b50["complete"]
        assert all(s["complete"] for s in summary if s is not b50)
        md = (tmp_path / "out" / "results.md").read_text()
        assert "Not complete (— above; each measured item is in the tables below): crops32 at B=50: 2 of 3 items." in md
        row = next(line for line in md.splitlines() if line.startswith("| crops32 |"))
        assert row.split(" | ")[2 + ["1", "10", "50"].index("50")] == "—"
        assert "50" not in {s["budget"] for s in _load_run_module()._ardm_series(summary, "crops32")}

    def test_committed_crops_fit_and_do_not_overlap(self):
        run = _load_run_module()
        images = run.load_images()
        crops = run.read_crops(images)
        assert len(crops) == 48 and len({c["id"] for c in crops}) == 48
        for name in run.IMAGES:
            mine = [c for c in crops if c["image"] == name]
            assert sorted(c["size"] for c in mine) == [32, 32, 32, 32, 64, 64]
            for i, a in enumerate(mine):
                for b in mine[i + 1:]:
                    assert (a["y"] + a["size"] <= b["y"] or b["y"] + b["size"] <= a["y"]
                            or a["x"] + a["size"] <= b["x"] or b["x"] + b["size"] <= a["x"]), (a, b)

    def test_crops_are_reproducible_from_the_seed(self):
        run = _load_run_module()
        images = run.load_images()
        spec = json.loads(run.CROPS_FILE.read_text())
        assert run.make_crops(images, spec["seed"])["crops"] == spec["crops"]


def test_variants_table_reads_every_committed_run(tmp_path, monkeypatch):
    """benchmarks/variants.py puts the committed runs side by side; every variant's folder must hold a
    run of the same evaluation images (same classical numbers on every set it has), and the table and plot
    get written, whole photos included."""
    spec = importlib.util.spec_from_file_location("bench_variants", RUN.parent / "variants.py")
    variants = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(variants)
    runs = [variants.curves(variants.RESULTS / folder) for folder, _ in variants.VARIANTS]
    assert all(classical[ds] == runs[-1][1][ds] for _, classical, _ in runs for ds in classical)
    assert runs[-1][0]["crops64"][runs[-1][2]["default_budget"]] < runs[-1][1]["crops64"]["webp"]
    assert runs[-1][2]["default_budget"] in runs[-1][0]["whole"] and "whole" not in runs[1][0]  # img3: crops only
    monkeypatch.setattr(variants, "RESULTS", tmp_path)
    for folder, _ in variants.VARIANTS:   # the committed runs, read from their own folders
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "results.json").write_text(
            (RUN.parent / "results" / folder / "results.json").read_text())
    assert variants.main() == 0
    md = (tmp_path / "variants.md").read_text()
    assert (tmp_path / "variants.png").stat().st_size > 1000 and "| img2: uniform order" in md and "**whole**" in md


def test_variants_leave_out_a_partial_budget(tmp_path):
    """A budget run on only some of a set's items (or with a failed round trip) is not a point of the curve."""
    spec = importlib.util.spec_from_file_location("bench_variants", RUN.parent / "variants.py")
    variants = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(variants)

    def row(budget, items, failed=0, method="ardmzip", bpd=2.5):
        return {"dataset": "whole", "method": method, "budget": budget, "items": items, "failed": failed, "bpd": bpd}
    run = {"environment": {"default_budget": 18},
           "summary": [row("default", 8), row("100", 8, failed=1), row("200", 7), row("", 8, method="webp")]}
    (tmp_path / "results.json").write_text(json.dumps(run))
    ardm, classical, _ = variants.curves(tmp_path)
    assert ardm == {"whole": {18: 2.5}} and classical == {"whole": {"webp": 2.5}}


def test_upscaling_comparison_spends_the_budget_on_both_stages():
    """benchmarks/upscaling.py predicts through the codec's own plan: a one-stage run's prediction is its
    schedule's; a two-stage run needs a call per stage, and its split is never worse than an even one;
    more calls never cost bits."""
    from ardmzip import codec
    from ardmzip.nets import NetConfig
    spec = importlib.util.spec_from_file_location("bench_upscaling", RUN.parent / "upscaling.py")
    up = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(up)
    shape, curve = (32, 32, 3), list(range(6000, 1904, -8))     # millibits per variable, falling as more is known
    d = 3072
    one, two = NetConfig(), NetConfig(stages=2)
    plan = codec._plan(codec.planning_model(one, [curve]), tuple(curve), shape, 10, 0)
    assert up.predicted_bpd(one, [curve], shape, 10) == pytest.approx(plan.predicted_bits(curve) / d)
    assert up.predicted_bpd(two, [curve, curve], shape, 1) is None
    even = 2 * codec._plan(codec.planning_model(one, [curve]), tuple(curve), shape, 5, 0).predicted_bits(curve) / d
    assert up.predicted_bpd(two, [curve, curve], shape, 10) <= even
    bpd = [up.predicted_bpd(two, [curve, curve], shape, b) for b in (2, 4, 10, 50, 200)]
    assert bpd == sorted(bpd, reverse=True)
