"""Turn a training checkpoint into a shipped model: weights in models/, an entry in the manifest.

    python -m ardmzip.export --run img1 --id ardm-img-v1 [--budget 50]

Measures on the validation photos (never the evaluation set): the per-step loss curve L on the grid
of revealed fractions (the schedule is built from it), the bound in bpd, and the bpd the schedule
predicts at several budgets. Refuses to overwrite a released id.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from .ardm import LOSS_GRID, training_loss
from .data import CACHE, load_images
from .exact import QuantNet, export_int
from .nets import ARDMNet, NetConfig
from .registry import curve_to_ints
from .schedule import expected_bits, step_boundaries
from .train import fixed_crops

REPO_MODELS = Path(__file__).resolve().parent.parent / "models"


@torch.inference_mode()
def loss_curve(net: ARDMNet, crops: torch.Tensor, per_bin: int = 8, batch: int = 64) -> np.ndarray:
    """Mean loss per masked variable (bits) at the centre of each of the LOSS_GRID fraction bins."""
    _, c, h, w = crops.shape
    d = c * h * w
    bins = np.repeat(np.arange(LOSS_GRID), per_bin)
    sums = np.zeros(LOSS_GRID)
    g = torch.Generator().manual_seed(0)
    for i in range(0, len(bins), batch):
        b = bins[i:i + batch]
        x = crops[(np.arange(i, i + len(b))) % len(crops)]
        t = torch.from_numpy(((2 * b + 1) * d) // (2 * LOSS_GRID))
        _, _, lt = training_loss(net, x, torch.zeros(len(b), dtype=torch.bool), generator=g, t=t)
        np.add.at(sums, b, lt.numpy())
    return sums / per_bin / np.log(2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--id", required=True)
    ap.add_argument("--budget", type=int, default=None, help="default budget (else chosen on validation)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--crops", default="32x32", help="what the run trained on, for the manifest")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    manifest_path = REPO_MODELS / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": {}, "defaults": {}}
    if a.id in manifest["models"]:
        raise SystemExit(f"model id {a.id} is already released: a new model needs a new id")

    run_dir = CACHE / "runs" / a.run
    ck = torch.load(run_dir / "ckpt.pt")
    cfg = NetConfig.from_dict(ck["net_config"])
    net = ARDMNet(cfg)
    exact = "scales" in ck  # a quantisation-aware run: ship the integer model
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
    curve = loss_curve(net, val)
    curve_int = curve_to_ints(curve)
    d64 = 3 * 64 * 64
    predicted = {b: expected_bits(curve_int, step_boundaries(curve_int, d64, b), d64) / d64
                 for b in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500)}
    bound = float(np.mean(curve))
    budget = a.budget or min(b for b, v in predicted.items() if v <= 1.02 * predicted[500])
    print(f"validation bound {bound:.4f} bpd; predicted bpd on 64×64 by budget: "
          + ", ".join(f"{b}: {v:.3f}" for b, v in predicted.items()) + f"; default budget {budget}")

    file = f"{a.id}.pt"
    tmp = REPO_MODELS / (file + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(REPO_MODELS / file)
    sha = hashlib.sha256((REPO_MODELS / file).read_bytes()).hexdigest()
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    (REPO_MODELS / "logs").mkdir(exist_ok=True)
    shutil.copy(run_dir / "log.jsonl", REPO_MODELS / "logs" / f"{a.id}.jsonl")
    manifest["models"][a.id] = {
        "file": file, "sha256": sha, "media": "image", "kind": "oa-ardm (uniform random order, 256 values)",
        "head": "discretised logistic mixture", "arithmetic": "int-exact" if exact else "float32",
        "net_config": cfg.to_dict(), "parameters": sum(p.numel() for p in net.parameters()),
        "default_budget": budget,
        "loss_curve_units": f"millibits per variable at revealed fraction (g + 0.5) / {LOSS_GRID}",
        "loss_curve": curve_int,
        "trained_on": "ardmzip.data images: train split (302 photos, 69.7 Mpx after 2x box downscale), "
                      f"random crops ({a.crops}), flips, 90-degree rotations, 15% grey",
        "training": {"images_seen": log[-1]["images"], "cpu_hours": round(log[-1]["hours"], 3),
                     "steps": log[-1]["step"], "threads": ck["train_config"]["threads"]},
        "validation": {"bound_bpd_32x32": round(bound, 4),
                       "predicted_bpd_64x64": {str(b): round(v, 4) for b, v in predicted.items()}},
    }
    manifest["defaults"].setdefault("image", a.id)
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote models/{file} ({(REPO_MODELS / file).stat().st_size / 1e6:.2f} MB, sha256 {sha[:16]}…)")


if __name__ == "__main__":
    main()
