"""Build the training and validation image sets, and the audio sets, of DATA.md with one command.

    python -m ardmzip.data images [--out ~/.cache/ardmzip/data]
    python -m ardmzip.data audio [--out ~/.cache/ardmzip/data] [--skip PACKAGE ...]

Downloads the Debian packages (``apt-get download``, no install), unpacks them, pulls the photos out
(including the WebP photos stored inside gcompris' Qt ``.rcc`` resource files), downsamples each by 2×
(4× when wider than 3000 px) with a box filter so JPEG block artefacts and chroma subsampling vanish,
drops near-duplicates, and writes ``images_train.npz`` / ``images_val.npz`` (one uint8 HxWx3 array per
source photo). The validation split is the committed list ``data/splits/images_val.txt``: whole source
photos, never crops of a training photo.

Audio (``build_audio``): the training packages become ``audio_train.npz`` / ``audio_val.npz`` of int16
clips grouped by kind (``load_clips(path, "speech")``; layout in ``save_clips``): asterisk prompts (8 kHz)
and klettres' Vorbis letters (decoded, mono, resampled to 16 kHz) are "speech"; the MuseScore soundfont's
PCM16 samples (one clip per sample, a linked left/right pair as one stereo clip, at their own rates) and
wesnoth's Vorbis music (44.1 kHz stereo) are "music". Exact duplicates are dropped. The validation split
is the committed list ``data/splits/audio_val.txt`` of whole sources (a file; for the soundfont an
instrument, with all its samples). The evaluation clips are copied unchanged under ``audio_eval/`` with
``audio_eval/manifest.json``; only files ardmzip.audio reads are kept. A package missing from the apt
index is reported and skipped.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
from PIL import Image

from ardmzip.errors import UnsupportedInputError

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


# ------------------------------------------------------------------------------------------------ audio

# Training audio: (package, kind, folder of its clips, rate to resample to or None to keep the file's)
AUDIO_TRAIN = (
    ("asterisk-core-sounds-en-wav", "speech", "usr/share/asterisk/sounds/en_US_f_Allison", None),
    ("asterisk-core-sounds-es-wav", "speech", "usr/share/asterisk/sounds/es_MX_f_Allison", None),
    ("asterisk-core-sounds-fr-wav", "speech", "usr/share/asterisk/sounds/fr_CA_f_June", None),
    ("asterisk-core-sounds-it-wav", "speech", "usr/share/asterisk/sounds/it_IT_m_Carlo", None),
    ("asterisk-prompt-it-menardi-wav", "speech", "usr/share/asterisk/sounds/it_IT_f_Menardi", None),
    ("klettres-data", "speech", "usr/share/klettres", 16000),  # lossy Vorbis: resampling hides the damage
    ("musescore-general-soundfont-lossless", "music", "usr/share/sounds/sf2", None),
    ("wesnoth-1.16-music", "music", "usr/share/games/wesnoth/1.16/data/core/music", None),
)
# Evaluation audio, copied unchanged: (set name, package, kind, folder searched recursively)
AUDIO_EVAL = (
    ("codec2", "codec2-examples", "speech", "usr/share/codec2/wav"),
    ("ktuberling", "ktuberling-data", "speech", "usr/share/ktuberling/sounds/fr"),  # French words
    ("hydrogen", "hydrogen-drumkits", "music", "usr/share/hydrogen/data/drumkits"),
    ("moh", "asterisk-moh-opsound-wav", "music", "usr/share/asterisk/moh"),
)
AUDIO_KINDS = ("speech", "music")


class Clip(NamedTuple):
    """One training clip: int16 samples (frames, channels) at `rate` Hz; `source` is the unit of the split."""

    name: str
    source: str
    rate: int
    samples: np.ndarray


def fetch_audio(packages: list[str], skip: set[str]) -> set[str]:
    """Unpack each package (see unpack_packages) unless skipped; the set of packages now available."""
    have = set()
    for p in packages:
        if p in skip:
            print(f"{p}: skipped (--skip)", flush=True)
            continue
        try:
            unpack_packages([p], CACHE)
        except subprocess.CalledProcessError:
            print(f"{p}: apt-get download failed (not in the apt index?): skipped", flush=True)
            continue
        have.add(p)
    return have


def audio_sources(x: Path, have: set[str]) -> Iterator[tuple[str, Clip]]:
    """Yield (kind, clip) for every training clip of the packages in `have`, unpacked under `x`."""
    import soundfile as sf  # here, not at the top: image training runs where soundfile is missing (a lent GPU)

    from ardmzip.audio import read_audio
    for package, kind, folder, rate in AUDIO_TRAIN:
        if package not in have:
            continue
        n, seconds = 0, 0.0
        for f in sorted((x / folder).rglob("*")):
            name = f"{package}/{f.relative_to(x / folder)}"
            if f.suffix == ".wav":
                a = read_audio(f.read_bytes(), str(f))
                clips = [Clip(name, name, a.samplerate, a.samples)] if a.bits == 16 else []
            elif f.suffix == ".ogg":
                pcm, file_rate = sf.read(f, dtype="float32", always_2d=True)
                if rate:  # mono at `rate`
                    pcm, file_rate = resample(pcm.mean(axis=1, keepdims=True), file_rate, rate), rate
                clips = [Clip(name, name, file_rate, to_pcm16(pcm))]
            elif f.suffix == ".sf2":
                clips = [Clip(f"{package}/{inst}/{sample}", f"{package}/{inst}", r, pcm)
                         for inst, sample, r, pcm in read_sf2(f.read_bytes())]
            else:
                continue
            for clip in clips:
                n, seconds = n + 1, seconds + len(clip.samples) / clip.rate
                yield kind, clip
        print(f"{package}: {n} {kind} clips, {seconds / 60:.1f} min", flush=True)


def to_pcm16(pcm: np.ndarray) -> np.ndarray:
    """Float samples (full scale ±1, as decoders give them) -> int16, rounded and clipped."""
    return np.clip(np.rint(pcm * 32768.0), -32768, 32767).astype(np.int16)


def resample(pcm: np.ndarray, rate: int, target: int) -> np.ndarray:
    """(frames, channels) float from `rate` to `target` Hz (polyphase, scipy's Kaiser-windowed filter)."""
    from scipy.signal import resample_poly  # scipy comes with scikit-image (the bench/test extras)
    if rate == target:
        return pcm
    g = math.gcd(rate, target)
    return resample_poly(pcm, target // g, rate // g, axis=0).astype(np.float32)


def read_sf2(blob: bytes) -> Iterator[tuple[str, str, int, np.ndarray]]:
    """Yield (instrument, sample name, rate, int16 (frames, channels)) for each sample of a SoundFont 2.

    Layout: RIFF "sfbk"; LIST "sdta" holds "smpl" (every sample's int16 PCM, one after another); LIST
    "pdta" holds "shdr" (46-byte sample headers: name[20], start, end, loop start, loop end, rate (u32),
    pitch (u8), correction (i8), link, type (u16); the last is the terminal "EOS") and "inst"/"ibag"/
    "igen", which say which instrument plays which sample. A linked left (type 4) / right (type 2) pair of
    equal length is one stereo clip; ROM samples (type & 0x8000) are skipped. A sample is named after the
    first instrument that uses it ("unused" if none), so a split by instrument keeps its samples together.
    """
    chunks = dict(_riff_chunks(memoryview(blob)))
    pcm = np.frombuffer(chunks[b"smpl"], dtype="<i2")
    hdr = chunks[b"shdr"]
    headers = [struct.unpack_from("<20sIIIIIBbHH", hdr, k) for k in range(0, len(hdr) - 46, 46)]
    owner = _sample_owners(chunks)
    done = set()
    for i, (name, start, end, *_, rate, _, _, link, kind) in enumerate(headers):
        if i in done or kind & 0x8000 or end <= start or not rate:
            continue
        channels = [pcm[start:end]]
        if kind in (2, 4) and link < len(headers) and link not in done:
            other = headers[link]
            if other[2] - other[1] == end - start and other[5] == rate:
                channels.insert(0 if kind == 2 else 1, pcm[other[1]:other[2]])  # left first
                done.add(link)
        done.add(i)
        yield owner.get(i, "unused"), _c_string(name), rate, np.stack(channels, axis=1)


def _riff_chunks(blob: memoryview) -> Iterator[tuple[bytes, memoryview]]:
    """(id, body) of every chunk of a RIFF file, the children of LIST chunks in place of the LIST."""
    def walk(pos: int, end: int) -> Iterator[tuple[bytes, memoryview]]:
        while pos + 8 <= end:
            cid, size = bytes(blob[pos:pos + 4]), struct.unpack("<I", blob[pos + 4:pos + 8])[0]
            if cid == b"LIST":
                yield from walk(pos + 12, min(pos + 8 + size, end))
            else:
                yield cid, blob[pos + 8:pos + 8 + size]
            pos += 8 + size + (size & 1)
    return walk(12, len(blob))


def _sample_owners(chunks: dict) -> dict[int, str]:
    """{sample index: name of the first instrument whose zones play it} (generator 53 is sampleID)."""
    def records(cid: bytes, fmt: str) -> list[tuple]:
        size = struct.calcsize(fmt)
        return [struct.unpack_from(fmt, chunks[cid], k) for k in range(0, len(chunks[cid]) - size + 1, size)]
    inst, bags, gens = records(b"inst", "<20sH"), records(b"ibag", "<HH"), records(b"igen", "<HH")
    owner = {}
    for (name, bag), (_, next_bag) in zip(inst, inst[1:]):  # the last record is the terminal "EOI"
        for b in range(bag, next_bag):
            for oper, amount in gens[bags[b][0]:bags[b + 1][0]]:
                if oper == 53:
                    owner.setdefault(amount, _c_string(name))
    return owner


def _c_string(raw: bytes) -> str:
    return raw.split(b"\0")[0].decode("latin-1").strip()


def save_clips(path: Path, groups: dict[str, list[Clip]]) -> None:
    """One .npz holding, for each kind K: K_samples (every clip's interleaved int16 samples, one after
    another), K_offsets (int64, clips + 1: clip i is K_samples[offsets[i]:offsets[i + 1]]), K_channels,
    K_rates (int32), K_names, K_sources (str)."""
    arrays = {}
    for kind, clips in groups.items():
        arrays[f"{kind}_samples"] = np.concatenate([c.samples.reshape(-1) for c in clips] or
                                                   [np.zeros(0, np.int16)])
        arrays[f"{kind}_offsets"] = np.cumsum([0] + [c.samples.size for c in clips], dtype=np.int64)
        arrays[f"{kind}_channels"] = np.array([c.samples.shape[1] for c in clips], dtype=np.int32)
        arrays[f"{kind}_rates"] = np.array([c.rate for c in clips], dtype=np.int32)
        arrays[f"{kind}_names"] = np.array([c.name for c in clips], dtype=str)
        arrays[f"{kind}_sources"] = np.array([c.source for c in clips], dtype=str)
    np.savez(path, **arrays)


def load_clips(path: Path, kind: str) -> list[Clip]:
    """The clips of `kind` ("speech" or "music") in a file of save_clips; samples are views of one array."""
    with np.load(path) as z:
        samples, offsets = z[f"{kind}_samples"], z[f"{kind}_offsets"]
        return [Clip(str(name), str(source), int(rate), samples[a:b].reshape(-1, ch))
                for name, source, rate, ch, a, b in zip(z[f"{kind}_names"], z[f"{kind}_sources"],
                                                        z[f"{kind}_rates"], z[f"{kind}_channels"],
                                                        offsets[:-1], offsets[1:])]


def build_audio(out: Path, skip: set[str] = frozenset()) -> None:
    """Fetch the audio packages, write audio_train.npz / audio_val.npz (save_clips) and audio_eval/."""
    have = fetch_audio([p for p, *_ in AUDIO_TRAIN] + [p for _, p, *_ in AUDIO_EVAL], skip)
    x = CACHE / "x"
    val_list = SPLITS / "audio_val.txt"
    val_names = set(val_list.read_text().splitlines()) if val_list.exists() else None
    splits = {split: {kind: [] for kind in AUDIO_KINDS} for split in ("train", "val")}
    seen = set()
    for kind, clip in audio_sources(x, have):
        digest = hashlib.sha256(clip.samples.tobytes()).digest()
        if digest in seen:  # the same recording in two places
            continue
        seen.add(digest)
        in_val = clip.source in val_names if val_names is not None else is_validation(clip.source)
        splits["val" if in_val else "train"][kind].append(clip)
    if val_names is None:
        SPLITS.mkdir(parents=True, exist_ok=True)
        sources = {c.source for clips in splits["val"].values() for c in clips}
        val_list.write_text("".join(f"{s}\n" for s in sorted(sources)))
    out.mkdir(parents=True, exist_ok=True)
    for split, groups in splits.items():
        save_clips(out / f"audio_{split}.npz", groups)
        print(f"{split} -> {out / f'audio_{split}.npz'}")
        for kind, clips in groups.items():
            print(f"  {kind}: {len(clips)} clips from {len({c.source for c in clips})} sources, "
                  f"{_minutes_by_rate(clips)}")
    build_audio_eval(x, have, out / "audio_eval")


def _minutes_by_rate(clips: list[Clip]) -> str:
    """"8000 Hz 120.3 min (mono 2810), ..." for the clips."""
    by_rate: dict[int, list[float]] = {}
    for c in clips:
        by_rate.setdefault(c.rate, []).append(len(c.samples) / c.rate / 60)
    total = sum(sum(m) for m in by_rate.values())
    top = sorted(by_rate.items(), key=lambda kv: -sum(kv[1]))
    parts = [f"{rate} Hz {sum(m):.1f} min" for rate, m in top[:4]]
    rest = sum(sum(m) for _, m in top[4:])
    return f"{total:.1f} min: " + ", ".join(parts) + (f", {len(top) - 4} other rates {rest:.1f} min" if rest else "")


def build_audio_eval(x: Path, have: set[str], out: Path) -> None:
    """Copy the evaluation clips that ardmzip.audio reads, unchanged, to `out`/SET/..., and write
    `out`/manifest.json: [{name, set, kind, format, subtype, rate, bits, channels, frames, seconds,
    bytes, sha256}] (name = the path under `out`)."""
    from ardmzip.audio import AUDIO_EXTENSIONS, read_audio
    if out.exists():
        shutil.rmtree(out)
    manifest = []
    for set_name, package, kind, folder in AUDIO_EVAL:
        if package not in have:
            continue
        for f in sorted((x / folder).rglob("*")):
            if not f.is_file() or f.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            data, name = f.read_bytes(), f"{set_name}/{f.relative_to(x / folder)}"
            try:
                a = read_audio(data, name)
            except UnsupportedInputError as e:
                print(f"  evaluation: left out {e}")
                continue
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(data)
            manifest.append({"name": name, "set": set_name, "kind": kind, "format": a.meta["format"],
                             "subtype": a.meta["subtype"], "rate": a.samplerate, "bits": a.bits,
                             "channels": a.channels, "frames": a.frames,
                             "seconds": round(a.frames / a.samplerate, 3), "bytes": len(data),
                             "sha256": hashlib.sha256(data).hexdigest()})
        items = [m for m in manifest if m["set"] == set_name]
        print(f"evaluation {set_name}: {len(items)} files, {sum(m['seconds'] for m in items) / 60:.1f} min, "
              f"{_formats(items)}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    print(f"evaluation -> {out} ({len(manifest)} files, manifest.json)")


def _formats(items: list[dict]) -> str:
    kinds: dict[str, int] = {}
    for m in items:
        key = f"{m['rate']} Hz {m['bits']}-bit {'mono' if m['channels'] == 1 else str(m['channels']) + 'ch'}"
        kinds[key] = kinds.get(key, 0) + 1
    return ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["images", "audio"])
    ap.add_argument("--out", type=Path, default=CACHE / "data")
    ap.add_argument("--skip", nargs="*", default=[], metavar="PACKAGE",
                    help="audio: leave these packages out (e.g. the 330 MB musescore-general-soundfont-lossless)")
    args = ap.parse_args()
    if args.what == "images":
        build_images(args.out)
    else:
        build_audio(args.out, skip=set(args.skip))


if __name__ == "__main__":
    main()
