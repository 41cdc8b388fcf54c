"""The bpd-vs-budget curve of each image model variant (issue 5), from the runs already in results/.

    python benchmarks/variants.py          # writes results/variants.md and results/variants.png

Every number comes from a benchmarks/run.py run kept in benchmarks/results/ (the folder of each variant
below; each run measured the classical codecs beside it on the same evaluation images). Nothing is
measured here: this only puts the runs side by side.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SETS = ("crops32", "crops64", "whole")
CLASSICAL = (("webp", "WebP lossless"), ("jxl-e9", "JPEG-XL e9"))

# (results folder, label): one per order family / prior / codec generation, oldest first
VARIANTS = (
    ("img2", "img2: uniform order (OA-ARDM)"),
    ("img3", "img3: quincunx coarse-to-fine"),
    ("img4", "img4: quincunx-grb (G, R, B in turn)"),
    ("img6", "img6: + exact image prior"),
    ("img7-v1", "img7: prior v3 + lattice without the net"),
    (".", "img7 + scale offsets (format 2)"),
)


def curves(folder: Path) -> tuple[dict, dict, dict]:
    """({set: {calls: bpd}} of ardmzip, {set: {codec: bpd}} of the classical codecs, the environment).
    A budget counts only where every item of the set was coded and decoded exactly (a partial run of a
    budget, e.g. some whole photos only, is left out)."""
    run = json.loads((folder / "results.json").read_text())
    default = run["environment"]["default_budget"]
    n_items = {}
    for s in run["summary"]:
        n_items[s["dataset"]] = max(n_items.get(s["dataset"], 0), s["items"])
    ardm, classical = {}, {}
    for s in run["summary"]:
        if s["dataset"] not in SETS or s["failed"] or s["items"] < n_items[s["dataset"]]:
            continue
        if s["method"] == "ardmzip":
            if s["budget"].isdigit() or s["budget"] == "default":
                calls = default if s["budget"] == "default" else int(s["budget"])
                ardm.setdefault(s["dataset"], {})[calls] = s["bpd"]
        else:
            classical.setdefault(s["dataset"], {})[s["method"]] = s["bpd"]
    return ardm, classical, run["environment"]


def main() -> int:
    runs = [(label, *curves(RESULTS / folder)) for folder, label in VARIANTS]
    classical = runs[-1][2]
    if any(c[ds] != classical.get(ds) for _, _, c, _ in runs for ds in c):
        raise SystemExit("the runs measured different classical numbers: not the same evaluation images")
    budgets = sorted({b for _, a, _, _ in runs for d in a.values() for b in d})
    md = ["### Image model variants: bits per dimension against network calls", "",
          "Each row is one benchmarks/run.py run (its folder in benchmarks/results/), every file decoded and "
          "compared; the classical codecs were measured in each run with the same results. — : budget not "
          "run (or below the variant's minimum). Written by `python benchmarks/variants.py`.", ""]
    for ds in SETS:
        md += [f"**{ds}** (WebP lossless {classical[ds]['webp']:.3f}, JPEG-XL e9 {classical[ds]['jxl-e9']:.3f})", "",
               "| variant | commit | " + " | ".join(f"B={b}" for b in budgets) + " |",
               "|---|---|" + "---|" * len(budgets)]
        for label, ardm, _, env in runs:
            row = ardm.get(ds, {})
            md.append(f"| {label} | `{env['git_commit'][:8]}` | "
                      + " | ".join(f"{row[b]:.3f}" if b in row else "—" for b in budgets) + " |")
        md.append("")
    (RESULTS / "variants.md").write_text("\n".join(md))
    plot(runs, classical)
    print("\n".join(md))
    return 0


def plot(runs: list, classical: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(SETS), figsize=(17, 4.8), sharey=False)
    for ax, ds in zip(axes, SETS):
        for i, (label, ardm, _, _) in enumerate(runs):  # one colour per variant in every panel
            row = sorted(ardm.get(ds, {}).items())
            if row:
                ax.plot(*zip(*row), marker="o", label=label, color=f"C{i}")
        for (codec, name), style in zip(CLASSICAL, ("--", ":")):
            ax.axhline(classical[ds][codec], color="k", linestyle=style, label=name)
        ax.set_xscale("log")
        ax.set_xlabel("network calls (budget)")
        ax.set_ylabel("bits per dimension")
        ax.set_title(ds)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)  # the 32×32 crops have every variant
    fig.tight_layout()
    fig.savefig(RESULTS / "variants.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
