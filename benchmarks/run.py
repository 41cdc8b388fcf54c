"""The benchmark: every number in the README comes from this script.

    python benchmarks/run.py                                   # the full run (hours, see below)
    python benchmarks/run.py --quick --out /tmp/bench          # smoke test: 3 crops, budgets 1, 10, 50
    python benchmarks/run.py --sets whole --budgets 10,default # a part of it
    python benchmarks/run.py --whole-budgets 10,default --out benchmarks/results  # full run, fewer whole budgets
    python benchmarks/run.py --write-crops                     # (once) choose the crops of eval_crops.json
    python benchmarks/run.py --restore benchmarks/results/results.json --sets whole --whole-budgets 100
                                                               # on a new machine: only what is missing

Evaluation images: only scikit-image's bundled photos (astronaut, camera, chelsea, coffee, rocket,
motorcycle_left, retina, hubble_deep_field), each decoded once with Pillow; every codec codes the same
arrays. Datasets: "crops32" and "crops64" (4 crops of 32×32 and 2 of 64×64 per photo, coordinates fixed
in benchmarks/eval_crops.json) and "whole" (the photos themselves).

For every item and budget, ardmzip is driven through its public API (api.compress_image /
api.decompress_image): whole .ardm file bytes, bpd = 8·bytes / subpixels, the bpd the step schedule
predicts from the model's loss curve, the model's ideal code length (Report.model_bits), network calls,
encode and decode seconds, and whether decoding gave back exactly the original array (a mismatch or an
error is recorded, printed, listed in results.md, and makes the script exit with status 1).
PNG (level 9), WebP lossless (level 100, method 6: libwebp's strongest) and JPEG-XL lossless (effort 7
and 9) from imagecodecs run on the same arrays; every one is decoded back and compared too.

Budgets (network calls): crops 1, 2, 5, 10, 20, 50, 100, 200, 500, the model's default budget, and "full"
(one variable per step: D calls; 32×32 crops only, not with --quick); whole photos 10, default, 100.
Results are cached per (model SHA-256, .ardm format version, dataset, item + its pixels' hash, budget)
under benchmarks/cache/, so an interrupted run resumes; failures are never cached. Delete that folder (or
pass --no-cache) after changing the codec without changing the model or the format version. The cache does
not outlive the machine; the committed results.json does: --restore benchmarks/results/results.json puts
its exact results back into the cache (only those of the same model, format version and imagecodecs), so a
new machine measures only what is missing and --cached-only assembles the whole table again.

Outputs in --out (default: benchmarks/results/ for the complete run, a temporary folder for --quick and
partial runs): results.json, results.csv (per item and per dataset as
Σ bits / Σ dims, with the environment), bpd_vs_calls.png, seconds_vs_budget.png and results.md (the
README's tables, with the schedule check: predicted vs actual bpd, gaps over 3 % flagged).

Run time, one torch thread (--threads 1, the default) on the 2-core Intel Xeon VM this was written on, with
the other core busy training (model ardm-img-dev: 1.2 M parameters; a bigger model costs more per call):
  --quick                  measured: 6-8 s in all (21 measurements), 3-5 s of which is importing and warm-up.
  crops32 (32 crops)       ESTIMATE ~7 min for budgets 1..500, plus ~22 min for "full" (90 k calls).
  crops64 (16 crops)       ESTIMATE ~9 min.
  whole (8 photos, 12.7 M subpixels)   ESTIMATE ~30 s per network call on all 8 photos and direction
                           (1.65 s measured on one 512×512 input), plus ~1 min per budget for the
                           distributions: budgets 10 + 25 ≈ 35 min, budget 100 ≈ 100 min.
  full run                 ESTIMATE ~4 h; a rerun with everything cached takes seconds.
The estimates come from measured per-call timings (32×32: 8.5 ms encode / 6 ms decode per call at B=500,
6.5 ms both ways at B=D; 64×64: 21 / 16 ms), not from a full run. Distributions are now computed in
chunks of 4096 variables (~5 µs each) and large photos run through the net in tiles, so memory stays at a
few GB for any photo; each whole photo is still measured in its own process, so that a failure of any
kind is recorded rather than the end of the run.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import PIL.Image

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))  # benchmark the checkout this script lives in, installed or not

from ardmzip import api, media  # noqa: E402
from ardmzip.container import FLAG_ADAPT, FLAG_OFFSETS, FLAG_PHASES, version_for  # noqa: E402
from ardmzip.registry import Model, default_model_id, load_model  # noqa: E402

# the cache key of an ardmzip result: the format version the codec writes images of this size as (a change
# of the codec that changes image files comes with a new version; versions 3 and 4 only added audio's
# channel transform and low bytes; version 5's adapted steps, and version 6's per phase class, change
# the images api.adapts_by_default)
FORMAT_VERSION = version_for(FLAG_OFFSETS)


def format_version(dims: int, calls: int) -> int:
    return version_for(FLAG_ADAPT | FLAG_PHASES) if api.adapts_by_default(dims, calls) else FORMAT_VERSION
IMAGES = ("astronaut.png", "camera.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
          "retina.jpg", "hubble_deep_field.jpg")
DATASETS = ("crops32", "crops64", "whole")
CROPS_FILE = BENCH / "eval_crops.json"
CROPS_SEED = 20240611
CROPS_PER_IMAGE = {64: 2, 32: 4}           # size -> count; the larger ones are placed first
CROP_BUDGETS = ("1", "2", "5", "10", "20", "50", "100", "200", "500", "default", "full")
WHOLE_BUDGETS = ("10", "default", "100")
QUICK_IMAGES = ("astronaut.png", "camera.png", "coffee.png")  # one 32×32 crop of each (camera is grey)
QUICK_BUDGETS = ("1", "10", "50")
GAP_FLAG = 0.03                             # schedule check: |actual − predicted| / predicted above this


# ------------------------------------------------------------------------------------------ evaluation data

@dataclass
class Item:
    """One thing to compress: a whole photo or a crop of one. array: (H, W) or (H, W, 3) uint8."""
    dataset: str
    name: str
    image: str
    array: np.ndarray

    @property
    def dims(self) -> int:
        return int(self.array.size)

    @property
    def digest(self) -> str:
        """SHA-256 of shape + pixels: identifies the exact array (JPEG decoders may differ by machine)."""
        return hashlib.sha256(repr(self.array.shape).encode() + self.array.tobytes()).hexdigest()


def skimage_data_dir() -> Path:
    """scikit-image's bundled data folder, found without importing scikit-image."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-image is not installed: pip install 'ardmzip[bench]'")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def load_images(names: Iterable[str] = IMAGES) -> dict[str, np.ndarray]:
    """Decode each evaluation photo once with Pillow: (H, W) uint8 for camera (mode L), else (H, W, 3)."""
    folder, out = skimage_data_dir(), {}
    for name in names:
        with PIL.Image.open(folder / name) as pil:
            if pil.mode not in ("L", "RGB"):
                raise SystemExit(f"{folder / name}: unexpected Pillow mode {pil.mode} (expected L or RGB)")
            out[name] = np.array(pil, dtype=np.uint8)
    return out


def make_crops(images: dict[str, np.ndarray], seed: int = CROPS_SEED) -> dict:
    """Choose non-overlapping crop positions, uniformly at random, with a fixed seed (run once)."""
    rng = np.random.default_rng(seed)
    crops = []
    for name in IMAGES:
        h, w = images[name].shape[:2]
        taken: list[tuple[int, int, int]] = []
        for size, count in CROPS_PER_IMAGE.items():
            for i in range(count):
                while True:
                    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
                    if all(y + size <= ty or ty + ts <= y or x + size <= tx or tx + ts <= x for ty, tx, ts in taken):
                        break
                taken.append((y, x, size))
                crops.append({"id": f"{Path(name).stem}-{size}-{i}", "image": name, "size": size, "y": y, "x": x})
    return {"about": "Fixed evaluation crops of scikit-image's photos (y, x: top-left corner, pixels). "
                     "Chosen once by `python benchmarks/run.py --write-crops`; this file is the source of truth.",
            "seed": seed,
            "image_shapes": {name: list(images[name].shape) for name in IMAGES},
            "crops": sorted(crops, key=lambda c: (c["size"], IMAGES.index(c["image"]), c["id"]))}


def _crops_json(spec: dict) -> str:
    """The crops file with one crop (and one image shape) per line, for readable diffs."""
    def block(items: Iterable[str], indent: str = "  ") -> str:
        return "\n" + ",\n".join(indent + i for i in items) + "\n "
    shapes = block(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in spec["image_shapes"].items())
    crops = block(json.dumps(c) for c in spec["crops"])
    return (f'{{\n "about": {json.dumps(spec["about"])},\n "seed": {spec["seed"]},\n'
            f' "image_shapes": {{{shapes}}},\n "crops": [{crops}]\n}}\n')


def read_crops(images: dict[str, np.ndarray], path: Path = CROPS_FILE) -> list[dict]:
    """The committed crops, checked against the decoded photos (shape and bounds)."""
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `python benchmarks/run.py --write-crops` once")
    spec = json.loads(path.read_text())
    for name, shape in spec["image_shapes"].items():
        if name in images and list(images[name].shape) != shape:
            raise SystemExit(f"{path}: {name} decodes to shape {images[name].shape}, the crops were chosen "
                             f"on {tuple(shape)}: a different scikit-image release?")
    for c in spec["crops"]:
        h, w = spec["image_shapes"][c["image"]][:2]
        if not (0 <= c["y"] <= h - c["size"] and 0 <= c["x"] <= w - c["size"]):
            raise SystemExit(f"{path}: crop {c['id']} lies outside {c['image']} ({w}x{h})")
    return spec["crops"]


def build_items(datasets: Iterable[str], quick: bool) -> list[Item]:
    """The items of each dataset (in DATASETS order); --quick: the first 32×32 crop of QUICK_IMAGES."""
    names = QUICK_IMAGES if quick else IMAGES
    images = load_images(names)
    crops = read_crops(images)
    items = []
    for ds in (d for d in DATASETS if d in datasets):
        if ds == "whole":
            items += [Item(ds, Path(n).stem, n, images[n]) for n in names]
            continue
        size = int(ds.removeprefix("crops"))
        chosen = [c for c in crops if c["size"] == size and c["image"] in names]
        if quick:
            chosen = [next(c for c in chosen if c["image"] == n) for n in names]
        for c in chosen:
            a = images[c["image"]][c["y"]:c["y"] + size, c["x"]:c["x"] + size]
            items.append(Item(ds, c["id"], c["image"], np.ascontiguousarray(a)))
    return items


# ------------------------------------------------------------------------------------------------ caching

# the fields of one cached measurement (what measure_ardmzip / measure_classical return)
ARDMZIP_FIELDS = ("bytes", "bits", "predicted_bits", "model_bits", "payload_bits", "stored_as", "calls", "encode_s",
                  "decode_s", "exact", "error")
CLASSICAL_FIELDS = ("bytes", "bits", "encode_s", "decode_s", "exact", "error")


def _keep(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)


def cached(path: Path, compute: Callable[[], dict]) -> dict:
    """compute() once per path: results are kept as small JSON files; failures are never kept."""
    if path.exists():
        return {**json.loads(path.read_text()), "cached": True}
    result = compute()
    if result["exact"]:
        _keep(path, result)
    return {**result, "cached": False}


def restore(entries: Iterable[tuple[Path, dict]]) -> int:
    """Put (path, result) pairs taken from an earlier run's rows into the cache where it has none (the cache
    does not outlive a machine; the committed results do). Only exact results; returns how many were put."""
    put = 0
    for path, result in entries:
        if result["exact"] and not path.exists():
            _keep(path, result)
            put += 1
    return put


def item_key(name: str, digest: str) -> str:
    """An item's part of a cache file name: its name (a path's slashes as "__") and its content's hash."""
    return f"{name.replace('/', '__')}-{digest[:12]}"


def ardmzip_path(cache: Path, model, dataset: str, key: str, budget: int, version: int = FORMAT_VERSION) -> Path:
    """The cached ardmzip result of one item at one budget (model: an image or audio model; version: the
    .ardm format version the codec writes the item as)."""
    return cache / "ardmzip" / model.sha256[:16] / f"format-{version}" / dataset / f"{key}-b{budget}.json"


def classical_path(cache: Path, dataset: str, key: str, codec: str) -> Path:
    import imagecodecs
    return cache / "classical" / f"imagecodecs-{imagecodecs.__version__}" / dataset / f"{key}-{codec}.json"


def restorable(results: dict, cache: Path, model: Model) -> list[tuple[Path, dict]]:
    """The cache entries an earlier results.json holds: its ardmzip rows of this model and .ardm format
    version (each row names the version it was measured with) and its classical rows of this imagecodecs."""
    import imagecodecs
    env = results["environment"]
    same_codecs = env["versions"]["imagecodecs"] == imagecodecs.__version__
    out = []
    for r in results["items"]:
        key = item_key(r["item"], r["pixels_sha256"])
        if r["method"] == "ardmzip":
            if env["model_sha256"] == model.sha256 and r.get("format_version") == format_version(r["dims"], r["budget_calls"]):
                out.append((ardmzip_path(cache, model, r["dataset"], key, r["budget_calls"], r["format_version"]),
                            {k: r[k] for k in ARDMZIP_FIELDS}))
        elif same_codecs:
            out.append((classical_path(cache, r["dataset"], key, r["method"]), {k: r[k] for k in CLASSICAL_FIELDS}))
    return out


# ------------------------------------------------------------------------------------------------ ardmzip

def resolve_budget(label: str, item: Item, model: Model) -> int:
    """A budget label ("10", "default", "full") -> network-call budget for this item."""
    if label == "default":
        return model.default_budget
    if label == "full":
        return item.dims
    return int(label)


def warm_up(model: Model) -> None:
    """The first network calls of a process (and of a shape) are slow: make them before timing anything."""
    for shape in ((32, 32), (32, 32, 3), (64, 64, 3)):
        api.compress_image(media.image_from_array(np.zeros(shape, np.uint8)), budget=2, model=model.id)


def unmeasured(item: Item, budget: int, model: Model, error: str | None = None) -> dict:
    """An ardmzip result with the schedule's prediction only; `error` says why nothing else is there."""
    bits = api.predict_bits(media.image_from_array(item.array), budget=budget, model=model.id)
    return {**dict.fromkeys(ARDMZIP_FIELDS), "predicted_bits": bits, "exact": False, "error": error}


def measure_ardmzip(item: Item, budget: int, model: Model) -> dict:
    """Compress and decompress one item through the public API; sizes, predictions, timings, exactness."""
    row = unmeasured(item, budget, model)
    try:
        img = media.image_from_array(item.array)
        t0 = time.perf_counter()
        blob, report = api.compress_image(img, budget=budget, model=model.id)
        row.update(encode_s=time.perf_counter() - t0, bytes=len(blob), bits=8 * len(blob),
                   model_bits=report.model_bits, payload_bits=report.payload_bits, calls=report.steps,
                   stored_as=report.method)
        if report.file_bytes != len(blob) or report.dims != item.dims:
            raise AssertionError(f"Report says {report.file_bytes} bytes / {report.dims} dims, "
                                 f"the file has {len(blob)} bytes and the item {item.dims} dims")
        t0 = time.perf_counter()
        back = media.image_to_array(api.decompress_image(blob))
        row["decode_s"] = time.perf_counter() - t0
        row["exact"] = back.shape == item.array.shape and bool(np.array_equal(back, item.array))
        if not row["exact"]:
            row["error"] = "decoded array differs from the original"
    except Exception as e:  # recorded as a failure and reported; the run goes on with the next item
        row["error"] = f"{type(e).__name__}: {e}"
    return row


def _measure_in_child(item: Item, budget: int, model_id: str, threads: int) -> dict:
    """measure_ardmzip in a worker process (spawned: a fresh interpreter)."""
    import torch
    torch.set_num_threads(threads)
    model = load_model(model_id)
    warm_up(model)
    return measure_ardmzip(item, budget, model)


def measure_ardmzip_isolated(item: Item, budget: int, model: Model, threads: int) -> dict:
    """measure_ardmzip in its own process, so that a photo that exhausts memory (the OOM killer ends the
    process) is a recorded failure instead of the end of the run. Used for whole photos."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(_measure_in_child, item, budget, model.id, threads).result()
        except BrokenProcessPool:
            return unmeasured(item, budget, model, "the measuring process died (killed for lack of memory?)")


# ----------------------------------------------------------------------------------------- classical codecs

@dataclass(frozen=True)
class Classical:
    """A classical lossless codec: whole-file encode, and decode back to the array's shape."""
    name: str
    label: str
    encode: Callable[[np.ndarray], bytes]
    decode: Callable[[bytes, tuple[int, ...]], np.ndarray]


def _as_rgb(a: np.ndarray) -> np.ndarray:
    """WebP has no grey mode: grey is coded as RGB with equal channels (dims still count H·W)."""
    return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a


def _webp_decode(blob: bytes, shape: tuple[int, ...]) -> np.ndarray:
    import imagecodecs
    a = imagecodecs.webp_decode(blob)
    grey_ok = len(shape) == 2 and a.ndim == 3 and (a == a[..., :1]).all()
    return a[..., 0] if grey_ok else a


def classical_codecs() -> list[Classical]:
    """PNG level 9, WebP lossless level 100 / method 6, JPEG-XL lossless effort 7 and 9 (imagecodecs), each
    on one thread like ardmzip's default --threads 1, so that seconds compare per core."""
    import imagecodecs as ic
    return [
        Classical("png", "PNG", lambda a: ic.png_encode(a, level=9), lambda b, s: ic.png_decode(b)),
        Classical("webp", "WebP", lambda a: ic.webp_encode(_as_rgb(a), 100, lossless=True, method=6, numthreads=1),
                  _webp_decode),
        Classical("jxl-e7", "JPEG-XL e7", lambda a: ic.jpegxl_encode(a, lossless=True, effort=7, numthreads=1),
                  lambda b, s: ic.jpegxl_decode(b, numthreads=1)),
        Classical("jxl-e9", "JPEG-XL e9", lambda a: ic.jpegxl_encode(a, lossless=True, effort=9, numthreads=1),
                  lambda b, s: ic.jpegxl_decode(b, numthreads=1)),
    ]


def measure_classical(item: Item, codec: Classical) -> dict:
    """Encode, decode and compare one item with one classical codec."""
    row = {**dict.fromkeys(CLASSICAL_FIELDS), "exact": False}
    try:
        t0 = time.perf_counter()
        blob = codec.encode(item.array)
        t1 = time.perf_counter()
        back = codec.decode(blob, item.array.shape)
        t2 = time.perf_counter()
        exact = back.shape == item.array.shape and bool(np.array_equal(back, item.array))
        row.update(bytes=len(blob), bits=8 * len(blob), encode_s=t1 - t0, decode_s=t2 - t1, exact=exact,
                   error=None if exact else "decoded array differs from the original")
    except Exception as e:
        row["error"] = f"{type(e).__name__}: {e}"
    return row


# ------------------------------------------------------------------------------------------------- the run

def _bpd(bits: float | None, dims: int) -> float | None:
    return None if bits is None else bits / dims


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_item(item: Item, budgets: list[str], model: Model, codecs: list[Classical], cache: Path,
             cached_only: bool,
             threads: int) -> list[dict]:
    """Every ardmzip budget and every classical codec on one item: rows of results."""
    base = {"dataset": item.dataset, "item": item.name, "image": item.image,
            "shape": "x".join(map(str, item.array.shape)), "dims": item.dims, "pixels_sha256": item.digest}
    key = item_key(item.name, item.digest)
    rows = []
    for label in budgets:
        budget = resolve_budget(label, item, model)
        path = ardmzip_path(cache, model, item.dataset, key, budget, format_version(item.dims, budget))
        if cached_only and not path.exists():
            continue
        if item.dataset == "whole":
            r = cached(path, lambda: measure_ardmzip_isolated(item, budget, model, threads))
        else:
            r = cached(path, lambda: measure_ardmzip(item, budget, model))
        rows.append({**base, "method": "ardmzip", "budget": label, "budget_calls": budget,
                     "format_version": format_version(item.dims, budget), **r, "bpd": _bpd(r["bits"], item.dims),
                     "predicted_bpd": _bpd(r["predicted_bits"], item.dims),
                     "model_bpd": _bpd(r["model_bits"], item.dims), "payload_bpd": _bpd(r["payload_bits"], item.dims)})
        _progress(rows[-1])
    for codec in codecs:
        r = cached(classical_path(cache, item.dataset, key, codec.name), lambda: measure_classical(item, codec))
        rows.append({**base, "method": codec.name, "budget": "", "budget_calls": None, **r,
                     "bpd": _bpd(r["bits"], item.dims)})
        _progress(rows[-1])
    return rows


def _progress(r: dict) -> None:
    what = f"ardmzip B={r['budget']}" if r["method"] == "ardmzip" else r["method"]
    status = "exact" if r["exact"] else f"FAILED ({r['error']})"
    bpd = f"{r['bpd']:.3f}" if r["bpd"] is not None else "-"
    secs = " ".join(f"{k[:3]} {r[k]:.2f}s" for k in ("encode_s", "decode_s") if r.get(k) is not None)
    extra = f" pred {r['predicted_bpd']:.3f} calls {r['calls']}" if r["method"] == "ardmzip" and r["calls"] else ""
    _log(f"  {r['dataset']:7} {r['item']:22} {what:18} bpd {bpd:>6}{extra} {secs}{' (cached)' if r['cached'] else ''}"
         f" {status}")


def summarize(rows: list[dict]) -> list[dict]:
    """Per (dataset, method, budget): Σ bits / Σ dims and mean calls and seconds per item.

    A total over items is None unless every item has the value: a dataset's bpd never silently leaves out
    an item that failed (its "failed" count says how many did)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["dataset"], r["method"], r["budget"])].append(r)
    out = []
    for (ds, method, budget), rs in groups.items():
        dims = sum(r["dims"] for r in rs)

        def total(key: str) -> float | None:
            values = [r.get(key) for r in rs]
            return None if any(v is None for v in values) else float(sum(values))

        def per_item(key: str) -> float | None:
            t = total(key)
            return None if t is None else t / len(rs)

        ardm = method == "ardmzip"
        out.append({"dataset": ds, "method": method, "budget": budget, "items": len(rs),
                    "failed": sum(not r["exact"] for r in rs), "dims": dims, "bytes": total("bytes"),
                    "bits": total("bits"), "bpd": _bpd(total("bits"), dims),
                    "predicted_bpd": _bpd(total("predicted_bits"), dims) if ardm else None,
                    "model_bpd": _bpd(total("model_bits"), dims) if ardm else None,
                    "payload_bpd": _bpd(total("payload_bits"), dims) if ardm else None,
                    "calls_per_item": per_item("calls") if ardm else None,
                    "encode_s_per_item": per_item("encode_s"), "decode_s_per_item": per_item("decode_s"),
                    "encode_s": total("encode_s"), "decode_s": total("decode_s")})
    size = defaultdict(int)  # a set's items: the classical codecs code every item a run has
    for s in out:
        size[s["dataset"]] = max(size[s["dataset"]], s["items"])
    for s in out:  # a budget measured on only some items (a partial --cached-only assembly) is no total
        s["complete"] = s["items"] == size[s["dataset"]]
    return out


# ---------------------------------------------------------------------------------------------- environment

def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(model: Model, quick: bool) -> dict:
    """What produced the numbers: versions, CPU, threads, commit, date, model."""
    import imagecodecs
    import torch
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "quick": quick,
        "model_id": model.id, "model_sha256": model.sha256, "default_budget": model.default_budget,
        "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(), "platform": platform.platform(),
        "versions": {"ardmzip": _version("ardmzip"), "torch": torch.__version__,
                     "constriction": _version("constriction"),
                     "imagecodecs": imagecodecs.__version__, "numpy": np.__version__, "pillow": PIL.__version__,
                     "scikit-image": _version("scikit-image"), "matplotlib": _version("matplotlib"),
                     "libpng": imagecodecs.png_version(), "libwebp": imagecodecs.webp_version(),
                     "libjxl": imagecodecs.jpegxl_version()},
        "classical_settings": {"png": "imagecodecs.png_encode(level=9)",
                               "webp": "imagecodecs.webp_encode(level=100, lossless=True, method=6, numthreads=1); "
                                       "grey as RGB",
                               "jxl-e7": "imagecodecs.jpegxl_encode(lossless=True, effort=7, numthreads=1)",
                               "jxl-e9": "imagecodecs.jpegxl_encode(lossless=True, effort=9, numthreads=1)"},
    }


# ------------------------------------------------------------------------------------------------- outputs

ROW_FIELDS = ("dataset", "item", "image", "shape", "dims", "pixels_sha256", "method", "budget", "budget_calls",
              "format_version", "stored_as", "calls", "bytes", "bits", "bpd", "predicted_bpd", "model_bpd",
              "payload_bpd", "encode_s", "decode_s", "exact", "error", "cached")
SUMMARY_FIELDS = ("dataset", "method", "budget", "items", "failed", "dims", "bytes", "bits", "bpd", "predicted_bpd",
                  "model_bpd", "payload_bpd", "calls_per_item", "encode_s_per_item", "decode_s_per_item",
                  "encode_s", "decode_s", "complete")


def write_json(path: Path, env: dict, rows: list[dict], summary: list[dict]) -> None:
    failures = [r for r in rows if not r["exact"]]
    path.write_text(json.dumps({"environment": env, "summary": summary, "items": rows, "failures": failures},
                               indent=1) + "\n")


def write_csv(path: Path, env: dict, rows: list[dict], summary: list[dict]) -> None:
    """One table: per-dataset rows (level "dataset", Σ bits / Σ dims) then per-item rows; '#' lines: environment."""
    write_table_csv(path, env, SUMMARY_FIELDS + ROW_FIELDS,
                    [("dataset", s) for s in summary] + [("item", r) for r in rows])


def write_table_csv(path: Path, env: dict, fields: Iterable[str], records: list[tuple[str, dict]]) -> None:
    """A benchmark's CSV (this one's and audio.py's): '#' lines of the environment, then a column "level"
    and the given fields (repeats dropped), one line per (level, record); floats to 6 digits."""
    with path.open("w", newline="") as f:
        for k, v in env.items():
            f.write(f"# {k}: {json.dumps(v) if isinstance(v, (dict, list)) else v}\n")
        w = csv.DictWriter(f, fieldnames=["level", *dict.fromkeys(fields)], extrasaction="ignore")
        w.writeheader()
        for level, r in records:
            w.writerow({"level": level, **{k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()}})


def log_outcome(rows: list[dict], findings: list[str], env: dict, out: Path) -> int:
    """The end of a benchmark run on stderr (findings, failures, totals); the exit status: 1 if any
    measurement failed."""
    for f in findings:
        _log(f"finding: {f}")
    failures = [r for r in rows if not r["exact"]]
    for r in failures:
        _log(f"FAILED: {r['dataset']} {r['item']} {r['method']} {r['budget']}: {r['error']}")
    _log(f"{len(rows)} measurements, {len(failures)} failures, {env['seconds']:.0f} s; results in {out}")
    return 1 if failures else 0


def _ardm_series(summary: list[dict], ds: str) -> list[dict]:
    """ardmzip's summary rows of a dataset, by network calls."""
    rs = [s for s in summary if s["dataset"] == ds and s["method"] == "ardmzip" and s["bpd"] is not None
          and s.get("complete", True)]
    return sorted(rs, key=lambda s: s["calls_per_item"])


def _footer(fig, env: dict) -> None:
    fig.text(0.01, 0.005, f"model {env['model_id']} ({env['model_sha256'][:12]}), commit {env['git_commit'][:12]}, "
                          f"{env['date']}\n{env['cpu']}, {env['torch_threads']} torch thread(s)",
             fontsize=7, color="grey")


def plot_bpd_vs_calls(path: Path, env: dict, summary: list[dict], codecs: list[Classical]) -> None:
    """One subplot per dataset: actual and predicted bpd against network calls; classical codecs as lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    datasets = [d for d in DATASETS if any(s["dataset"] == d for s in summary)]
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4.5), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        rs = _ardm_series(summary, ds)
        x = [s["calls_per_item"] for s in rs]
        ax.plot(x, [s["bpd"] for s in rs], "o-", color="C0", label="ardmzip (file bytes)")
        ax.plot(x, [s["predicted_bpd"] for s in rs], "x--", color="C1", label="predicted by schedule")
        ax.plot(x, [s["model_bpd"] for s in rs], ":", color="C0", alpha=0.6, label="model −log₂p")
        for i, c in enumerate(codecs):
            s = next((s for s in summary if s["dataset"] == ds and s["method"] == c.name), None)
            if s and s["bpd"] is not None:
                ax.axhline(s["bpd"], color=f"C{i + 2}", lw=1, label=c.label)
        ax.set_xscale("log")
        ax.set_xlabel("network calls per item")
        ax.set_ylabel("bits per dimension")
        ax.set_title(ds)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=8)
    _footer(fig, env)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_seconds_vs_budget(path: Path, env: dict, summary: list[dict], codecs: list[Classical]) -> None:
    """One subplot per dataset: ardmzip encode / decode seconds per item against network calls."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    datasets = [d for d in DATASETS if any(s["dataset"] == d for s in summary)]
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4.5), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        rs = _ardm_series(summary, ds)
        x = [s["calls_per_item"] for s in rs]
        ax.plot(x, [s["encode_s_per_item"] for s in rs], "o-", label="ardmzip encode")
        ax.plot(x, [s["decode_s_per_item"] for s in rs], "s--", label="ardmzip decode")
        for i, c in enumerate(codecs):
            s = next((s for s in summary if s["dataset"] == ds and s["method"] == c.name), None)
            if s and s["encode_s_per_item"]:
                ax.axhline(s["encode_s_per_item"], color=f"C{i + 2}", lw=1, label=f"{c.label} encode")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("network calls per item (budget)")
        ax.set_ylabel("seconds per item")
        ax.set_title(ds)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=8)
    _footer(fig, env)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def _bpd_cells(values: list[float | None]) -> list[str]:
    """bpd cells with the best (lowest) of the row in bold."""
    best = min((v for v in values if v is not None), default=None)
    return [f"**{_fmt(v)}**" if v is not None and v == best else _fmt(v) for v in values]


def main_table_budgets(rows: list[dict]) -> list[str]:
    """Budgets of results.md's main table: the whole-photo budgets run when whole photos ran, else all
    budgets run; fewest calls first."""
    ran = [r for r in rows if r["method"] == "ardmzip"]
    whole = [r for r in ran if r["dataset"] == "whole"]
    calls = {r["budget"]: r["budget_calls"] for r in whole or ran}  # label -> a budget
    return sorted(calls, key=lambda b: (calls[b], b))


def _budget_heading(label: str, env: dict) -> str:
    if label.isdigit() and int(label) == env["default_budget"]:
        return f"ardmzip B={label} (default)"
    return {"default": f"ardmzip B={env['default_budget']} (default)", "full": "ardmzip B=D (full)"}.get(
        label, f"ardmzip B={label}")


def write_markdown(path: Path, env: dict, rows: list[dict], summary: list[dict], codecs: list[Classical],
                   table_budgets: list[str]) -> list[str]:
    """results.md (included by the README). Returns the findings (schedule gaps over GAP_FLAG)."""
    datasets = [d for d in DATASETS if any(s["dataset"] == d for s in summary)]
    head = [*(_budget_heading(b, env) for b in table_budgets), *(c.label for c in codecs)]
    keys = [("ardmzip", b) for b in table_budgets] + [(c.name, "") for c in codecs]
    by = {(s["dataset"], s["method"], s["budget"]): s for s in summary}

    lines = [f"### Bits per dimension on scikit-image's photos{' (--quick smoke run)' if env['quick'] else ''}", "",
             f"Σ file bits / Σ subpixels, whole files with their headers; lower is better; the best of a row in "
             f"bold. ardmzip model `{env['model_id']}` (SHA-256 `{env['model_sha256'][:16]}…`); B is the budget "
             "of network calls. Every file was decoded back and compared with the original array; — marks a "
             "budget not run on that set, or a result missing because a round trip failed (listed at the end).", ""]
    size = {ds: max(s["items"] for s in summary if s["dataset"] == ds) for ds in datasets}
    lines += _table(["dataset", "items", *head],
                    [[ds, str(size[ds]), *_bpd_cells([by[(ds, m, b)]["bpd"] if by.get((ds, m, b), {}).get("complete")
                                                      else None for m, b in keys])] for ds in datasets])
    partial = [s for s in summary if s["dataset"] in size and not s["complete"]]
    if partial:
        lines += ["", "Not complete (— above; each measured item is in the tables below): " + "; ".join(
            f"{s['dataset']} at B={s['budget']}: {s['items']} of {size[s['dataset']]} items" for s in partial) + "."]
    lines += _per_photo_table(rows, head, keys)
    check, findings = _schedule_check(summary, datasets, env["default_budget"])
    lines += check
    failures = [r for r in rows if not r["exact"]]
    if failures:
        lines += ["", "#### FAILURES: round trips that did not give back the original", ""]
        lines += [f"- {r['dataset']} {r['item']} {r['method']} {r['budget']}: {r['error']}" for r in failures]
    lines += ["", "#### How these numbers were made", "", _how_measured(env), ""]
    path.write_text("\n".join(lines))
    return findings


def _per_photo_table(rows: list[dict], head: list[str], keys: list[tuple[str, str]]) -> list[str]:
    """The whole photos, one row each (nothing when no whole photo ran)."""
    whole = {r["item"]: r["shape"] for r in rows if r["dataset"] == "whole"}
    if not whole:
        return []
    bpd = {(r["item"], r["method"], r["budget"]): r["bpd"] for r in rows if r["dataset"] == "whole"}
    return ["", "#### Whole photos, per image", "",
            *_table(["image", "shape", *head],
                    [[name, shape, *_bpd_cells([bpd.get((name, m, b)) for m, b in keys])]
                     for name, shape in whole.items()])]


def _schedule_check(summary: list[dict], datasets: list[str], default_budget: int) -> tuple[list[str], list[str]]:
    """Predicted vs actual bpd per dataset and budget: markdown lines, and a finding per gap over GAP_FLAG.

    actual − predicted = (model − predicted: the model on these photos vs its validation loss curve)
                       + (payload − model: the entropy coder's overhead) + (file − payload: the header)."""
    table, findings = [], []
    for ds in datasets:
        for s in _ardm_series(summary, ds):
            pred, model, payload, actual = s["predicted_bpd"], s["model_bpd"], s["payload_bpd"], s["bpd"]
            gap = (actual - pred) / pred
            flagged = abs(gap) > GAP_FLAG
            budget = {"default": f"{default_budget} (default)", "full": "D (full)"}.get(s["budget"], s["budget"])
            table.append([ds, budget, _fmt(s["calls_per_item"], 1), _fmt(pred), _fmt(model), _fmt(actual),
                          f"{(model - pred) / pred:+.1%}", f"**{gap:+.1%}**" if flagged else f"{gap:+.1%}",
                          _fmt(payload - model), _fmt(actual - payload)])
            if flagged:
                findings.append(f"{ds}, B={s['budget']}: actual {actual:.3f} bpd vs predicted {pred:.3f} ({gap:+.1%}): "
                                f"model vs loss curve {model - pred:+.3f}, coder {payload - model:+.3f}, "
                                f"header {actual - payload:+.3f} bpd")
    lines = ["", "#### Schedule check: predicted vs actual", "",
             "Predicted: the bpd the step schedule expects from the model's loss curve (measured on validation "
             "photos). Model: Σ −log₂p of the coded values, the ideal code length. Actual: file bytes, which add "
             "the entropy coder's overhead (coder) and the container header (header) to it. "
             f"Gaps over {GAP_FLAG:.0%} are in bold and listed as findings.", "",
             *_table(["dataset", "budget", "calls/item", "predicted", "model", "actual", "model vs pred.",
                      "actual vs pred.", "coder bpd", "header bpd"], table)]
    if findings:
        lines += ["", "Findings:", "", *(f"- {f}" for f in findings)]
    return lines, findings


def _how_measured(env: dict) -> str:
    v = env["versions"]
    return (f"`python benchmarks/{env['command']}` on {env['date']}, commit `{env['git_commit'][:12]}`, "
            f"{env['seconds']:.0f} s; {env['cpu']} ({env['cpu_count']} cores); torch {v['torch']} on "
            f"{env['torch_threads']} thread(s), constriction {v['constriction']}, numpy {v['numpy']}, Pillow "
            f"{v['pillow']}, imagecodecs {v['imagecodecs']} ({v['libpng']}, {v['libwebp']}, {v['libjxl']}). "
            "PNG: level 9; WebP: lossless, level 100, method 6 (grey coded as RGB); JPEG-XL: lossless, effort 7 "
            "and 9; the classical codecs on one thread. Crops: `benchmarks/eval_crops.json`. Seconds and every "
            "other measurement per item: `results.json` / `results.csv`.")


README = BENCH.parent / "README.md"
README_BEGIN, README_END = "<!-- results:begin (written by benchmarks/run.py) -->", "<!-- results:end -->"


def update_readme(markdown: str, begin: str = README_BEGIN, end: str = README_END) -> None:
    """Put results.md between the README's markers `begin` and `end` (the image results by default; audio.py
    passes its own): the README's numbers come from the benchmark runs."""
    text = README.read_text()
    if begin not in text or end not in text:
        _log(f"README.md has no {begin} ... {end} block; not updated")
        return
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    README.write_text(f"{head}{begin}\n{markdown.rstrip()}\n{end}{tail}")
    _log("README.md results updated")


def print_table(summary: list[dict]) -> None:
    """The per-dataset summary on stderr."""
    _log(f"\n{'dataset':8} {'method':8} {'budget':>7} {'calls':>7} {'bpd':>7} {'pred':>7} {'model':>7} "
         f"{'enc s':>7} {'dec s':>7} {'failed':>6}")
    for s in summary:
        _log(f"{s['dataset']:8} {s['method']:8} {s['budget']:>7} {_fmt(s['calls_per_item'], 1):>7} {_fmt(s['bpd']):>7} "
             f"{_fmt(s['predicted_bpd']):>7} {_fmt(s['model_bpd']):>7} {_fmt(s['encode_s_per_item']):>7} "
             f"{_fmt(s['decode_s_per_item']):>7} {s['failed']:>6}")


# ---------------------------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 3 crops of 32x32, budgets 1,10,50, no whole photos")
    ap.add_argument("--sets", default=None, help=f"comma-separated subset of {','.join(DATASETS)}")
    ap.add_argument("--budgets", default=None,
                    help="comma-separated budgets for every chosen set: integers, 'default', 'full' (32x32 only)")
    ap.add_argument("--crop-budgets", default=None,
                    help="budgets for the crop sets only (overrides the full run's list; --budgets wins)")
    ap.add_argument("--whole-budgets", default=None,
                    help="budgets for the whole photos only (overrides the full run's list; --budgets wins)")
    ap.add_argument("--items", default=None,
                    help="comma-separated names: only items whose name or photo contains one (e.g. camera,rocket-32)")
    ap.add_argument("--model", default=None, help="model id (default: the release's default image model)")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default: benchmarks/results/ for a complete run; a new temporary folder "
                         "for --quick and partial runs, so that they never replace the README's results)")
    ap.add_argument("--cache", type=Path, default=BENCH / "cache", help="folder of cached measurements")
    ap.add_argument("--cached-only", action="store_true",
                    help="report only ardmzip measurements already in the cache (assemble results of partial runs)")
    ap.add_argument("--no-cache", action="store_true", help="measure everything again (cache in a temp folder)")
    ap.add_argument("--restore", type=Path, action="append", default=[], metavar="RESULTS_JSON",
                    help="first put an earlier run's results.json (e.g. the committed benchmarks/results/results.json) "
                         "into the cache: its exact results of this model, format version and imagecodecs version "
                         "(repeatable)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: timings per core; with a busy core, torch's own choice of "
                         "2 threads was 25x slower on the 2-core benchmark machine)")
    ap.add_argument("--write-crops", action="store_true", help=f"choose the crops once and write {CROPS_FILE.name}")
    return ap.parse_args(argv)


def budgets_for(dataset: str, args: argparse.Namespace) -> list[str]:
    """Budget labels for a dataset: --budgets if given, else --quick's or the full run's."""
    per_set = args.whole_budgets if dataset == "whole" else args.crop_budgets
    if args.budgets or per_set:
        chosen = [b.strip() for b in (args.budgets or per_set).split(",") if b.strip()]
    elif args.quick:
        chosen = list(QUICK_BUDGETS)
    else:
        chosen = list(WHOLE_BUDGETS if dataset == "whole" else CROP_BUDGETS)
    for b in chosen:
        if b not in ("default", "full") and not (b.isdigit() and int(b) >= 1):
            raise SystemExit(f"--budgets: {b!r} is not a budget; use integers >= 1, 'default' or 'full'")
    # one variable per step is D network calls: affordable on 32x32 crops only
    return [b for b in chosen if b != "full" or (dataset == "crops32" and not args.quick)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write_crops:
        if CROPS_FILE.exists():
            raise SystemExit(f"{CROPS_FILE} exists and is the source of truth; delete it first to choose new crops")
        CROPS_FILE.write_text(_crops_json(make_crops(load_images())))
        _log(f"wrote {CROPS_FILE}")
        return 0
    import torch
    torch.set_num_threads(args.threads)
    sets = [s.strip() for s in (args.sets or ("crops32" if args.quick else ",".join(DATASETS))).split(",")]
    if unknown := [s for s in sets if s not in DATASETS]:
        raise SystemExit(f"--sets: unknown {unknown}; choose from {','.join(DATASETS)}")

    model = load_model(args.model or default_model_id("image"))
    warm_up(model)
    codecs = classical_codecs()
    items = build_items(sets, args.quick)
    if args.items:
        wanted = [w.strip() for w in args.items.split(",") if w.strip()]
        items = [i for i in items if any(w in i.name or w in i.image for w in wanted)]
        if not items:
            raise SystemExit(f"--items {args.items}: matches none of the items of --sets {','.join(sets)}")
    env = environment(model, args.quick)
    _log(f"ardmzip benchmark: model {model.id} ({model.sha256[:12]}), {len(items)} items, sets {','.join(sets)}, "
         f"{env['torch_threads']} torch threads")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) if args.no_cache else args.cache
        for path in args.restore:
            _log(f"restored {restore(restorable(json.loads(path.read_text()), cache, model))} results from {path}")
        rows = [r for item in items
                for r in run_item(item, budgets_for(item.dataset, args), model, codecs, cache, args.cached_only,
                                  args.threads)]
    summary = summarize(rows)

    if args.out is None:
        partial = (args.quick or args.sets or args.budgets or args.items or args.model or args.crop_budgets
                   or args.whole_budgets)
        args.out = Path(tempfile.mkdtemp(prefix="ardmzip-bench-")) if partial else BENCH / "results"
    args.out.mkdir(parents=True, exist_ok=True)
    env["seconds"] = round(time.perf_counter() - started, 1)  # with cached results: only what was measured now
    table_budgets = main_table_budgets(rows)
    write_json(args.out / "results.json", env, rows, summary)
    write_csv(args.out / "results.csv", env, rows, summary)
    plot_bpd_vs_calls(args.out / "bpd_vs_calls.png", env, summary, codecs)
    plot_seconds_vs_budget(args.out / "seconds_vs_budget.png", env, summary, codecs)
    findings = write_markdown(args.out / "results.md", env, rows, summary, codecs, table_budgets)

    if args.out.resolve() == (BENCH / "results").resolve():
        update_readme((args.out / "results.md").read_text())
    print_table(summary)
    return log_outcome(rows, findings, env, args.out)


if __name__ == "__main__":
    sys.exit(main())
