"""Build the training and validation image sets of DATA.md with one command.

    python -m ardmzip.data images [--out ~/.cache/ardmzip/data]

Downloads the Debian packages (``apt-get download``, no install), unpacks them, pulls the photos out
(including the WebP photos stored inside gcompris' Qt ``.rcc`` resource files), downsamples each by 2×
(4× when wider than 3000 px) with a box filter so JPEG block artefacts and chroma subsampling vanish,
drops near-duplicates, and writes ``images_train.npz`` / ``images_val.npz`` (one uint8 HxWx3 array per
source photo). The validation split is the committed list ``data/splits/images_val.txt``: whole source
photos, never crops of a training photo.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

CACHE = Path(os.environ.get("ARDMZIP_CACHE", Path.home() / ".cache" / "ardmzip"))
SPLITS = Path(__file__).resolve().parent.parent / "data" / "splits"

IMAGE_PACKAGES = ["gcompris-qt-data", "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04",
                  "plasma-workspace-wallpapers", "mate-backgrounds", "tuxpaint-data", "opencv-doc"]
RCC_PHOTO_FILES = ("categorization", "explore_", "erase", "clickgame")
LOMIRI_DRAWN = ("Fossa_", "Infinite-Sea", "Painting-Colors", "analogpattern", "umang_")
PLASMA_PHOTO_THEMES = ("Autumn", "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow",
                       "FallenLeaf", "Grey", "Kite", "OneStandsOut", "Path", "summer_1am")
OPENCV_PHOTOS = ("aero1", "aero3", "aloeL", "apple", "baboon", "basketball1", "board", "box_in_scene",
                 "building", "butterfly", "ela_original", "fruits", "graf1", "HappyFish", "home",
                 "leuvenA", "lena", "messi5", "orange", "pca_test1", "rubberwhale1", "smarties",
                 "squirrel_cls", "stuff", "text_defocus", "tsukuba_l", "left01", "right05")


def unpack_packages(packages: list[str], root: Path) -> Path:
    """``apt-get download`` each package into ``root/debs`` and extract it under ``root/x``."""
    debs, out = root / "debs", root / "x"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
    out.mkdir(exist_ok=True)
    for p in packages:
        stamp = out / f".{p}.done"
        if not stamp.exists():
            deb = sorted(debs.glob(f"{p}_*.deb"))[-1]
            subprocess.run(["dpkg", "-x", str(deb), str(out)], check=True)
            stamp.touch()
    return out


def read_rcc(blob: bytes) -> Iterator[tuple[str, bytes]]:
    """Yield (path, data) for every file in a Qt resource (.rcc) file; layout in DATA.md."""
    if blob[:4] != b"qres":
        raise ValueError("not a Qt .rcc file")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    node = 22 if version >= 2 else 14

    def name(off: int) -> str:
        n = struct.unpack(">H", blob[names + off:names + off + 2])[0]
        return blob[names + off + 6:names + off + 6 + 2 * n].decode("utf-16-be")

    def walk(index: int, prefix: str) -> Iterator[tuple[str, bytes]]:
        base = tree + index * node
        name_off, flags = struct.unpack(">IH", blob[base:base + 6])
        path = prefix + "/" + name(name_off) if index else ""
        if flags & 2:
            count, first = struct.unpack(">II", blob[base + 6:base + 14])
            for child in range(first, first + count):
                yield from walk(child, path)
            return
        off = data + struct.unpack(">I", blob[base + 10:base + 14])[0]
        size = struct.unpack(">I", blob[off:off + 4])[0]
        payload = blob[off + 4:off + 4 + size]
        if flags & 1:
            payload = zlib.decompress(payload[4:])
        elif flags & 4:
            import zstandard  # only some Qt builds use it
            payload = zstandard.ZstdDecompressor().decompress(payload)
        yield path, payload

    yield from walk(0, "")


def image_sources(x: Path) -> Iterator[tuple[str, Image.Image]]:
    """Yield (source name, PIL image) for every training photo in the unpacked packages."""
    for rcc in sorted((x / "usr/share/gcompris-qt/rcc").glob("*.rcc")):
        if not rcc.stem.startswith(RCC_PHOTO_FILES):
            continue
        for path, payload in read_rcc(rcc.read_bytes()):
            if path.lower().endswith((".webp", ".jpg", ".jpeg", ".png")):
                yield f"gcompris/{rcc.stem}{path}", Image.open(io.BytesIO(payload))
    for f in sorted((x / "usr/share/backgrounds").glob("*.jpg")):
        if not f.name.startswith(LOMIRI_DRAWN):
            yield f"lomiri/{f.name}", Image.open(f)
    for theme in PLASMA_PHOTO_THEMES:
        imgs = list((x / "usr/share/wallpapers" / theme / "contents/images").glob("*x*.*"))
        if imgs:
            largest = max(imgs, key=lambda p: int(p.stem.split("x")[0]) * int(p.stem.split("x")[1]))
            yield f"plasma/{theme}", Image.open(largest)
    for f in sorted((x / "usr/share/backgrounds/mate/nature").glob("*.jpg")):
        yield f"mate/{f.name}", Image.open(f)
    for f in sorted((x / "usr/share/tuxpaint/templates").glob("*.jpg")):
        yield f"tuxpaint/{f.name}", Image.open(f)
    for f in sorted((x / "usr/share/doc/opencv-doc/examples/data").glob("*.*")):
        if f.stem in OPENCV_PHOTOS and f.suffix in (".jpg", ".png"):
            yield f"opencv/{f.name}", Image.open(f)


def downscale(img: Image.Image) -> np.ndarray:
    """RGB uint8 (H, W, 3), box-downsampled 2× (4× above 3000 px wide) to remove codec artefacts."""
    img = img.convert("RGB")
    factor = 4 if img.width > 3000 else 2
    return np.asarray(img.reduce(factor), dtype=np.uint8)


def fingerprint(a: np.ndarray) -> bytes:
    """Coarse 8×8 grey thumbnail, quantised: equal for resized copies of one photo."""
    t = Image.fromarray(a).convert("L").resize((8, 8), Image.BOX)
    return (np.asarray(t) // 16).tobytes()


def is_validation(name: str) -> bool:
    """Initial split rule (used once to write the committed list): ~10% of sources by name hash."""
    return hashlib.sha256(name.encode()).digest()[0] < 26


def build_images(out: Path) -> None:
    x = unpack_packages(IMAGE_PACKAGES, CACHE)
    val_list = SPLITS / "images_val.txt"
    val_names = set(val_list.read_text().split()) if val_list.exists() else None
    train, val, seen = {}, {}, set()
    for name, img in image_sources(x):
        a = downscale(img)
        if min(a.shape[:2]) < 64:
            continue
        fp = fingerprint(a)
        if fp in seen:
            continue
        seen.add(fp)
        in_val = name in val_names if val_names is not None else is_validation(name)
        (val if in_val else train)[name] = a
    if val_names is None:
        SPLITS.mkdir(parents=True, exist_ok=True)
        val_list.write_text("".join(f"{n}\n" for n in sorted(val)))
    out.mkdir(parents=True, exist_ok=True)
    for split, arrays in (("train", train), ("val", val)):
        np.savez(out / f"images_{split}.npz", **arrays)
        px = sum(a.shape[0] * a.shape[1] for a in arrays.values())
        print(f"{split}: {len(arrays)} photos, {px / 1e6:.1f} Mpx -> {out / f'images_{split}.npz'}")


def load_images(path: Path) -> list[np.ndarray]:
    with np.load(path) as z:
        return [z[k] for k in z.files]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["images"])
    ap.add_argument("--out", type=Path, default=CACHE / "data")
    args = ap.parse_args()
    build_images(args.out)


if __name__ == "__main__":
    main()
