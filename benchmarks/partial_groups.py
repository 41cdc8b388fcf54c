"""Why more network calls do not make img7's files smaller: the finest quincunx group, half revealed.

    python benchmarks/partial_groups.py --photos 12 --out benchmarks/results/partial_groups.md

With img7's order (quincunx-grb) one call per group is the smallest file; extra calls split a group,
and the half revealed second is predicted from the first half too. This measures, on whole validation
photos (the validation split, never the evaluation set), what that second half costs, in bits per
subpixel, on the finest level's edge group (half of all pixels, G then R then B, each a part of its
own; about 45% of the net's bits at 18 calls, the group-0 lattice left out):

- **structured halves**, as the audio model's halved levels: A = (y even, x odd) first, then
  B = (y odd, x even), which then knows its 4 diagonal neighbours (all in A) besides its 4 axis ones;
- **random halves**, what more calls do today (the order within a group is random).

Each is measured for the net (img7's int-exact head, as the codec calls it, no scale offsets or adapted
steps) and for the exact prior alone (prior.py version 3, as a discretised logistic), at the group's
start (nothing of the part known) and with the other half known. For the prior it also splits the
difference into its mean and its scale, and fits what the diagonal neighbours could add to it: their
residuals under the group-start prior, as a mean correction (least squares) and as a scale (blended
with the prior's on a log scale).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ardmzip import codec  # noqa: E402
from ardmzip.ardm import CHANNEL_RANK, image_groups, probabilities  # noqa: E402
from ardmzip.data import CACHE  # noqa: E402
from ardmzip.prior import prior  # noqa: E402
from ardmzip.registry import load_model  # noqa: E402
from ardmzip.train import load_images  # noqa: E402

MODEL = "img7"


def logistic_bits(x: np.ndarray, mu: np.ndarray, s: np.ndarray) -> np.ndarray:
    """−log2 p of values x under one discretised logistic (mean mu, scale s in values): the codec's own
    distributions (ardm.probabilities of a one-component mixture, open outer bins)."""
    params = torch.from_numpy(np.stack([np.zeros_like(mu), mu / 127.5 - 1, np.log(s / 127.5)], 1)).float()
    probs = probabilities(params, 1)
    return -np.log2(np.maximum(probs[np.arange(len(x)), x.astype(np.int64)], 2.0 ** -24))


class Photo:
    """One photo's plane, plan and groups at img7's default budget."""

    def __init__(self, model, img: np.ndarray):
        self.model, self.img = model, img
        self.h, self.w = img.shape[:2]
        self.plan = codec.make_plan(model, (self.h, self.w, 3), model.default_budget, 0)
        self.values = codec._flat(img).astype(np.int64)
        self.groups = image_groups("quincunx-grb", self.h, self.w, False)     # (3HW,) group·3 + part
        _, yx = np.divmod(np.arange(3 * self.h * self.w), self.h * self.w)
        y, x = np.divmod(yx, self.w)
        self.half_a, self.half_b = (y % 2 == 0) & (x % 2 == 1), (y % 2 == 1) & (x % 2 == 0)
        self.torch_values = torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.int64))

    def net_bits(self, known: np.ndarray, positions: np.ndarray) -> np.ndarray:
        params = codec._step_params(self.model, self.plan, self.values, known, int(known.sum()), positions)
        probs = codec._probabilities(self.model, params, self.plan, self.values[positions])
        return -np.log2(np.maximum(probs[np.arange(len(positions)), self.values[positions]], 2.0 ** -24))

    def prior_of(self, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, scale) in values of every variable (flat) under prior version 3 given `known`."""
        mean16, logs, _ = prior(self.torch_values, torch.from_numpy(known.reshape(1, 3, self.h, self.w)), 3)
        return mean16.reshape(-1).numpy() / 16.0, np.exp(logs.reshape(-1).numpy() / 16.0) * 127.5

    def net_step_bits(self) -> float:
        """All the net's steps at the default budget (the group-0 lattice is coded without the net)."""
        rank = np.empty(len(self.values), dtype=np.int64)
        rank[self.plan.order] = np.arange(len(self.values))
        return sum(float(self.net_bits(rank < start, pos).sum()) for start, pos in codec._steps(self.plan))


def measure(photos: int, seed: int) -> dict:
    model = load_model(MODEL)
    images = load_images(CACHE / "data" / "images_val.npz")[:photos]
    rng = np.random.default_rng(seed)
    acc: dict[str, float] = {}
    diag_rows = []

    def add(key: str, bits: np.ndarray) -> None:
        acc[key] = acc.get(key, 0.0) + float(bits.sum())
        acc["n:" + key] = acc.get("n:" + key, 0) + len(bits)

    with torch.inference_mode():
        for img in images:
            p = Photo(model, img)
            acc["net_steps"] = acc.get("net_steps", 0.0) + p.net_step_bits()
            last = int(p.groups.max()) // 3
            for channel in (1, 0, 2):                    # G, R, B: the parts in decoding order
                part = 3 * last + CHANNEL_RANK[channel]
                base = p.groups < part
                pos = np.flatnonzero(p.groups == part)
                pos_a, pos_b = pos[p.half_a[pos]], pos[p.half_b[pos]]
                with_a = base.copy()
                with_a[pos_a] = True
                first = rng.random(len(pos)) < 0.5
                with_random = base.copy()
                with_random[pos[first]] = True
                rest = pos[~first]
                add("group", p.net_bits(base, pos))
                add("net B at start", p.net_bits(base, pos_b))
                add("net B after A", p.net_bits(with_a, pos_b))
                add("net random half at start", p.net_bits(base, rest))
                add("net random half after the other", p.net_bits(with_random, rest))
                x = p.values.astype(float)
                mu0, s0 = p.prior_of(base)
                mu1, s1 = p.prior_of(with_a)
                mur, sr = p.prior_of(with_random)
                add("prior B at start", logistic_bits(x[pos_b], mu0[pos_b], s0[pos_b]))
                add("prior B after A", logistic_bits(x[pos_b], mu1[pos_b], s1[pos_b]))
                add("prior B after A: its mean, the start's scale", logistic_bits(x[pos_b], mu1[pos_b], s0[pos_b]))
                add("prior B after A: the start's mean, its scale", logistic_bits(x[pos_b], mu0[pos_b], s1[pos_b]))
                add("prior random half at start", logistic_bits(x[rest], mu0[rest], s0[rest]))
                add("prior random half after the other", logistic_bits(x[rest], mur[rest], sr[rest]))
                # the diagonal neighbours' residuals under the group-start prior (all in A for a B position)
                e = np.full((p.h + 2, p.w + 2), np.nan)
                e[1:-1, 1:-1] = np.where(p.half_a[:p.h * p.w].reshape(p.h, p.w),
                                         (x - mu0)[channel * p.h * p.w:(channel + 1) * p.h * p.w].reshape(p.h, p.w), np.nan)
                diag = np.stack([e[:-2, :-2], e[:-2, 2:], e[2:, :-2], e[2:, 2:]]).reshape(4, -1)
                known_d = ~np.isnan(diag)
                n = np.maximum(known_d.sum(0), 1)
                mean_e = np.where(known_d.any(0), np.nansum(diag, 0) / n, 0.0)
                mean_abs = np.where(known_d.any(0), np.nansum(np.abs(diag), 0) / n, 0.0)
                at = pos_b - channel * p.h * p.w
                diag_rows.append(np.stack([x[pos_b], mu0[pos_b], s0[pos_b], mean_e[at], mean_abs[at]], 1))
            acc["subpixels"] = acc.get("subpixels", 0) + 3 * p.h * p.w
    x, mu, s, mean_e, mean_abs = np.concatenate(diag_rows).T
    slope = float(((x - mu) * mean_e).sum() / max((mean_e * mean_e).sum(), 1e-9))
    blends = {beta: float(logistic_bits(x, mu + slope * mean_e,
                                        np.exp((1 - beta) * np.log(s) + beta * np.log(0.6 * mean_abs + 0.5))).mean())
              for beta in (0.0, 0.3, 0.5, 0.7)}
    return {"acc": acc, "slope": slope, "blends": blends, "photos": len(images)}


def report(r: dict) -> str:
    acc = r["acc"]
    per = {k: acc[k] / acc["n:" + k] for k in acc if "n:" + k in acc}
    share = acc["group"] / acc["net_steps"]
    lines = [f"# img7: the finest group, half revealed ({r['photos']} whole validation photos)", "",
             "`benchmarks/partial_groups.py` (its docstring says what is measured). Bits per subpixel of the "
             "finest level's edge group (G, R and B parts together); that group is "
             f"{100 * share:.1f}% of the net's bits at {MODEL}'s default budget "
             f"({acc['net_steps'] / acc['subpixels']:.4f} bpd over all subpixels, the lattice left out).", "",
             "| what | at the part's start | after the other half | change |", "|---|---|---|---|"]
    for who in ("net", "prior"):
        for half, label in (("B", "structured: B after A"), ("random half", "random halves")):
            a, b = per[f"{who} {half} at start"], per[f"{who} {half} after {'A' if half == 'B' else 'the other'}"]
            lines.append(f"| {who}, {label} | {a:.4f} | {b:.4f} | {100 * (b / a - 1):+.1f}% |")
    lines += ["", "The prior's B after A, split: its own mean with the group-start scale "
              f"{per['prior B after A: its mean, the start' + chr(39) + 's scale']:.4f}, the group-start mean with its "
              f"own scale {per['prior B after A: the start' + chr(39) + 's mean, its scale']:.4f} (both at the start: "
              f"{per['prior B at start']:.4f}).", "",
              "What the 4 diagonal neighbours (half A) could add to the group-start prior of B: their mean "
              f"residual as a mean correction, least-squares slope {r['slope']:+.3f}; with that, a scale blended "
              "with 0.6·(their mean |residual|) + 0.5 on a log scale, weight β: " +
              ", ".join(f"β {b}: {v:.4f}" for b, v in r["blends"].items()) + " bits per subpixel."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=12, help="the first N photos of the validation split")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random halves")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    text = report(measure(args.photos, args.seed))
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
