"""Turn a training checkpoint into a shipped model: weights in models/, an entry in the manifest.

    python -m ardmzip.export --run img1 --id ardm-img-v1 [--budget 50]
    python -m ardmzip.export --audio --run aud1 --id aud1 [--budget 20]     # an audio_train run
    python -m ardmzip.export --files img2,img3 --budgets 10,20,50,100        # compare image models

Measures on the validation data (never the evaluation set): the per-step loss curve L on the grid
of revealed fractions (the schedule is built from it; audio: one curve per stage), the bound in bpd
(audio: bits per sample), and what the schedule predicts at several budgets; the default budget is the
smallest within 2% of the prediction at 500 network calls. Refuses to overwrite a released id.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from .ardm import LOSS_GRID, SPLIT_LEVELS, curve_grid, group_parts, min_budget, training_loss
from .codec import make_plan, planning_model, predicted_bits
from .data import CACHE, load_images
from .exact import QuantNet, export_int
from .nets import ARDMNet, NetConfig
from .registry import curve_to_ints
from .train import fixed_crops

REPO_MODELS = Path(__file__).resolve().parent.parent / "models"
BUDGETS = (1, 2, 5, 10, 20, 25, 50, 100, 200, 500)  # predicted at export; the last is the reference
LOSS_PER_BIN = 8  # validation crops per bin of the loss curve's grid (image models)


def candidate_budgets(order: str, stages: int = 1) -> list[int]:
    """BUDGETS as a model of this order family runs them: a coarse-to-fine order takes one call per group
    at least (per stage of a depth-upscaling model), so smaller budgets are that minimum."""
    return sorted({max(b, stages * min_budget(order)) for b in BUDGETS})


def choose_budget(predicted: dict[int, float]) -> int:
    """The default budget: the fewest network calls whose prediction is within 2% of the largest budget's."""
    return min(b for b, v in predicted.items() if v <= 1.02 * predicted[BUDGETS[-1]])


def _read_manifest(models: Path, model_id: str) -> dict:
    path = models / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {"models": {}, "defaults": {}}
    if model_id in manifest["models"]:
        raise SystemExit(f"model id {model_id} is already released: a new model needs a new id")
    return manifest


def _ship(models: Path, model_id: str, payload: dict, log: Path) -> tuple[str, str]:
    """Write models/ID.pt (atomically) and copy the run's log to models/logs/ID.jsonl; (file, SHA-256)."""
    file = f"{model_id}.pt"
    tmp = models / (file + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(models / file)
    (models / "logs").mkdir(exist_ok=True)
    shutil.copy(log, models / "logs" / f"{model_id}.jsonl")
    return file, hashlib.sha256((models / file).read_bytes()).hexdigest()


def _add_entry(models: Path, manifest: dict, model_id: str, entry: dict) -> None:
    manifest["models"][model_id] = entry
    manifest.setdefault("defaults", {}).setdefault(entry["media"], model_id)
    (models / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    size = (models / entry["file"]).stat().st_size
    print(f"wrote {models / entry['file']} ({size / 1e6:.2f} MB, sha256 {entry['sha256'][:16]}…)")


def export_audio(run: str, model_id: str, *, budget: int | None = None, threads: int = 2,
                 models: Path = REPO_MODELS) -> dict:
    """Ship an audio_train run as model `model_id`: models/ID.pt holding {"exact": export_int(...)} (a
    --qat run's quantised net; a float run calibrated on its validation segments, without fine-tuning),
    and a manifest entry (media "audio") with the per-stage loss curves measured on the validation
    segments, the default budget chosen from them, and the training log. Returns the entry."""
    from . import audio_train  # its CACHE is read at call time (tests point it elsewhere)
    from .audio_codec import SEGMENT, schedule_cost

    manifest = _read_manifest(models, model_id)
    run_dir = audio_train.CACHE / "runs" / run
    ck = torch.load(run_dir / "ckpt.pt")
    tc = audio_train.TrainConfig(**{**ck["train_config"], "threads": threads})
    measured = audio_train.measure_curves(tc)  # writes the run's curves.json, which run_model reads
    model = audio_train.run_model(run, exact=True)
    curves = measured["loss_curves"]
    d = SEGMENT  # a full mono segment: what most of a clip is coded as
    predicted = {b: schedule_cost(model, d, 1, 16, b)[1] / d for b in candidate_budgets(model.cfg.order)}
    budget = budget or choose_budget(predicted)
    bound = measured["bound_bits_per_sample"]
    print(f"validation bound {bound:.4f} bits/sample (stages: "
          + ", ".join(f"{v:.4f}" for v in measured["bound_bits_stage"]) + "); predicted bits per sample on "
          f"{d} frames by budget: " + ", ".join(f"{b}: {v:.3f}" for b, v in predicted.items())
          + f"; default budget {budget}")
    file, sha = _ship(models, model_id, {"exact": model.exact.blob, "net_config": model.cfg.to_dict()},
                      run_dir / "log.jsonl")
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    entry = {
        "file": file, "sha256": sha, "media": "audio",
        "kind": ("oa-ardm (16-bit samples as one stage over whole values, each coded as its high byte and "
                 "then its low byte given it, " if model.cfg.joint else
                 "depth-upscaling oa-ardm (16-bit samples as 2 stages of 256 values, ")
                + ORDER_NAMES[model.cfg.order] + ")"
                + (", the head correcting an exact interpolation prior" if model.cfg.prior else "")
                + (" whose mean and scale come from interpolation filters and block scales fitted to each "
                   "segment and stored with it (interp.py)" if model.cfg.interp else "")
                + (f", filters of up to {model.cfg.max_taps} taps per side" if model.cfg.max_taps != 16 else "")
                + (", symmetric filters (one coefficient per pair of taps)" if model.cfg.symmetric else ""),
        "head": "discretised logistic mixture over 16-bit values" + ("" if model.cfg.joint else ", per stage"),
        "arithmetic": "int-exact",
        "net_config": model.cfg.to_dict(),
        "parameters": sum(p.numel() for p in model.exact.skeleton.parameters()),
        "default_budget": budget,
        "loss_curve_units": f"millibits per variable at revealed fraction (g + 0.5) / {LOSS_GRID}, per stage",
        "loss_curves": curves,
        "trained_on": f"ardmzip.data audio: train split, kind {tc.kind}, random segments of {tc.segment} "
                      "frames, random polarity" + (", quantisation-aware" if "scales" in ck else ""),
        "training": {"segments_seen": log[-1]["segments"], "samples_seen": log[-1]["samples"],
                     "cpu_hours": round(log[-1]["hours"], 3), "steps": log[-1]["step"],
                     "threads": ck["train_config"]["threads"], "qat": "scales" in ck},
        **({"derived": {"from": log[-1]["from"], "net_config_changes": log[-1]["net_config_changes"],
                        "note": "the weights of `from` unchanged (audio_train --derive); training: its log's last phase"}}
           if log[-1].get("phase") == "derived" else {}),
        "validation": {"bound_bits_per_sample": round(bound, 4),
                       "bound_bits_stage": [round(v, 4) for v in measured["bound_bits_stage"]],
                       "segments": measured["val_segments"], "segment_frames": measured["segment"],
                       "predicted_bits_per_sample": {str(b): round(v, 4) for b, v in predicted.items()}},
    }
    _add_entry(models, manifest, model_id, entry)
    return entry


def export_image(run: str, model_id: str, *, budget: int | None = None, crops: str = "32x32",
                 models: Path = REPO_MODELS) -> dict:
    """Ship a train run as image model `model_id`: models/ID.pt (a --qat run: {"exact": export_int(...)},
    else float16 weights), and a manifest entry with the loss curve (a depth-upscaling run: one per stage,
    and it must be quantisation-aware) measured on the validation crops, the default budget chosen on
    validation data, and the training log. Returns the entry."""
    manifest = _read_manifest(models, model_id)
    run_dir = CACHE / "runs" / run
    ck = torch.load(run_dir / "ckpt.pt")
    cfg = NetConfig.from_dict(ck["net_config"])
    exact = "scales" in ck  # a quantisation-aware run: ship the integer model
    if cfg.stages > 1 and not exact:
        raise SystemExit(f"run {run} is a depth-upscaling net, which codes with integer arithmetic only: "
                         "continue it with --qat first")
    net = ARDMNet(cfg)
    if exact:
        net.load_state_dict(ck["ema"])
        net = QuantNet(net.eval(), ck["scales"])
        payload = {"exact": export_int(net), "net_config": cfg.to_dict()}
    else:
        # shipped weights are float16 (half the bytes in git forever); everything below measures them as shipped
        half = {k: v.half().contiguous() for k, v in ck["ema"].items()}
        net.load_state_dict({k: v.float() for k, v in half.items()})
        net.eval()
        payload = {"net": half, "net_config": cfg.to_dict()}

    val = fixed_crops(load_images(CACHE / "data" / "images_val.npz"), 512, 32)
    stages = [None] if cfg.stages == 1 else list(range(1, cfg.stages + 1))
    measured = [loss_curve(net, val, per_bin=LOSS_PER_BIN, stage=s) for s in stages]   # bits per variable
    curves = [curve_to_ints(c) for c in measured]
    d64 = 3 * 64 * 64
    shaped = planning_model(cfg, curves)
    predicted = {b: predicted_bits(shaped, make_plan(shaped, (64, 64, 3), b, 0)) / d64
                 for b in candidate_budgets(cfg.order, cfg.stages)}
    bound = sum(float(np.mean(c)) for c in measured)
    budget = budget or choose_budget(predicted)
    print(f"validation bound {bound:.4f} bpd; predicted bpd on 64×64 by budget: "
          + ", ".join(f"{b}: {v:.3f}" for b, v in predicted.items()) + f"; default budget {budget}")

    file, sha = _ship(models, model_id, payload, run_dir / "log.jsonl")
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    # new coarse-to-fine models code group 0 with lattice.py (a depth-upscaling one codes all with the net)
    lattice = cfg.order.startswith("quincunx") and cfg.stages == 1
    values = "256 values" if cfg.stages == 1 else "8-bit subpixels as 2 stages of 16 values"
    entry = {
        "file": file, "sha256": sha, "media": "image",
        "kind": ("oa-ardm" if cfg.stages == 1 else "depth-upscaling oa-ardm") + f" ({ORDER_NAMES[cfg.order]}, {values}"
                + (f", the head correcting an exact neighbour prior (prior.py version {cfg.prior})" if cfg.prior else "")
                + (", group 0 coded without the net (lattice.py))" if lattice else ")"),
        "head": "discretised logistic mixture" + (", per stage" if cfg.stages > 1 else ""),
        "arithmetic": "int-exact" if exact else "float32",
        "net_config": cfg.to_dict(), "parameters": sum(p.numel() for p in net.parameters()),
        "default_budget": budget,
        **({"first_group": "lattice"} if lattice else {}),
        "loss_curve_units": f"millibits per variable at revealed fraction (g + 0.5) / {len(curves[0])}"
                            + (", per stage" if cfg.stages > 1 else ""),
        **({"loss_curve": curves[0]} if cfg.stages == 1 else {"loss_curves": curves}),
        "trained_on": "ardmzip.data images: train split (302 photos, 69.7 Mpx after 2x box downscale), "
                      f"random crops ({crops}), flips, 90-degree rotations, 15% grey"
                      + (f", {ck['train_config']['scale_fraction']:.0%} upscaled by 1-3x (bilinear, bicubic, lanczos)"
                         if ck["train_config"].get("scale_fraction") else ""),
        "training": {"images_seen": log[-1]["images"], "cpu_hours": round(log[-1]["hours"], 3),
                     "steps": log[-1]["step"], "threads": ck["train_config"]["threads"]},
        "validation": {"bound_bpd_32x32": round(bound, 4),
                       "predicted_bpd_64x64": {str(b): round(v, 4) for b, v in predicted.items()}},
    }
    _add_entry(models, manifest, model_id, entry)
    if budget is None and min_budget(cfg.order) > 1:
        # a coarse-to-fine order: the loss curve's predictions are far off (img6 on 64×64: 2.46 bpd predicted
        # at 200 calls, 3.14 measured), so its default comes from whole validation files instead
        fewest = cfg.stages * min_budget(cfg.order) - group_parts(cfg.order) * lattice  # the lattice's group 0 needs no call
        files = validation_files(model_id, sorted({fewest, cfg.stages * min_budget(cfg.order), *FILE_BUDGETS}))
        entry["default_budget"] = measured_budget(files)
        n, size = VALIDATION_FILES
        entry["validation"][f"files_bpd_{n}x{size}x{size}"] = {str(b): round(v, 4) for b, v in files.items()}
        print("validation files by budget: " + ", ".join(f"{b}: {v:.4f}" for b, v in files.items())
              + f"; default budget {entry['default_budget']}")
        _add_entry(models, manifest, model_id, entry)
    return entry


ORDER_NAMES = {"uniform": "uniform random order",
               "dyadic": "dyadic coarse-to-fine order of the frames, random within each of 7 groups",
               "quincunx": "quincunx coarse-to-fine order of the pixels, random within each of 7 groups",
               "quincunx-grb": "quincunx coarse-to-fine order of the pixels, each of its 7 groups split by "
                               "channel (G, R, B), random within each of the 21"}
ORDER_NAMES.update({
    family: f"dyadic coarse-to-fine order of the frames, random within each of 7 groups, or of {7 + n} with "
            + ("the finest level" if n == 1 else f"the {('two', 'three')[n - 2]} finest levels each")
            + " coded in two interleaved halves where the encoder finds it shorter (per segment)"
    for family, n in SPLIT_LEVELS.items() if n})


@torch.inference_mode()
def loss_curve(net: ARDMNet, crops: torch.Tensor, per_bin: int = 8, batch: int = 64, stage: int | None = None
               ) -> np.ndarray:
    """Mean loss per masked variable (bits) at the centre of each of the model's grid of fraction bins
    (ardm.curve_grid of its order family); stage: that stage's curve, for a depth-upscaling net."""
    _, c, h, w = crops.shape
    d = c * h * w
    grid = curve_grid(net.cfg.order)
    bins = np.repeat(np.arange(grid), per_bin)
    sums = np.zeros(grid)
    g = torch.Generator().manual_seed(0)
    for i in range(0, len(bins), batch):
        b = bins[i:i + batch]
        x = crops[(np.arange(i, i + len(b))) % len(crops)]
        t = torch.from_numpy(((2 * b + 1) * d) // (2 * grid))
        _, _, lt = training_loss(net, x, torch.zeros(len(b), dtype=torch.bool), generator=g, t=t,
                                 stage=None if stage is None else torch.full((len(b),), stage))
        np.add.at(sums, b, lt.numpy())
    return sums / per_bin / np.log(2)


VALIDATION_FILES = (12, 64)  # image models are compared on whole files of this many crops of this size
FILE_BUDGETS = (25, 50, 100)  # besides the order's minimum: budgets a structured order's default is chosen from


def measured_budget(bpd: dict[int, float]) -> int:
    """The default budget from measured validation files: the fewest calls within 2% of the smallest."""
    return min(b for b, v in bpd.items() if v <= 1.02 * min(bpd.values()))


def validation_files(model_id: str, budgets: list[int], n: int = VALIDATION_FILES[0],
                     size: int = VALIDATION_FILES[1], scaled: bool = False) -> dict[int, float]:
    """bpd of whole .ardm files (headers included, api.compress) of n fixed size×size crops of the
    validation photos, per budget: what a default budget and a new default model are chosen on.
    scaled: the crops upscaled by random factors (train.SCALE_RANGE), standing in for photos at their
    native resolution, which are smoother per pixel than the 2×-downscaled validation photos."""
    from . import api
    crops = fixed_crops(load_images(CACHE / "data" / "images_val.npz"), n, size, scaled=scaled)
    arrays = [c.permute(1, 2, 0).numpy().astype(np.uint8) for c in crops]
    return {b: 8 * sum(len(api.compress(a, model=model_id, budget=b)) for a in arrays) / (n * size * size * 3)
            for b in budgets}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run")
    ap.add_argument("--id")
    ap.add_argument("--files", help="compare these shipped image models (comma-separated ids) on validation files")
    ap.add_argument("--budgets", default="10,20,50,100", help="with --files: the budgets")
    ap.add_argument("--budget", type=int, default=None, help="default budget (else chosen on validation)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--crops", default="32x32", help="what the run trained on, for the manifest")
    ap.add_argument("--audio", action="store_true", help="the run is an audio_train run: ship an audio model")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.files:
        n, size = VALIDATION_FILES
        print(f"bpd of whole files, {n} fixed {size}x{size} crops of the validation photos (as they are; upscaled)")
        for model_id in a.files.split(","):
            for scaled in (False, True):
                bpd = validation_files(model_id, [int(b) for b in a.budgets.split(",")], scaled=scaled)
                print(model_id, "upscaled" if scaled else "plain   ",
                      " ".join(f"B={b}: {v:.4f}" for b, v in bpd.items()), flush=True)
        return
    if not (a.run and a.id):
        ap.error("--run and --id are required (unless --files)")
    if a.audio:
        export_audio(a.run, a.id, budget=a.budget, threads=a.threads)
        return

    export_image(a.run, a.id, budget=a.budget, crops=a.crops)


if __name__ == "__main__":
    main()
