"""Portability check (issue 4): files written under one CPU setting decode under another, and what
exactness costs against a float model, all measured in one run.

    python benchmarks/portability.py --model img2 --float-model img1 --out benchmarks/results
    python benchmarks/portability.py --quick          # 3 crops (+ the audio quick subset), a smoke test
    python benchmarks/portability.py --sets audio --out /tmp/port-audio    # the clips only

Settings: "slow" = ONEDNN_MAX_CPU_ISA=SSE41, ATEN_CPU_CAPABILITY=default (the oldest kernels), one thread;
"default" = the machine's best kernels, one thread; "two" = best kernels, two threads. For every evaluation
crop (at the model's default budget) and every whole photo (at budget 10), the int-exact model compresses
in one process and decompresses in another: slow -> default, and two -> slow; every decoded array is
compared with the original. The float model codes the same items default -> default (the only way a float
file decodes: the same setting on both sides), so that bpd and decode seconds of the two arithmetics sit
side by side (exact slow -> default decodes with the same kernels and threads as the float run).

Sets (--sets): crops32, crops64 (benchmarks/eval_crops.json), whole (the evaluation photos, budget 10) and
audio: the audio benchmark's evaluation subset (benchmarks/audio.py chooses it: 17 items, 233 k samples,
8-48 kHz, 8/16/24-bit, mono and stereo; with --quick its quick subset, synthesised clips where the
evaluation data is missing; --audio-clips FILE...: those files, whole), coded by the default audio model
(--audio-model) through api.compress_audio(fallback=False) at budget 10 (like the whole photos: every
call runs the net over a whole segment), slow -> default and two -> slow, with the same comparison (samples,
shape and dtype). There is no float audio model (every audio model is int-exact), so audio has no float run.
The default run includes audio when the release has an audio model, and says so when it skips it.

Run time of the audio part (--sets audio: 17 items, 233 k samples), model aud-dev (a smoke model; the time
per call does not depend on training), on the 2-core Xeon VM this was written on with BOTH cores busy (a
training and a benchmark), measured: slow -> default 110-125 s to encode (the SSE4.1 kernels) and 31-33 s
to decode; two -> slow 38 s to encode and 114-130 s to decode; ~2 s of start-up per child process; 5 min 40 s
in all. That is with OMP_WAIT_POLICY=PASSIVE in the environment: without it the two threads spin-wait for
each other on the busy cores and the two-thread encode took 286 s (9 min 15 s in all); the waiting policy
changes no result, only the time. --quick --sets audio (6 items, 24 k samples): 56 s.

Writes portability.json and portability.md to --out: per item and run the bytes, bpd (images: bits per
sub-pixel) or bits_per_sample (audio: 8 x bytes / (frames x channels)), encode and decode seconds, and
whether the decoded array equals the original; the summary per (run, set); the wall seconds of each run.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SETTINGS = {"slow": ({"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"}, 1),  # oldest kernels
            "default": ({}, 1), "two": ({}, 2)}                                              # best kernels
SETS = ("crops32", "crops64", "whole", "audio")
LARGE_BUDGET = 10  # whole photos and clips: every call runs the net over the whole item (or segment)


def _bench_module(name: str):
    """benchmarks/NAME.py (a script, not part of the package) as a module."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[f"bench_{name}"] = mod  # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


def _encode(a: np.ndarray, job: dict, model: str) -> bytes:
    """One item's .ardm file: an image's pixels, or a clip's (frames, channels) samples when job has a rate."""
    from ardmzip import api
    from ardmzip.audio import audio_from_array
    if "rate" in job:
        clip = audio_from_array(a, job["rate"])  # the dtype gives the bits: int8 8, int16 16, int32 24
        return api.compress_audio(clip, budget=job["budget"], model=model, fallback=False)[0]
    return api.compress(a, model=model, budget=job["budget"], fallback=False)


def _decoded_problem(a: np.ndarray, blob: bytes) -> str | None:
    """None when the file decodes to exactly `a` (values, shape and dtype), else what went wrong."""
    from ardmzip import api
    try:
        back = api.decompress_array(blob)
    except Exception as e:  # recorded, never hidden
        return f"{type(e).__name__}: {e}"
    if back.dtype != a.dtype or back.shape != a.shape or not np.array_equal(back, a):
        return f"decoded {back.dtype} {back.shape} array differs from the original {a.dtype} {a.shape}"
    return None


def worker(mode: str, model: str, threads: int, folder: Path) -> None:
    """In a child process: compress every job's NAME.npy to NAME.MODEL.ardm, or decompress and compare;
    timings to MODE.MODEL.json. jobs.json: {name: {"budget": calls, "rate": Hz (clips only)}}."""
    import torch
    torch.set_num_threads(threads)
    jobs = json.loads((folder / "jobs.json").read_text())
    out = {}
    for name, job in jobs.items():
        a = np.load(folder / f"{name}.npy")
        t = time.perf_counter()
        if mode == "compress":
            blob = _encode(a, job, model)
            (folder / f"{name}.{model}.ardm").write_bytes(blob)
            out[name] = {"seconds": time.perf_counter() - t, "bytes": len(blob)}
        else:
            err = _decoded_problem(a, (folder / f"{name}.{model}.ardm").read_bytes())
            out[name] = {"seconds": time.perf_counter() - t, "equal": err is None, "error": err}
        print(f"  {mode} {name}: {out[name]}", flush=True)
    (folder / f"{mode}.{model}.json").write_text(json.dumps(out))


def _child(mode: str, model: str, setting: str, folder: Path) -> dict:
    env_extra, threads = SETTINGS[setting]
    env = {**os.environ, **env_extra, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, __file__, "--worker", mode, "--model", model, "--threads", str(threads),
                    "--folder", str(folder)], env=env, check=True)
    return json.loads((folder / f"{mode}.{model}.json").read_text())


def chosen_sets(a: argparse.Namespace) -> list[str]:
    """--sets, else every set (--quick: crops32 and audio; --no-whole: without whole), in SETS order."""
    if a.sets:
        sets = [s.strip() for s in a.sets.split(",") if s.strip()]
        if unknown := [s for s in sets if s not in SETS]:
            raise SystemExit(f"--sets: unknown {unknown}; choose from {','.join(SETS)}")
    else:
        sets = ["crops32", "audio"] if a.quick else [s for s in SETS if not (a.no_whole and s == "whole")]
    return [s for s in SETS if s in sets]


def audio_model_id(a: argparse.Namespace, models: dict) -> str | None:
    """The int-exact audio model to run; None (with a note) when the release has none and --sets did not
    ask for audio by name."""
    from ardmzip.errors import ModelError
    from ardmzip.registry import default_model_id
    try:
        model = a.audio_model or default_model_id("audio")
    except ModelError as e:
        if a.sets:
            raise SystemExit(f"--sets audio: {e}; pass --audio-model ID or leave audio out of --sets") from None
        print(f"note: audio skipped ({e})", flush=True)
        return None
    entry = models.get(model)
    if entry is None or entry.get("media") != "audio" or entry.get("arithmetic") != "int-exact":
        raise SystemExit(f"--audio-model {model}: not an int-exact audio model of this release "
                         f"(audio models: {', '.join(k for k, e in models.items() if e.get('media') == 'audio')})")
    return model


def audio_items(a: argparse.Namespace) -> list:
    """benchmarks/audio.py's items (its build_items: the evaluation subset, --quick's subset or synthesised
    clips, or --audio-clips whole): audio.Item, samples (frames, channels) int8 / int16 / int32."""
    bench_audio = _bench_module("audio")
    if not (a.quick or a.audio_clips or (bench_audio.EVAL_DIR / "manifest.json").exists()):
        raise SystemExit(f"{bench_audio.EVAL_DIR / 'manifest.json'} is missing: build the evaluation clips "
                         "(`python -m ardmzip.data audio`, DATA.md), pass --audio-clips FILE..., --quick "
                         "(synthesised clips), or leave audio out of --sets")
    argv = (["--quick"] if a.quick else []) + (["--clips", *map(str, a.audio_clips)] if a.audio_clips else [])
    return bench_audio.build_items(bench_audio.parse_args(argv))


def _per_dim(dataset: str, nbytes: int, dims: int) -> dict:
    """Bits per sub-pixel (images: "bpd") or per sample, frames x channels (audio: "bits_per_sample")."""
    return {"bits_per_sample" if dataset == "audio" else "bpd": 8 * nbytes / dims}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="int-exact image model (default: the release's default)")
    ap.add_argument("--float-model", default=None, help="float model to compare with (default: the first one)")
    ap.add_argument("--audio-model", default=None, help="audio model (default: the release's default audio model)")
    ap.add_argument("--quick", action="store_true", help="3 crops and the audio benchmark's quick subset")
    ap.add_argument("--no-whole", action="store_true", help="no whole photos")
    ap.add_argument("--float-crops-only", action="store_true",
                    help="run the float model on the crops only (the whole photos take it ~15 min more)")
    ap.add_argument("--sets", default=None,
                    help=f"comma-separated subset of {','.join(SETS)} (default: all, or as --quick/--no-whole)")
    ap.add_argument("--audio-clips", type=Path, nargs="+", default=None,
                    help="audio files to code whole instead of the evaluation subset")
    ap.add_argument("--runs", default="slow-default,two-slow,float",
                    help="which of the runs: slow-default, two-slow (the exact models), float (the float model)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker, a.model, a.threads, a.folder)

    sys.path.insert(0, str(REPO))
    from ardmzip.registry import default_model_id, list_models, load_model
    models = list_models()
    sets = chosen_sets(a)
    audio_id = audio_model_id(a, models) if "audio" in sets else None
    image_sets = tuple(s for s in sets if s != "audio")
    exact_id = float_id = None
    if image_sets:
        exact_id = a.model or default_model_id("image")
        float_id = a.float_model or next(k for k, e in models.items() if e.get("arithmetic", "float32") == "float32")
        if models[exact_id].get("arithmetic") != "int-exact":
            raise SystemExit(f"{exact_id} is not an int-exact model")
    run = _bench_module("run")
    wanted = set(a.runs.split(","))
    rows, jobs_exact, jobs_audio = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for it in run.build_items(image_sets, a.quick) if image_sets else []:
            name = f"{it.dataset}-{it.name}"
            np.save(folder / f"{name}.npy", it.array)
            budget = LARGE_BUDGET if it.dataset == "whole" else load_model(exact_id).default_budget
            jobs_exact[name] = {"budget": budget}
            rows[name] = {"dataset": it.dataset, "item": it.name, "dims": it.dims, "budget": budget}
        for k, it in enumerate(audio_items(a) if audio_id else []):
            name = f"audio-{k:02d}"  # the clip names hold "/" and "[start:end]"
            np.save(folder / f"{name}.npy", it.samples)  # keeps the dtype: the bits per sample
            jobs_audio[name] = {"budget": LARGE_BUDGET, "rate": it.rate}
            rows[name] = {**it.describe(), "dataset": "audio", "clip_set": it.dataset, "budget": LARGE_BUDGET}
        float_jobs = {} if not image_sets else {
            k: {"budget": LARGE_BUDGET if k.startswith("whole") else load_model(float_id).default_budget}
            for k in jobs_exact if not (a.float_crops_only and k.startswith("whole"))}
        results, seconds = {}, {}
        for key, model, (enc, dec), jobs in (("slow-default", exact_id, ("slow", "default"), jobs_exact),
                                             ("two-slow", exact_id, ("two", "slow"), jobs_exact),
                                             ("slow-default", audio_id, ("slow", "default"), jobs_audio),
                                             ("two-slow", audio_id, ("two", "slow"), jobs_audio),
                                             ("float", float_id, ("default", "default"), float_jobs)):
            if key not in wanted or not jobs:
                continue
            (folder / "jobs.json").write_text(json.dumps(jobs))
            label = f"{model}: {enc} -> {dec}"
            print(label, flush=True)
            t = time.perf_counter()
            results[label] = (_child("compress", model, enc, folder), _child("decompress", model, dec, folder))
            seconds[label] = round(time.perf_counter() - t, 1)
            print(f"{label}: {seconds[label]} s (both processes, start-up included)", flush=True)
        out = []
        for name, r in rows.items():
            for label, (c, d) in results.items():
                if name not in c:
                    continue
                out.append({**r, "run": label, "bytes": c[name]["bytes"],
                            **_per_dim(r["dataset"], c[name]["bytes"], r["dims"]),
                            "encode_s": c[name]["seconds"], "decode_s": d[name]["seconds"],
                            "equal": d[name]["equal"], "error": d[name]["error"]})
    failures = [o for o in out if not o["equal"]]
    summary = []
    for label in results:
        for ds in dict.fromkeys(o["dataset"] for o in out):
            sel = [o for o in out if o["run"] == label and o["dataset"] == ds]
            if not sel:
                continue
            summary.append({"run": label, "dataset": ds, "items": len(sel), "equal": sum(o["equal"] for o in sel),
                            **_per_dim(ds, sum(o["bytes"] for o in sel), sum(o["dims"] for o in sel)),
                            "encode_s": sum(o["encode_s"] for o in sel),
                            "decode_s": sum(o["decode_s"] for o in sel)})
    env = run.environment(load_model(exact_id or audio_id), a.quick)
    if audio_id:
        env.update(audio_model_id=audio_id, audio_model_sha256=load_model(audio_id).sha256)
    env["run_seconds"] = seconds
    compared = f"exact model {exact_id} vs float model {float_id}" if exact_id else "no image sets"
    md = [f"Portability run: {compared}" + (f"; audio model {audio_id}" if audio_id else "") +
          f"; {env.get('cpu')}; commit {env.get('git_commit')}.", "",
          "| run (compress -> decompress setting) | set | items | decoded equal | bpd (audio: bits per sample) "
          "| encode s | decode s |",
          "|---|---|---|---|---|---|---|"]
    md += [f"| {s['run']} | {s['dataset']} | {s['items']} | {s['equal']}/{s['items']} | "
           f"{s.get('bpd', s.get('bits_per_sample')):.3f} | {s['encode_s']:.1f} | {s['decode_s']:.1f} |"
           for s in summary]
    if jobs_audio:
        samples = sum(r["dims"] for r in rows.values() if r["dataset"] == "audio")
        md += ["", f"Audio: {len(jobs_audio)} clips or excerpts, {samples} samples, coded by {audio_id} at budget "
               f"{LARGE_BUDGET}; bits per sample = 8 x bytes / (frames x channels). No float run: there is no "
               "float audio model (every audio model is int-exact)."]
    md += ["", "Wall seconds per run (both processes, start-up included): " +
           ", ".join(f"{label} {s:.0f}" for label, s in seconds.items()) + "."]
    if failures:
        md += ["", "Failures:"] + [f"- {f['run']} {f['item']}: {f['error'] or 'decoded array differs'}" for f in failures]
    text = "\n".join(md) + "\n"
    print(text)
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "portability.json").write_text(json.dumps({"environment": env, "rows": out, "summary": summary},
                                                           indent=1))
        (a.out / "portability.md").write_text(text)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
