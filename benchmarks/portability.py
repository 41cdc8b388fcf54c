"""Portability check (issue 4): files written under one CPU setting decode under another, and what
exactness costs against a float model, all measured in one run.

    python benchmarks/portability.py --model img2 --float-model img1 --out benchmarks/results
    python benchmarks/portability.py --quick          # 3 crops, for a smoke test

Settings: "slow" = ONEDNN_MAX_CPU_ISA=SSE41, ATEN_CPU_CAPABILITY=default (the oldest kernels), one thread;
"default" = the machine's best kernels, one thread; "two" = best kernels, two threads. For every evaluation
crop (at the model's default budget) and every whole photo (at budget 10), the int-exact model compresses
in one process and decompresses in another: slow -> default, and two -> slow; every decoded array is
compared with the original. The float model codes the same items default -> default (the only way a float
file decodes: the same setting on both sides), so that bpd and decode seconds of the two arithmetics sit
side by side (exact slow -> default decodes with the same kernels and threads as the float run).

Writes portability.json and portability.md to --out.
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


def _run_module():
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = mod
    spec.loader.exec_module(mod)
    return mod


def worker(mode: str, model: str, threads: int, folder: Path) -> None:
    """In a child process: compress every items/*.npy to *.ardm, or decompress and compare; timings to JSON."""
    import torch

    from ardmzip import api
    torch.set_num_threads(threads)
    jobs = json.loads((folder / "jobs.json").read_text())
    out = {}
    for name, budget in jobs.items():
        a = np.load(folder / f"{name}.npy")
        t = time.perf_counter()
        if mode == "compress":
            blob = api.compress(a, model=model, budget=budget, fallback=False)
            (folder / f"{name}.{model}.ardm").write_bytes(blob)
            out[name] = {"seconds": time.perf_counter() - t, "bytes": len(blob)}
        else:
            try:
                same = bool(np.array_equal(api.decompress_array((folder / f"{name}.{model}.ardm").read_bytes()), a))
                err = None
            except Exception as e:  # recorded, never hidden
                same, err = False, f"{type(e).__name__}: {e}"
            out[name] = {"seconds": time.perf_counter() - t, "equal": same, "error": err}
        print(f"  {mode} {name}: {out[name]}", flush=True)
    (folder / f"{mode}.{model}.json").write_text(json.dumps(out))


def _child(mode: str, model: str, setting: str, folder: Path) -> dict:
    env_extra, threads = SETTINGS[setting]
    env = {**os.environ, **env_extra, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, __file__, "--worker", mode, "--model", model, "--threads", str(threads),
                    "--folder", str(folder)], env=env, check=True)
    return json.loads((folder / f"{mode}.{model}.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="int-exact model (default: the release's default)")
    ap.add_argument("--float-model", default=None, help="float model to compare with (default: the first one)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-whole", action="store_true", help="crops only")
    ap.add_argument("--float-crops-only", action="store_true",
                    help="run the float model on the crops only (the whole photos take it ~15 min more)")
    ap.add_argument("--sets", default=None,
                    help="comma-separated subset of crops32,crops64,whole (default: all, or as --quick/--no-whole)")
    ap.add_argument("--runs", default="slow-default,two-slow,float",
                    help="which of the runs: slow-default, two-slow (the exact model), float (the float model)")
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
    exact_id = a.model or default_model_id("image")
    float_id = a.float_model or next(k for k, e in models.items() if e.get("arithmetic", "float32") == "float32")
    if models[exact_id].get("arithmetic") != "int-exact":
        raise SystemExit(f"{exact_id} is not an int-exact model")
    run = _run_module()
    sets = (("crops32",) if a.quick else ("crops32", "crops64") + (() if a.no_whole else ("whole",)))
    items = run.build_items(tuple(a.sets.split(",")) if a.sets else sets, a.quick)
    wanted = set(a.runs.split(","))
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        jobs_exact, jobs_float = {}, {}
        for it in items:
            name = f"{it.dataset}-{it.name}"
            np.save(folder / f"{name}.npy", it.array)
            jobs_exact[name] = 10 if it.dataset == "whole" else load_model(exact_id).default_budget
            rows[name] = {"dataset": it.dataset, "item": it.name, "dims": it.dims, "budget": jobs_exact[name]}
        results = {}
        float_budgets = {k: (10 if k.startswith("whole") else load_model(float_id).default_budget) for k in jobs_exact
                         if not (a.float_crops_only and k.startswith("whole"))}
        for key, model, (enc, dec), budgets in (("slow-default", exact_id, ("slow", "default"), jobs_exact),
                                                ("two-slow", exact_id, ("two", "slow"), jobs_exact),
                                                ("float", float_id, ("default", "default"), float_budgets)):
            if key not in wanted:
                continue
            (folder / "jobs.json").write_text(json.dumps(budgets))
            label = f"{model}: {enc} -> {dec}"
            print(label, flush=True)
            results[label] = (_child("compress", model, enc, folder), _child("decompress", model, dec, folder))
        out = []
        for name, r in rows.items():
            for label, (c, d) in results.items():
                if name not in c:
                    continue
                out.append({**r, "run": label, "bytes": c[name]["bytes"], "bpd": 8 * c[name]["bytes"] / r["dims"],
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
                            "bpd": 8 * sum(o["bytes"] for o in sel) / sum(o["dims"] for o in sel),
                            "encode_s": sum(o["encode_s"] for o in sel), "decode_s": sum(o["decode_s"] for o in sel)})
    env = run.environment(load_model(exact_id), a.quick)
    md = [f"Portability run: exact model {exact_id} vs float model {float_id}; {env.get('cpu')}; "
          f"commit {env.get('git_commit')}.", "",
          "| run (compress -> decompress setting) | set | items | decoded equal | bpd | encode s | decode s |",
          "|---|---|---|---|---|---|---|"]
    md += [f"| {s['run']} | {s['dataset']} | {s['items']} | {s['equal']}/{s['items']} | {s['bpd']:.3f} | "
           f"{s['encode_s']:.1f} | {s['decode_s']:.1f} |" for s in summary]
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
