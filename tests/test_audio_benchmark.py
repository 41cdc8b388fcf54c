"""Smoke test of benchmarks/audio.py: `--quick` end to end (budgets 1 and 10 on a few small items:
synthesised clips where the evaluation data is missing, as in CI), and the subset rule and --roundtrip-all
on a small evaluation folder made here. The CI's check that the README's audio numbers can be made."""
from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ardmzip import audio
from ardmzip.ardm import min_budget
from ardmzip.registry import default_model_id, load_model

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "audio.py"
OUTPUTS = ("results.json", "results.csv", "results.md", "bps_vs_calls.png", "seconds_vs_budget.png")


def _load_module():
    """benchmarks/audio.py as a module (it is a script, not part of the package)."""
    if "benchmark_audio" not in sys.modules:
        spec = importlib.util.spec_from_file_location("benchmark_audio", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["benchmark_audio"] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
    return sys.modules["benchmark_audio"]


def _need_audio_model() -> None:
    from ardmzip.errors import ModelError
    from ardmzip.registry import default_model_id
    try:
        default_model_id("audio")
    except ModelError as e:
        pytest.skip(f"no shipped audio model to benchmark: {e}")


def _run(out: Path, *args: str, cache: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args, "--out", str(out), "--cache", str(cache or out / "cache")],
                          cwd=REPO, capture_output=True, text=True, timeout=150)


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Path:
    """Run `benchmarks/audio.py --quick` once in a subprocess, as in CI (no evaluation clips: synthesised
    ones); the output folder."""
    _need_audio_model()
    out = tmp_path_factory.mktemp("audio-bench")
    proc = _run(out, "--quick", "--eval-dir", str(out / "no-evaluation-clips"))
    assert proc.returncode == 0, f"audio.py --quick failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return out


def _finite_positive(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


class TestQuickRun:
    def test_writes_every_output(self, quick):
        for name in OUTPUTS:
            assert (quick / name).stat().st_size > 0, name
        for name in ("bps_vs_calls.png", "seconds_vs_budget.png"):
            assert (quick / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name

    def test_every_round_trip_exact(self, quick):
        res = json.loads((quick / "results.json").read_text())
        assert res["failures"] == []
        methods = {r["method"] for r in res["items"]}
        assert {"ardmzip", "flac-sf"} <= methods
        assert methods - {"ardmzip", "flac-sf"} <= {"flac-8", "wavpack-hh"}  # where their programs are installed
        ardm = [r for r in res["items"] if r["method"] == "ardmzip"]
        assert {r["budget"] for r in ardm} == {"1", "10"}
        assert len(ardm) == 2 * len(res["subset"]) and {i["dataset"] for i in res["subset"]} == {"synthetic"}
        for r in res["items"]:
            assert r["exact"] is True and r["error"] is None, r
            assert _finite_positive(r["bpd"]) and r["bytes"] * 8 == r["bits"], r
        floor = min_budget(load_model(default_model_id("audio")).cfg.order)
        for r in ardm:  # a coarse-to-fine model takes one call per group at least
            assert 1 <= r["calls"] <= max(r["budget_calls"], floor) * r["stage_segments"], r
            assert r["stored_as"] == "ardm", r
            assert r["bits"] >= r["model_bits"] - 64, r  # no shorter than the ideal code length (ANS slack)

    def test_covers_16_and_24_bit_mono_and_stereo(self, quick):
        subset = json.loads((quick / "results.json").read_text())["subset"]
        assert {i["depth"] for i in subset} >= {16, 24}
        assert {i["channels"] for i in subset} >= {1, 2}
        assert any(i["rate"] == 16000 and i["channels"] == 1 for i in subset)

    def test_records_environment(self, quick):
        env = json.loads((quick / "results.json").read_text())["environment"]
        for key in ("date", "git_commit", "cpu", "torch_threads", "model_id", "model_sha256"):
            assert env[key] not in (None, ""), key
        assert len(env["model_sha256"]) == 64
        for package in ("torch", "constriction", "soundfile", "libsndfile", "flac-8", "wavpack-hh"):
            assert env["versions"][package], package

    def test_restore_rebuilds_the_cache_from_results_json(self, quick, tmp_path):
        bench = _load_module()
        res = json.loads((quick / "results.json").read_text())
        entries = bench.restorable(res, tmp_path, load_model(res["environment"]["model_id"]))
        assert len(entries) == sum(r["method"] == "ardmzip" for r in res["items"]) > 0
        assert bench.run.restore(entries) == len(entries)
        for path, _ in entries:  # the same files, paths and contents, as the run's own cache
            mine = quick / "cache" / path.relative_to(tmp_path)
            assert json.loads(path.read_text()) == json.loads(mine.read_text())
        stale = {**res, "items": [{**r, "format_version": 1} for r in res["items"]]}
        assert bench.restorable(stale, tmp_path, load_model(res["environment"]["model_id"])) == []

    def test_markdown(self, quick):
        md = (quick / "results.md").read_text()
        for text in ("FLAC (soundfile)", "Seconds per second of 16 kHz mono audio", "Schedule check",
                     "**all speech**", "**all music**"):
            assert text in md, text
        assert "FAILURES" not in md


def _wav(path: Path, samples: np.ndarray, rate: int) -> dict:
    """Write a WAV and its manifest.json entry (as ardmzip.data writes them)."""
    import hashlib
    data = audio.write_audio(audio.audio_from_array(samples, rate))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    s = samples.reshape(len(samples), -1)
    return {"format": "WAV", "subtype": {1: "PCM_U8", 2: "PCM_16", 4: "PCM_24"}[s.dtype.itemsize], "rate": rate,
            "bits": {1: 8, 2: 16, 4: 24}[s.dtype.itemsize], "channels": s.shape[1], "frames": len(s),
            "seconds": round(len(s) / rate, 3), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory) -> Path:
    """A small evaluation folder: the 16 kHz codec2 clip, short 8 kHz speech, long music, 24-bit stereo hits."""
    root, rng, manifest = tmp_path_factory.mktemp("audio_eval"), np.random.default_rng(0), []
    clips = [("codec2/wia_16kHz.wav", "speech", rng.integers(-900, 900, (1600,)).astype(np.int16), 16000),
             *((f"codec2/s{i}.wav", "speech", rng.integers(-900, 900, (3000 + 500 * i,)).astype(np.int16), 8000)
               for i in range(4)),
             ("moh/long.wav", "music", rng.integers(-99, 99, (50_000,)).astype(np.int16), 8000),
             *((f"hydrogen/hit{i}.wav", "music", rng.integers(-5000, 5000, (700, 2)).astype(np.int32), 48000)
               for i in range(3))]
    for name, kind, samples, rate in clips:
        manifest.append({"name": name, "set": name.split("/")[0], "kind": kind, **_wav(root / name, samples, rate)})
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


class TestSubset:
    def test_deterministic_capped_and_keeps_the_16khz_clip(self, eval_dir):
        bench = _load_module()
        items = bench.eval_items(eval_dir, ["codec2", "hydrogen", "moh"], 6000, 2000, seed=1)
        again = bench.eval_items(eval_dir, ["codec2", "hydrogen", "moh"], 6000, 2000, seed=1)
        assert [(i.name, i.digest) for i in items] == [(i.name, i.digest) for i in again]
        assert items[0].clip == "codec2/wia_16kHz.wav" and items[0].frames == 1600  # whole, first
        for ds in ("codec2", "hydrogen", "moh"):
            mine = [i for i in items if i.dataset == ds]
            assert mine and sum(i.dims for i in mine) <= 6000 and all(i.dims <= 2000 for i in mine[1:]), ds
        long = next(i for i in items if i.dataset == "moh")
        whole = audio.read_audio((eval_dir / "moh/long.wav").read_bytes()).samples
        assert long.frames == 2000 and np.array_equal(long.samples, whole[long.start:long.start + 2000])
        assert {i.depth for i in items} == {16, 24} and {i.channels for i in items} == {1, 2}

    def test_seed_changes_the_excerpts(self, eval_dir):
        bench = _load_module()
        a = bench.eval_items(eval_dir, ["moh"], 6000, 2000, seed=1)
        b = bench.eval_items(eval_dir, ["moh"], 6000, 2000, seed=2)
        assert a[0].start != b[0].start

    def test_roundtrip_all(self, eval_dir, tmp_path):
        _need_audio_model()
        proc = _run(tmp_path, "--roundtrip-all", "--eval-dir", str(eval_dir), "--sets", "codec2,hydrogen",
                    "--budgets", "2")
        assert proc.returncode == 0, proc.stderr[-4000:]
        res = json.loads((tmp_path / "roundtrip.json").read_text())
        assert len(res["items"]) == 8 and all(r["exact"] for r in res["items"])
        assert {(s["dataset"], s["items"], s["failed"]) for s in res["summary"] if s["group"] == "set"} == {
            ("codec2", 5, 0), ("hydrogen", 3, 0)}
        assert "| codec2 | 5 of 5 | 5/5 |" in (tmp_path / "roundtrip.md").read_text()
        # shards split the clips between processes; the cache brings them together
        shards = [_run(tmp_path / f"s{k}", "--roundtrip-all", "--eval-dir", str(eval_dir), "--sets", "codec2",
                       "--budgets", "2", "--shard", f"{k}/2", cache=tmp_path / "shared") for k in (0, 1)]
        assert all(p.returncode == 0 for p in shards)
        done = [json.loads((tmp_path / f"s{k}" / "roundtrip.json").read_text())["items"] for k in (0, 1)]
        assert sorted(len(d) for d in done) == [2, 3] and not {r["item"] for r in done[0]} & {r["item"] for r in done[1]}
        proc = _run(tmp_path / "all", "--roundtrip-all", "--eval-dir", str(eval_dir), "--sets", "codec2,moh",
                    "--budgets", "2", "--cached-only", cache=tmp_path / "shared")
        assert len(json.loads((tmp_path / "all" / "roundtrip.json").read_text())["items"]) == 5
        assert "Not measured yet: moh (0 of 1)." in (tmp_path / "all" / "roundtrip.md").read_text()
        # a shard's roundtrip.json restores its clips into a new cache: they are not measured again
        assert "| codec2 | 3 of 5 | 3/3 |" in (tmp_path / "s0" / "roundtrip.md").read_text()
        proc = _run(tmp_path / "restored", "--roundtrip-all", "--eval-dir", str(eval_dir), "--sets", "codec2",
                    "--budgets", "2", "--cached-only", "--restore", str(tmp_path / "s0" / "roundtrip.json"),
                    cache=tmp_path / "fresh")
        assert proc.returncode == 0 and "restored 3 results" in proc.stderr, proc.stderr[-4000:]
        again = json.loads((tmp_path / "restored" / "roundtrip.json").read_text())["items"]
        assert [(r["item"], r["bytes"]) for r in again] == [(r["item"], r["bytes"]) for r in done[0]]

    def test_shard_must_be_k_of_n(self):
        bench = _load_module()
        assert bench.shard("1/3") == (1, 3)
        for bad in ("3/3", "a/2", "1", "-1/2"):
            with pytest.raises(SystemExit):
                bench.shard(bad)
