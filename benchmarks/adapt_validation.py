"""Adapted image steps (ardmzip/adapt.py) on validation photos: whole .ardm files with one scale offset
per step (format version 2) and with adapted steps (version 5), each decoded and compared.

Sets (validation split only, data/splits/images_val.txt):
- native: the first photos of the validation split whose sources are at least 320 px each way, at the
  sources' own resolution (not downscaled as for training), centre crops of 320×320;
- jpeg: the validation photos whose sources are JPEG files (colour subsampled 2×2, 8×8 blocks): whole
  if at most 640 px each way, else a 640×640 centre crop, at the sources' own resolution;
- small: whole validation photos as training sees them (2× downscaled, about 160×110);
- crops64, crops64-up: the 12 fixed 64×64 validation crops that image models are chosen on
  (export.validation_files), as they are and upscaled 1–3×.

    python benchmarks/adapt_validation.py --out benchmarks/results/adapt
    python benchmarks/adapt_validation.py --radii 3,1 --sets native     # try other feature radii
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ardmzip import adapt, api, container, media
from ardmzip.data import CACHE, SPLITS, image_sources, load_images

NATIVE = (320, 6)  # crop size, photos


def native_photos(size: int = NATIVE[0], count: int = NATIVE[1]) -> list[tuple[str, np.ndarray]]:
    names = set((SPLITS / "images_val.txt").read_text().split())
    out = []
    for name, im in image_sources(CACHE / "x"):
        if name not in names or min(im.size) < size:
            continue
        a = np.asarray(im.convert("RGB"))
        y, x = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
        out.append((name, a[y:y + size, x:x + size]))
        if len(out) == count:
            break
    return out


def small_photos(count: int = 8) -> list[tuple[str, np.ndarray]]:
    return [(f"val-{i}", a) for i, a in enumerate(load_images(CACHE / "data" / "images_val.npz")[:count])]


def crops64(scaled: bool) -> list[tuple[str, np.ndarray]]:
    from ardmzip.export import VALIDATION_FILES, fixed_crops
    crops = fixed_crops(load_images(CACHE / "data" / "images_val.npz"), *VALIDATION_FILES, scaled=scaled)
    return [(f"crop-{i}", c.permute(1, 2, 0).numpy().astype(np.uint8)) for i, c in enumerate(crops)]


def jpeg_photos(size: int = 640) -> list[tuple[str, np.ndarray]]:
    names = set((SPLITS / "images_val.txt").read_text().split())
    out = []
    for name, im in image_sources(CACHE / "x"):
        if name in names and name.lower().endswith((".jpg", ".jpeg")) and im.mode == "RGB":
            a = np.asarray(im)
            y, x = max(0, (a.shape[0] - size) // 2), max(0, (a.shape[1] - size) // 2)
            out.append((name, a[y:y + size, x:x + size]))
    return out


SETS = {"native": native_photos, "jpeg": jpeg_photos, "small": small_photos, "crops64": lambda: crops64(False),
        "crops64-up": lambda: crops64(True)}


WAYS = {"offsets": {"adapt": False, "offsets": True},   # version 2: one scale offset per step
        "adapt": {"adapt": True, "phases": False},       # version 5: adapted steps, one fit per step
        "phases": {"adapt": True, "phases": True}}       # version 6: adapted steps per phase class
LABELS = {"offsets": "one offset per step (v2)", "adapt": "adapted (v5)", "phases": "adapted per phase (v6)"}


def measure(name: str, a: np.ndarray, model: str, budget: int | None) -> dict:
    img = media.Image(planes=[a], meta={})
    row = {"name": name, "shape": list(a.shape)}
    for way, kw in WAYS.items():
        t = time.perf_counter()
        blob, report = api.compress_image(img, model=model, budget=budget, fallback=False, **kw)
        t1 = time.perf_counter()
        out = api.decompress_image(blob)
        t2 = time.perf_counter()
        assert all(np.array_equal(p, q) for p, q in zip(out.planes, img.planes)), f"{name}: round trip failed"
        row[way] = {"bpd": round(report.bpd, 4), "version": blob[4], "compress_s": round(t1 - t, 2),
                    "decompress_s": round(t2 - t1, 2)}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="img7")
    ap.add_argument("--budget", type=int, default=None, help="network calls (default: the model's)")
    ap.add_argument("--sets", default="native,jpeg,small,crops64,crops64-up", help=f"comma-separated: {', '.join(SETS)}")
    ap.add_argument("--radii", default=None, help="experiment: OWN,OTHER feature radii (the format fixes 2,1)")
    ap.add_argument("--fit", default=None, help="experiment: the encoder's FIT_VARS,FIT_ITERATIONS (not the format's)")
    ap.add_argument("--out", type=Path, default=None, help="write NAME.json and NAME.md here")
    ap.add_argument("--name", default="validation", help="the files' name (default: validation)")
    a = ap.parse_args()
    if a.radii:
        adapt.OWN_RADIUS, adapt.OTHER_RADIUS = map(int, a.radii.split(","))
    if a.fit:
        adapt.FIT_VARS, adapt.FIT_ITERATIONS = map(int, a.fit.split(","))
    results = {}
    for s in a.sets.split(","):
        rows = []
        for name, arr in SETS[s]():
            rows.append(measure(name, arr, a.model, a.budget))
            r = rows[-1]
            print(f"{s} {name} {r['shape']}: " + " ".join(f"{w} {r[w]['bpd']}" for w in WAYS)
                  + " (compress " + " / ".join(str(r[w]["compress_s"]) for w in WAYS) + " s)", flush=True)
        dims = np.array([np.prod(r["shape"]) for r in rows])
        mean = {w: float(sum(r[w]["bpd"] * d for r, d in zip(rows, dims)) / dims.sum()) for w in WAYS}
        results[s] = {"rows": rows, "bpd": {w: round(v, 4) for w, v in mean.items()},
                      "change": {w: round(mean[w] / mean["offsets"] - 1, 4) for w in WAYS if w != "offsets"}}
        print(f"{s}: " + " ".join(f"{w} {v:.4f}" for w, v in mean.items()) + " ("
              + ", ".join(f"{w} {100 * c:+.2f}%" for w, c in results[s]["change"].items()) + ")", flush=True)
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        meta = {"model": a.model, "budget": a.budget, "radii": [adapt.OWN_RADIUS, adapt.OTHER_RADIUS],
                "fit": [adapt.FIT_VARS, adapt.FIT_ITERATIONS], "phase_min_vars": adapt.PHASE_MIN_VARS,
                "format_version": container.VERSION}
        (a.out / f"{a.name}.json").write_text(json.dumps({"meta": meta, "sets": results}, indent=1) + "\n")
        lines = ["# Adapted steps on validation photos", "",
                 f"Model {a.model}, default budget unless given ({a.budget}); bits per subpixel of whole .ardm "
                 "files (Σ bits / Σ subpixels), change against one offset per step; every file decoded and "
                 "compared. Made by `python benchmarks/adapt_validation.py`.", "",
                 "| set | photos | " + " | ".join(LABELS[w] for w in WAYS) + " | compress s | decompress s |",
                 "|---|---|" + "---|" * (len(WAYS) + 2)]
        for s, r in results.items():
            rows = r["rows"]
            cells = [f"{r['bpd']['offsets']:.4f}"] + [f"{r['bpd'][w]:.4f} ({100 * r['change'][w]:+.2f}%)"
                                                     for w in WAYS if w != "offsets"]
            cs = " / ".join(f"{sum(x[w]['compress_s'] for x in rows) / len(rows):.1f}" for w in WAYS)
            ds = " / ".join(f"{sum(x[w]['decompress_s'] for x in rows) / len(rows):.1f}" for w in WAYS)
            lines.append(f"| {s} | {len(rows)} | " + " | ".join(cells) + f" | {cs} | {ds} |")
        (a.out / f"{a.name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
