"""Image files <-> integer planes + metadata: what the codec codes, and what rebuilds the file.

An :class:`Image` is a list of uint8 planes plus a JSON-able ``meta`` dict. The codec codes each plane
with its own model pass; ``meta`` rebuilds an image file whose pixels, Pillow mode, palette and
transparency are exactly those of the input. Byte-identical files are not a goal: ancillary data
(EXIF, ICC profiles, text chunks, timestamps) is dropped, and the file is re-encoded.

Planes per Pillow mode (``PLANE_LAYOUT``); "rgb" planes are (H, W, 3), all others (H, W)::

    "L"    [grey]           "RGB"  [rgb]            "P"  [index]  + meta palette, palette_mode
    "1"    [grey] (0/255)   "RGBA" [rgb, alpha]     "LA" [grey, alpha]

``meta`` keys: "mode" (Pillow mode of the input), "format" (the format write_image writes), "width",
"height"; "source_format" when the input's format can't be written losslessly (JPEG, lossy WebP, TGA,
RGBA BMP...) so the image is written back as PNG; "palette" (list of ints) and "palette_mode" for "P";
"transparency" (int, or list of ints for a PNG tRNS byte string or an RGB colour) when the input has one.

Pixels are taken as stored: EXIF orientation is never applied. No torch here.
"""
from __future__ import annotations

import contextlib
import io
import re
import struct
import warnings
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import PIL.Image
from PIL import features

from ardmzip.errors import UnsupportedInputError

MAX_PIXELS = 200_000_000  # larger images are refused (Pillow alone warns at ~89 Mpx)

IMAGE_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm", ".gif", ".webp",
                    ".jpg", ".jpeg")

PLANE_LAYOUT: dict[str, tuple[str, ...]] = {
    "L": ("grey",), "1": ("grey",), "P": ("index",), "RGB": ("rgb",), "RGBA": ("rgb", "alpha"),
    "LA": ("grey", "alpha"),
}

# Formats written in their own kind (Pillow save options), and the modes each writes exactly;
# everything else is written as PNG. write_image also re-reads each non-PNG file it writes and falls
# back to PNG if anything differs, so these tables can only cost compression, never exactness.
_SAVE_OPTIONS: dict[str, dict] = {
    "PNG": {},
    "BMP": {},
    "TIFF": {"compression": "tiff_lzw"} if features.check("libtiff") else {},
    "PPM": {},
    "GIF": {"optimize": False},  # optimize would renumber the palette
    "WEBP": {"lossless": True, "exact": True},  # exact: keep RGB under alpha == 0
}
_WRITES_MODES: dict[str, set[str]] = {
    "PNG": set(PLANE_LAYOUT), "TIFF": set(PLANE_LAYOUT), "BMP": {"1", "L", "P", "RGB"},
    "PPM": {"1", "L", "RGB"}, "GIF": {"L", "P"}, "WEBP": {"RGB", "RGBA"},
}
_SUPPORTED = "PNG, BMP, TIFF, PPM/PGM/PBM, GIF, WebP or JPEG"
# What Pillow raises on damaged or hostile bytes (its plugins are not consistent about it)
_PILLOW_ERRORS = (OSError, ValueError, EOFError, SyntaxError, struct.error, TypeError, IndexError, KeyError,
                  ZeroDivisionError)
_SIXTEEN_BIT_RAWMODE = re.compile(r";16[BLN]$")  # 16 bits per sample ("BGR;16" is 5-6-5 and fine)


@dataclass
class Image:
    """What the codec codes: uint8 planes, each (H, W, 3) or (H, W) (see PLANE_LAYOUT), and JSON-able meta."""

    planes: list[np.ndarray]
    meta: dict


# ---------------------------------------------------------------------------------------------- reading

def read_image(data: bytes, name: str = "<stdin>") -> Image:
    """Decode an image file's bytes into planes + meta; raise UnsupportedInputError naming `name`."""
    if not data:
        raise UnsupportedInputError(f"{name}: empty input (0 bytes); pass a {_SUPPORTED} image")
    with _pixel_limit():
        pil = _open(data, name)
        try:
            _check_supported(pil, name)  # counting frames reads the whole file
            pil.load()
        except _PILLOW_ERRORS as e:
            raise UnsupportedInputError(f"{name}: damaged or truncated {pil.format} image ({e})") from e
    return Image(_planes_of(pil), _meta_of(pil, data))


@contextlib.contextmanager
def _pixel_limit() -> Iterator[None]:
    """Raise Pillow's bomb limit to MAX_PIXELS for one read (Pillow errors only above twice its limit,
    so _open checks MAX_PIXELS itself). Changes a Pillow global: not thread-safe."""
    saved = PIL.Image.MAX_IMAGE_PIXELS
    PIL.Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            yield
    finally:
        PIL.Image.MAX_IMAGE_PIXELS = saved


def _open(data: bytes, name: str) -> PIL.Image.Image:
    """Open lazily (header only) and refuse unreadable data and images over MAX_PIXELS."""
    try:
        pil = PIL.Image.open(io.BytesIO(data))
    except PIL.Image.DecompressionBombError as e:
        raise UnsupportedInputError(f"{name}: image too large ({e}); at most {MAX_PIXELS} pixels") from e
    except _PILLOW_ERRORS as e:
        raise UnsupportedInputError(f"{name}: not an image Pillow can read; pass a {_SUPPORTED} image") from e
    w, h = pil.size
    if w * h > MAX_PIXELS:
        raise UnsupportedInputError(f"{name}: image too large ({w}x{h} = {w * h} pixels); "
                                    f"at most {MAX_PIXELS} pixels, so crop or split it")
    if w * h == 0:
        raise UnsupportedInputError(f"{name}: image has no pixels ({w}x{h})")
    return pil


def _check_supported(pil: PIL.Image.Image, name: str) -> None:
    """Refuse, before decoding, anything that can't round-trip through 8-bit planes."""
    frames = getattr(pil, "n_frames", 1)
    if frames > 1:
        raise UnsupportedInputError(f"{name}: images with several frames ({frames}: animated or "
                                    "multi-page) are not supported yet; save one frame as its own file")
    if pil.format == "EPS":  # decoding runs Ghostscript on the file
        raise UnsupportedInputError(f"{name}: PostScript is not supported; convert to PNG")
    mode = pil.mode
    if mode.startswith("I;16") or _has_16_bit_samples(pil):
        raise UnsupportedInputError(f"{name}: 16-bit images (mode {mode}) are not supported yet; "
                                    "convert to 8-bit")
    if mode in ("I", "F"):
        kind = "integer" if mode == "I" else "float"
        raise UnsupportedInputError(f"{name}: {kind} images of more than 8 bits (mode {mode}) are not "
                                    "supported yet; convert to 8-bit")
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        raise UnsupportedInputError(f"{name}: {mode} colour (mode {mode}) is not supported yet; "
                                    "convert to RGB")
    if mode not in PLANE_LAYOUT:
        raise UnsupportedInputError(f"{name}: Pillow mode {mode} is not supported; "
                                    f"convert to one of {', '.join(PLANE_LAYOUT)}")


def _has_16_bit_samples(pil: PIL.Image.Image) -> bool:
    """True when Pillow would silently cut samples to 8 bits (16-bit RGB/LA PNG and TIFF, PPM maxval > 255)."""
    for codec, _, _, args, *_ in pil.tile:  # plain tuples before Pillow 11
        args = args if isinstance(args, tuple) else (args,)
        if args and isinstance(args[0], str) and _SIXTEEN_BIT_RAWMODE.search(args[0]):
            return True
        if codec in ("ppm", "ppm_plain") and args[-1] > 255:
            return True
    bits = getattr(pil, "tag_v2", {}).get(258, 8)  # TIFF BitsPerSample
    return max(bits if isinstance(bits, tuple) else (bits,)) > 8


def _planes_of(pil: PIL.Image.Image) -> list[np.ndarray]:
    """Split a loaded supported image into its planes (PLANE_LAYOUT); "1" becomes grey 0/255."""
    pixels = np.array(pil.convert("L") if pil.mode == "1" else pil, dtype=np.uint8)
    return _split(pixels, pil.mode)


def _meta_of(pil: PIL.Image.Image, data: bytes) -> dict:
    """The JSON-able meta that rebuilds `pil` (see the module docstring for the keys)."""
    meta = {"mode": pil.mode, "format": pil.format, "width": pil.width, "height": pil.height}
    if (pil.mode not in _WRITES_MODES.get(pil.format, ())
            or (pil.format == "WEBP" and not _webp_is_lossless(data))):
        meta.update(format="PNG", source_format=pil.format)
    if pil.mode == "P":
        meta["palette_mode"] = pil.palette.mode
        meta["palette"] = list(pil.getpalette(pil.palette.mode))
    if "transparency" in pil.info:
        t = pil.info["transparency"]
        meta["transparency"] = t if isinstance(t, int) else list(t)
    return meta


def _webp_is_lossless(data: bytes) -> bool:
    """True when the WebP's RIFF chunks hold a lossless (VP8L) bitstream and no lossy (VP8) one."""
    kinds, pos = set(), 12
    while pos + 8 <= len(data):
        kind, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        kinds.add(kind)
        pos += 8 + size + (size & 1)
    return b"VP8L" in kinds and b"VP8 " not in kinds


# ---------------------------------------------------------------------------------------------- writing

def write_image(img: Image) -> bytes:
    """Encode `img` as a file in meta["format"], or as PNG where that format can't hold it exactly.

    Every non-PNG file is read back and compared (planes, mode, palette, transparency) before it is
    returned, so the result always decodes to `img`.
    """
    pil = _to_pil(img)
    fmt, mode = img.meta.get("format", "PNG"), img.meta["mode"]
    if fmt != "PNG" and mode in _WRITES_MODES.get(fmt, ()):
        data = _save(pil, fmt)
        if _decodes_to(data, img):
            return data
    return _save(pil, "PNG")


def _to_pil(img: Image) -> PIL.Image.Image:
    """Rebuild the Pillow image of `img` (mode, palette, transparency)."""
    meta = img.meta
    mode, size = meta["mode"], (meta["width"], meta["height"])
    pixels = _join(img.planes, mode, size)
    if mode == "1" and not np.isin(pixels, (0, 255)).all():
        raise ValueError("mode '1' image has grey values other than 0 and 255")
    pil = PIL.Image.frombytes("L" if mode == "1" else mode, size, pixels.tobytes())
    if mode == "1":
        pil = pil.convert("1", dither=PIL.Image.Dither.NONE)
    if mode == "P":
        pil.putpalette(meta["palette"], rawmode=meta.get("palette_mode", "RGB"))
    if "transparency" in meta:
        t = meta["transparency"]
        pil.info["transparency"] = t if isinstance(t, int) else bytes(t) if mode == "P" else tuple(t)
    return pil


def _save(pil: PIL.Image.Image, fmt: str) -> bytes:
    """Pillow-encode `pil` as `fmt` with the lossless options of _SAVE_OPTIONS."""
    buf = io.BytesIO()
    pil.save(buf, fmt, **_SAVE_OPTIONS[fmt])
    return buf.getvalue()


def _decodes_to(data: bytes, img: Image) -> bool:
    """True when `data` reads back as exactly `img` (planes and every meta key but the format)."""
    try:
        back = read_image(data, "<written image>")
    except UnsupportedInputError:
        return False
    keys = ("mode", "width", "height", "palette", "palette_mode", "transparency")
    return (all(back.meta.get(k) == img.meta.get(k) for k in keys)
            and len(back.planes) == len(img.planes)
            and all(np.array_equal(a, b) for a, b in zip(back.planes, img.planes)))


# ----------------------------------------------------------------------------------- arrays and planes

def image_from_array(a: np.ndarray) -> Image:
    """Wrap a uint8 array, (H, W) grey -> "L", (H, W, 3) -> "RGB", (H, W, 4) -> "RGBA", written as PNG."""
    if not isinstance(a, np.ndarray) or a.dtype != np.uint8:
        raise UnsupportedInputError(f"array of dtype {getattr(a, 'dtype', type(a).__name__)} is not "
                                    "supported; pass uint8 (e.g. np.clip(a, 0, 255).astype(np.uint8))")
    mode = "L" if a.ndim == 2 else {3: "RGB", 4: "RGBA"}.get(a.shape[-1]) if a.ndim == 3 else None
    if mode is None or a.size == 0:
        raise UnsupportedInputError(f"array of shape {a.shape} is not supported; pass a non-empty (H, W) "
                                    "grey, (H, W, 3) RGB or (H, W, 4) RGBA array")
    meta = {"mode": mode, "format": "PNG", "width": a.shape[1], "height": a.shape[0]}
    return Image(_split(np.ascontiguousarray(a), mode), meta)


def image_to_array(img: Image) -> np.ndarray:
    """The pixels as one uint8 array: (H, W) for "L", "1" (0/255) and "P" (palette indices),
    (H, W, 3) for "RGB", (H, W, 4) for "RGBA", (H, W, 2) for "LA"."""
    return _join(img.planes, img.meta["mode"], (img.meta["width"], img.meta["height"]))


def _split(pixels: np.ndarray, mode: str) -> list[np.ndarray]:
    """(H, W[, C]) pixels of Pillow `mode` -> planes of PLANE_LAYOUT[mode]."""
    if mode == "RGBA":
        return [pixels[..., :3].copy(), pixels[..., 3].copy()]
    if mode == "LA":
        return [pixels[..., 0].copy(), pixels[..., 1].copy()]
    return [pixels]


def _join(planes: list[np.ndarray], mode: str, size: tuple[int, int]) -> np.ndarray:
    """Planes of PLANE_LAYOUT[mode] -> one (H, W[, C]) uint8 array; ValueError if they don't fit."""
    w, h = size
    shapes = [(h, w, 3) if kind == "rgb" else (h, w) for kind in PLANE_LAYOUT[mode]]
    if [p.shape for p in planes] != shapes or any(p.dtype != np.uint8 for p in planes):
        raise ValueError(f"mode {mode} {w}x{h} needs uint8 planes of shapes {shapes}, "
                         f"got {[(p.shape, str(p.dtype)) for p in planes]}")
    if mode == "RGBA":
        return np.dstack(planes)
    if mode == "LA":
        return np.stack(planes, axis=-1)
    return planes[0]


# ------------------------------------------------------------------------------------------------ audio
# A later release adds audio here the same way: read_audio(data, name) -> Audio(planes, meta), one int16
# (or int32) plane per channel, meta with "format", "samplerate", "subtype", "channels"; write_audio is its
# inverse, via soundfile. Nothing in this release reads or writes audio.
