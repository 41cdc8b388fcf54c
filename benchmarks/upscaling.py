"""Depth upscaling against the plain ARDM for images (issue 5), on the validation crops, never the
evaluation set: two training runs of the same net for the same steps (equal training time), compared by
the bound and by what the DP schedule predicts at equal network-call budgets.

    python -m ardmzip.train --run cmp-oa --data .pack/images_pack.npz --steps 1200 --ema 0.99 --order uniform
    python -m ardmzip.train --run cmp-up --data .pack/images_pack.npz --steps 1200 --ema 0.99 --order uniform --stages 2
    python benchmarks/upscaling.py --runs cmp-oa,cmp-up --data .pack/images_pack.npz --out benchmarks/results/upscaling

For each run (its EMA weights): the loss curve L_t of each stage on the 512 fixed 32×32 validation crops
(export.loss_curve), the bound Σ_stages mean L_t, and for budgets B the bits per dimension the schedule
predicts (codec.make_plan / predicted_bits: the codec's own plan). A depth-upscaling run spends B
calls over its two stages, split as the codec splits them.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ardmzip.data import CACHE  # noqa: E402
from ardmzip.export import loss_curve  # noqa: E402
from ardmzip.nets import ARDMNet, NetConfig  # noqa: E402
from ardmzip.registry import curve_to_ints  # noqa: E402
from ardmzip.ardm import min_budget  # noqa: E402
from ardmzip.codec import make_plan, planning_model, predicted_bits  # noqa: E402
from ardmzip.train import TrainConfig, load_training_data  # noqa: E402

BUDGETS = (2, 4, 10, 20, 50, 100, 200, 500)


def run_net(run: str) -> tuple[ARDMNet, dict]:
    ck = torch.load(CACHE / "runs" / run / "ckpt.pt")
    net = ARDMNet(NetConfig.from_dict(ck["net_config"]))
    net.load_state_dict(ck["ema"])
    return net.eval(), ck["state"]


def predicted_bpd(cfg: NetConfig, curves: list[list[int]], shape: tuple[int, ...], budget: int) -> float | None:
    """Bits per dimension the codec's plan of a `shape` plane predicts with `budget` network calls in all
    (its DP schedule; a depth-upscaling run: the codec's split of the calls between its stages); None
    where the budget is below the plan's minimum (a call per stage and group)."""
    if budget < cfg.stages * min_budget(cfg.order):
        return None
    model = planning_model(cfg, curves)
    return predicted_bits(model, make_plan(model, shape, budget, 0)) / math.prod(shape)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", required=True, help="comma-separated training runs (under CACHE/runs/)")
    ap.add_argument("--data", default="", help="a training pack (its validation crops); default: the photos")
    ap.add_argument("--out", type=Path, required=True, help="folder for upscaling.json / upscaling.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    crops = load_training_data(TrainConfig(data=args.data, crop=32))[1]
    c, h, w = crops[0].shape
    d = c * h * w
    rows = []
    for run in args.runs.split(","):
        net, state = run_net(run)
        stages = [None] if net.cfg.stages == 1 else list(range(1, net.cfg.stages + 1))
        curves = [curve_to_ints(loss_curve(net, crops, stage=s)) for s in stages]
        rows.append({"run": run, "stages": net.cfg.stages, "steps": state["step"], "images": state["images"],
                     "hours": round(state["seconds"] / 3600, 3),
                     "bound_bpd": sum(float(np.mean(c)) for c in curves) / 1000,
                     "bpd_by_budget": {b: predicted_bpd(net.cfg, curves, (h, w, c), b) for b in BUDGETS},
                     "curves": curves})
        print(f"{run}: bound {rows[-1]['bound_bpd']:.3f} bpd", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "upscaling.json").write_text(json.dumps({"crops": len(crops), "dims": d, "runs": rows}, indent=1) + "\n")
    head = "| run | stages | steps | CPU hours | bound | " + " | ".join(f"B={b}" for b in BUDGETS) + " |"
    lines = [f"### Depth upscaling vs one 256-way stage: predicted bpd on {len(crops)} validation crops of 32×32",
             "", head, "|" + "---|" * (5 + len(BUDGETS))]
    for r in rows:
        cells = [f"{v:.3f}" if v is not None else "—" for v in r["bpd_by_budget"].values()]
        lines.append(f"| {r['run']} | {r['stages']} | {r['steps']} | {r['hours']} | {r['bound_bpd']:.3f} | "
                     + " | ".join(cells) + " |")
    lines += ["", "B: network calls per image in all (a two-stage run: split between its stages as the codec "
              "splits them, codec.budget_splits). Predictions from the loss curves through the codec's plan "
              "(its DP schedule); —: below the plan's minimum (a call per stage and group); bound: every "
              f"variable its own call. `python benchmarks/upscaling.py --runs {args.runs}"
              + (f" --data {args.data}" if args.data else "") + "`."]
    (args.out / "upscaling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
