"""Image files <-> integer planes + metadata: what the codec codes, and what rebuilds the file.

An :class:`Image` is a list of uint8 planes plus a JSON-able ``meta`` dict. The codec codes each plane
with its own model pass; ``meta`` rebuilds an image file whose pixels, Pillow mode, palette and
transparency are exactly those of the input, with the input's metadata where the written format can hold
it. Byte-identical files are not a goal: the file is re-encoded, and what can't be kept is named in
meta["dropped"] (``preserved_note`` says it in words).

Planes per Pillow mode (``PLANE_LAYOUT``); "rgb" planes are (H, W, 3), all others (H, W)::

    "L"    [grey]           "RGB"  [rgb]            "P"  [index]  + meta palette, palette_mode
    "1"    [grey] (0/255)   "RGBA" [rgb, alpha]     "LA" [grey, alpha]

``meta`` keys: "mode" (Pillow mode of the input), "format" (the format write_image writes), "width",
"height"; "source_format" when the input's format can't be written losslessly (JPEG, lossy WebP, TGA,
RGBA BMP...) so the image is written back as PNG; "palette" (list of ints) and "palette_mode" for "P";
"transparency" (int, or list of ints for a PNG tRNS byte string or an RGB colour) when the input has one.

Metadata keys, each only when the input has that metadata and the written format holds it (bytes are
base64 strings)::

    "icc"     ICC profile            PNG (iCCP), TIFF, WebP; from JPEG and lossy WebP into the PNG
    "dpi"     [x, y], fewest decimals giving the same stored pixels per metre     PNG (pHYs), BMP
    "exif"    EXIF (TIFF bytes, no "Exif\0\0")      PNG (eXIf), WebP; from JPEG and lossy WebP too
    "xmp"     XMP                    WebP (a PNG keeps XMP as iTXt "XML:com.adobe.xmp" in "text")
    "gamma"   gAMA as a float; "srgb": sRGB rendering intent (int)                PNG
    "text"    [[key, text], ...] tEXt; [key, text, "z"] zTXt; [key, text, "i" or "iz" (compressed),
              language, translated key] iTXt, in file order                        PNG; a JPEG's
              XMP and comments (as "Comment") go here too
    "chunks"  [[type, body, (1 if after IDAT)], ...]: other PNG chunks kept as they are (cHRM, cICP,
              sBIT, tIME, bKGD, hIST, sPLT, and safe-to-copy private chunks)
    "tiff"    {tag: value}: TIFF DocumentName, ImageDescription, Make, Model, PageName, Software,
              DateTime, Artist, HostComputer, Copyright (str), Orientation, ResolutionUnit (int),
              X/YResolution ([numerator, denominator]), XMP, IPTC, Photoshop (bytes)
    "comment", "background"          GIF comment (latin-1 text) and background colour index
    "dropped" sorted short names of what the input had that is not kept ("EXIF", "XMP", "ICC profile",
              "dpi", PNG chunk types such as "pHYs" (aspect ratio only) or "sTER", TIFF tag names...)

Not kept without being named: the iCCP profile name, the order of PNG chunks of different types, a
JPEG's or TIFF's coding parameters, a GIF's version and a single frame's loop count. Through libtiff a
TIFF resolution is a 32-bit float. META_BUDGET bounds the meta JSON: the largest items beyond it are
dropped (and named).

Pixels are taken as stored: EXIF orientation is not applied, except that Pillow applies a TIFF's
Orientation tag when it loads the file (and removes the tag, so the file displays the same). No torch here.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import math
import numbers
import re
import struct
import warnings
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import PIL.Image
from PIL import TiffTags, features
from PIL.PngImagePlugin import PngInfo, iTXt
from PIL.TiffImagePlugin import IFDRational, ImageFileDirectory_v2

from ardmzip.errors import CorruptError, UnsupportedInputError

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
    return _with_metadata(meta, pil, data)


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
    returned, so the result always decodes to `img`. Metadata keys (see the module docstring) are written
    where the written format holds them; CorruptError if they are malformed (no reader makes such meta,
    so it can only come from a damaged or crafted file).
    """
    try:
        return _write_image(img)
    except (ValueError, TypeError, OverflowError, KeyError, binascii.Error) as e:
        raise CorruptError(f"file is corrupt: its image metadata cannot be written back ({e})") from None


def _write_image(img: Image) -> bytes:
    pil = _to_pil(img)
    fmt, mode = img.meta.get("format", "PNG"), img.meta["mode"]
    if fmt != "PNG" and mode in _WRITES_MODES.get(fmt, ()):
        options = _metadata_options(img.meta, fmt)
        try:
            data = _save(pil, fmt, options)
        except (*_PILLOW_ERRORS, RuntimeError):  # e.g. libtiff refusing a tag: PNG holds the image
            data = b""
        if data and _decodes_to(data, img):
            return data
    return _save(pil, "PNG", _metadata_options(img.meta, "PNG"))


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


def _save(pil: PIL.Image.Image, fmt: str, options: dict | None = None) -> bytes:
    """Pillow-encode `pil` as `fmt` with the lossless options of _SAVE_OPTIONS (and metadata `options`)."""
    buf = io.BytesIO()
    pil.save(buf, fmt, **_SAVE_OPTIONS[fmt], **(options or {}))
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


# --------------------------------------------------------------------------------------------- metadata
# Read: _found_metadata collects what the input holds, as plain values (bytes, tuples, lists);
# _with_metadata keeps in meta what the written format can hold (_HOLDS) and names the rest in
# meta["dropped"]. Write: _metadata_options turns those meta keys back into Pillow save options.

META_BUDGET = 1_000_000  # bytes of compact JSON meta (the .ardm header holds 1 MiB); bigger items are dropped

# meta keys each written format holds; a PNG also takes "xmp" and "comment" (as text chunks)
_HOLDS: dict[str, set[str]] = {
    "PNG": {"icc", "dpi", "exif", "gamma", "srgb", "text", "chunks"},
    "WEBP": {"icc", "exif", "xmp"}, "TIFF": {"icc", "tiff"}, "BMP": {"dpi"}, "GIF": {"comment", "background"},
}
_NAMES = {"icc": "ICC profile", "dpi": "dpi", "exif": "EXIF", "xmp": "XMP", "gamma": "gAMA", "srgb": "sRGB",
          "text": "text", "chunks": "ancillary chunks", "tiff": "TIFF tags", "comment": "comment",
          "background": "background colour"}
_BASE64_KEYS = ("icc", "exif", "xmp")
# The integer pixels per metre (PNG, BMP) that Pillow writes for a dpi value
_DPI_STORED = {"PNG": lambda d: int(d / 0.0254 + 0.5), "BMP": lambda d: int(d * 39.3701 + 0.5)}
_XMP_KEY = "XML:com.adobe.xmp"  # the PNG iTXt keyword for XMP
_MAX_DROPPED = 24

# PNG chunks: pixels, palette and transparency are kept by the pixel meta; Pillow reads the metadata
# ones; the raw ones are kept as they are (Pillow writes them from PngInfo), each once, sPLT any number.
_PNG_PIXELS = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS"}
_PNG_READ = {b"iCCP", b"gAMA", b"sRGB", b"pHYs", b"eXIf", b"tEXt", b"zTXt", b"iTXt"}
_PNG_RAW = {b"cHRM", b"cICP", b"sBIT", b"tIME", b"bKGD", b"hIST", b"sPLT"}

# TIFF tags that describe the pixel coding (re-made by the writer), and the metadata tags kept
_TIFF_CODING = {254, 255, 256, 257, 258, 259, 262, 263, 264, 265, 266, 273, 277, 278, 279, 280, 281, 284, 290,
                291, 292, 293, 297, 317, 320, 322, 323, 324, 325, 338, 339, 340, 341, 347, 512, 513, 514, 515,
                517, 518, 519, 520, 521, 529, 530, 531, 532, 34675}  # 34675 (ICC) is kept as "icc"
_TIFF_STRINGS = {269, 270, 271, 272, 285, 305, 306, 315, 316, 33432}  # DocumentName ... Copyright
_TIFF_INTS = {274, 296}  # Orientation, ResolutionUnit
_TIFF_RATIONALS = {282, 283}  # X/YResolution
_TIFF_BYTES = {700, 33723, 34377}  # XMP, IPTC, Photoshop
_TIFF_NAMES = {700: "XMP", 33723: "IPTC", 34377: "Photoshop", 34665: "EXIF", 34853: "GPS", 330: "SubIFDs"}

_JPEG_KEPT = (("APP0", b"JFIF\0"), ("APP14", b"Adobe"),  # coding parameters, re-made by the PNG
              ("APP1", b"Exif\0"), ("APP1", b"http://ns.adobe.com/xap/1.0/\0"), ("APP2", b"ICC_PROFILE\0"),
              ("COM", b""))
_JPEG_NAMES = ((b"JFXX", "JFIF thumbnail"), (b"http://ns.adobe.com/xmp/extension/", "extended XMP"),
               (b"MPF", "MPF"), (b"FPXR", "FlashPix"), (b"Photoshop 3.0", "Photoshop"))


def preserved_note(meta: dict) -> str:
    """"" when nothing of the input's metadata is lost, else a short sentence naming what isn't kept."""
    dropped = meta.get("dropped") or []
    return f"not preserved: {', '.join(map(str, dropped))}" if dropped else ""


def _with_metadata(meta: dict, pil: PIL.Image.Image, data: bytes) -> dict:
    """`meta` plus the metadata of `pil` that meta["format"] can hold, and "dropped" naming the rest."""
    target = meta["format"]
    found, dropped = _found_metadata(pil, data)
    if target == "PNG":
        _text_for_png(found, dropped)
    holds = _HOLDS.get(target, set())
    for key, value in found.items():
        if key not in holds:
            dropped.add(_NAMES.get(key, key))
        elif key == "dpi":
            lean = _lean_dpi(value, _DPI_STORED[target])
            if lean is None:
                dropped.add("dpi")
            else:
                meta["dpi"] = lean
        else:
            meta[key] = (base64.b64encode(value).decode("ascii") if key in _BASE64_KEYS
                         else value.decode("latin-1") if key == "comment" else value)
    _fit_budget(meta, dropped)
    if dropped:
        names = sorted(dropped)
        meta["dropped"] = names if len(names) <= _MAX_DROPPED else [*names[:_MAX_DROPPED - 1], "more"]
    return meta


def _found_metadata(pil: PIL.Image.Image, data: bytes) -> tuple[dict, set[str]]:
    """What `pil` holds besides pixels, by meta key (bytes still raw), and names of what can't be kept."""
    fmt, info = pil.format, pil.info
    if fmt == "PNG":
        return _png_metadata(pil, data)
    if fmt == "TIFF":
        return _tiff_metadata(pil)
    found, dropped = _common_metadata(info), set()
    if fmt in ("JPEG", "MPO"):
        comments = [payload for marker, payload in pil.applist if marker == "COM"]
        if comments:
            found["comment"] = comments
        dropped |= {_jpeg_segment_name(marker, payload) for marker, payload in pil.applist
                    if not any(marker == m and payload.startswith(p) for m, p in _JPEG_KEPT)}
    elif fmt == "GIF":
        if isinstance(info.get("comment"), bytes) and info["comment"]:
            found["comment"] = info["comment"]
        if info.get("background"):
            found["background"] = int(info["background"])
        block = (info.get("extension") or (b"",))[0]
        if block and not block.startswith(b"NETSCAPE2.0"):  # a loop count means nothing for one frame
            dropped.add("XMP" if block.startswith(b"XMP DataXMP") else "GIF application extension")
    elif fmt in ("BMP", "DIB") and len(data) >= 74:
        # a V5 header can embed or link an ICC profile, which Pillow neither reads nor writes
        if int.from_bytes(data[14:18], "little") == 124 and data[70:74] in (b"DEBM", b"KNIL"):
            dropped.add("ICC profile")
    return found, dropped


def _common_metadata(info: dict) -> dict:
    """ICC profile, dpi, EXIF (without its "Exif\\0\\0" prefix) and XMP from Pillow's info, where present."""
    found: dict = {}
    if isinstance(info.get("icc_profile"), bytes) and info["icc_profile"]:
        found["icc"] = info["icc_profile"]
    if _is_dpi(info.get("dpi")):
        found["dpi"] = tuple(float(d) for d in info["dpi"])
    if isinstance(info.get("exif"), bytes) and info["exif"]:
        exif = info["exif"]
        found["exif"] = exif[6:] if exif.startswith(b"Exif\0") else exif
    if isinstance(info.get("xmp"), bytes) and info["xmp"]:
        found["xmp"] = info["xmp"]
    return found


def _is_dpi(dpi: object) -> bool:
    return (isinstance(dpi, tuple) and len(dpi) == 2
            and all(isinstance(d, numbers.Real) and math.isfinite(d) and d >= 0 for d in dpi))


def _jpeg_segment_name(marker: str, payload: bytes) -> str:
    return next((name for prefix, name in _JPEG_NAMES if payload.startswith(prefix)), marker)


def _png_metadata(pil: PIL.Image.Image, data: bytes) -> tuple[dict, set[str]]:
    """A PNG's metadata: from Pillow where it reads it (iCCP, gAMA, sRGB, pHYs, text), the rest from its chunks."""
    found: dict = {}
    dropped: set[str] = set()
    seen: set[bytes] = set()
    text_kinds: dict[str, str] = {}  # text key -> "t", "z", "i" or "iz" (tEXt, zTXt, iTXt, compressed iTXt)
    chunks: list[list] = []
    for kind, body, after_idat in _png_chunks(data):
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            key, _, rest = body.partition(b"\0")
            key_str = key.decode("latin-1")
            if key_str in text_kinds:
                dropped.add("duplicate text keys")  # Pillow keeps the last
            text_kinds[key_str] = {b"tEXt": "t", b"zTXt": "z"}.get(kind) or ("iz" if rest[:1] == b"\1" else "i")
        elif kind == b"eXIf" and "exif" not in found:
            found["exif"] = body
        elif kind in _PNG_PIXELS or kind in _PNG_READ:
            pass
        elif (kind in _PNG_RAW and (kind not in seen or kind == b"sPLT")) or _safe_private_chunk(kind):
            chunks.append([kind.decode("ascii"), base64.b64encode(body).decode("ascii"), *([1] * after_idat)])
        else:
            dropped.add(kind.decode("ascii") if kind.isalpha() else "unknown chunks")
        seen.add(kind)
    info = pil.info
    icc = info.get("icc_profile")
    if icc:
        found["icc"] = icc
    elif b"iCCP" in seen:
        dropped.add("iCCP")  # Pillow could not read it
    if isinstance(info.get("gamma"), (int, float)):
        found["gamma"] = info["gamma"]
    if isinstance(info.get("srgb"), int):
        if icc:
            dropped.add("sRGB")  # a PNG may not have both, and Pillow writes iCCP
        else:
            found["srgb"] = info["srgb"]
    if _is_dpi(info.get("dpi")):
        found["dpi"] = tuple(float(d) for d in info["dpi"])
    elif b"pHYs" in seen:
        dropped.add("pHYs")  # aspect ratio only (no unit): Pillow writes pHYs from dpi
    text = [_png_text_entry(key, value, text_kinds.get(key, "t")) for key, value in pil.text.items()]
    if text:
        found["text"] = text
    if set(text_kinds) - set(pil.text):
        dropped.add("iTXt")  # Pillow could not decode it
    if chunks:
        found["chunks"] = chunks
    return found, dropped


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes, bool]]:
    """(type, body, after IDAT) of each ancillary chunk of a PNG file Pillow has read."""
    view, pos, after_idat = memoryview(data), 8, False
    while pos + 8 <= len(data):
        length, kind = int.from_bytes(data[pos:pos + 4], "big"), bytes(data[pos + 4:pos + 8])
        if kind == b"IEND":
            return
        after_idat |= kind == b"IDAT"
        if kind not in (b"IDAT", b"IHDR", b"PLTE"):
            yield kind, bytes(view[pos + 8:pos + 8 + length]), after_idat
        pos += 12 + length


def _safe_private_chunk(kind: bytes) -> bool:
    """A private chunk (lowercase 2nd letter) that a re-encoding editor may copy (lowercase 4th letter)."""
    return kind.isalpha() and kind[1:2].islower() and kind[3:4].islower()


def _png_text_entry(key: str, value: str, kind: str) -> list:
    """[key, text] for tEXt, [key, text, "z"] for zTXt, [key, text, "i" or "iz", language, translated key]."""
    if isinstance(value, iTXt):
        return [key, str(value), kind if kind.startswith("i") else "i", value.lang or "", value.tkey or ""]
    return [key, str(value), "z"] if kind == "z" else [key, str(value)]


def _text_for_png(found: dict, dropped: set[str]) -> None:
    """Move XMP and comments from other formats into PNG text entries (iTXt XMP, tEXt or iTXt "Comment")."""
    text = found.get("text", [])
    if "xmp" in found:
        try:
            text.append([_XMP_KEY, found.pop("xmp").decode("utf-8"), "i", "", ""])
        except UnicodeDecodeError:
            dropped.add("XMP")
    if "comment" in found:
        comments = found.pop("comment")
        for c in comments if isinstance(comments, list) else [comments]:
            try:
                text.append(["Comment", c.decode("utf-8")])
            except UnicodeDecodeError:
                text.append(["Comment", c.decode("latin-1")])
    if text:
        found["text"] = text


def _tiff_metadata(pil: PIL.Image.Image) -> tuple[dict, set[str]]:
    """A TIFF's ICC profile and the metadata tags _tiff_value keeps; the other non-coding tags by name."""
    found, dropped, tags = _common_metadata({"icc_profile": pil.info.get("icc_profile")}), set(), {}
    for tag in pil.tag_v2:
        if tag in _TIFF_CODING:
            continue
        value = _tiff_value(tag, pil.tag_v2.get(tag))
        if value is None:
            name = _TIFF_NAMES.get(tag) or TiffTags.lookup(tag).name
            dropped.add(name if name != "unknown" else f"TIFF tag {tag}")
        else:
            tags[str(tag)] = value
    if tags:
        found["tiff"] = tags
    return found, dropped


def _tiff_value(tag: int, value: object) -> object:
    """The JSON-able value of a kept TIFF tag (str, int, [numerator, denominator], base64), else None."""
    if tag in _TIFF_STRINGS and isinstance(value, str):
        return value
    if tag in _TIFF_INTS and isinstance(value, int):
        return value
    if tag in _TIFF_RATIONALS and isinstance(value, IFDRational) and value.denominator:
        return [int(value.numerator), int(value.denominator)]
    if tag in _TIFF_BYTES and isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return None


def _lean_dpi(dpi: tuple[float, float], stored) -> list | None:
    """`dpi` with the fewest decimals that the format still stores as the same pixels per metre (None if
    it can't store it)."""
    lean = []
    for d in dpi:
        want = stored(d)
        if not 0 <= want < 2 ** 31:
            return None
        r = next((r for r in (round(d, digits) for digits in range(17)) if stored(r) == want or r == d), d)
        lean.append(int(r) if r == int(r) else r)
    return lean


def _fit_budget(meta: dict, dropped: set[str]) -> None:
    """Drop the biggest metadata items until meta's JSON fits META_BUDGET."""
    def size(value: object) -> int:
        return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    while size(meta) > META_BUDGET - 2048:  # room for "dropped"
        key = max((k for k in _NAMES if k in meta), key=lambda k: size(meta[k]), default=None)
        if key is None:
            return
        del meta[key]
        dropped.add(_NAMES[key])


def _metadata_options(meta: dict, fmt: str) -> dict:
    """Pillow save options that write the metadata keys of `meta` that `fmt` holds; ValueError if malformed."""
    try:
        return _options(meta, fmt)
    except (TypeError, KeyError, IndexError, AttributeError, struct.error, OverflowError) as e:
        raise ValueError(f"malformed image metadata in meta ({type(e).__name__}: {e})") from None


def _options(meta: dict, fmt: str) -> dict:
    holds, opts = _HOLDS.get(fmt, set()), {}
    raw = {k: base64.b64decode(meta[k], validate=True) for k in _BASE64_KEYS if k in meta and k in holds}
    for key, option in (("icc", "icc_profile"), ("exif", "exif"), ("xmp", "xmp")):
        if key in raw:
            opts[option] = raw[key]
    if "dpi" in holds:
        dpi = meta.get("dpi")
        if dpi is not None:
            opts["dpi"] = (float(dpi[0]), float(dpi[1]))
        elif fmt == "BMP":
            opts["dpi"] = (0, 0)  # Pillow writes 96 dpi by default: write none, as read
    if fmt == "PNG":
        info = _png_info(meta)
        if info.chunks:
            opts["pnginfo"] = info
    elif fmt == "TIFF" and meta.get("tiff"):
        opts["tiffinfo"] = _tiff_info(meta["tiff"])
    elif fmt == "GIF":
        if "comment" in meta:
            opts["comment"] = meta["comment"].encode("latin-1")
        if "background" in meta:
            opts["background"] = int(meta["background"])
    return opts


def _png_info(meta: dict) -> PngInfo:
    """The PngInfo chunks of meta's "gamma", "srgb", "text" and "chunks"."""
    info = PngInfo()
    if "gamma" in meta:
        info.add(b"gAMA", struct.pack(">I", round(meta["gamma"] * 100000)))
    if "srgb" in meta:
        info.add(b"sRGB", bytes([meta["srgb"]]))
    for key, value, *kind in meta.get("text", []):
        if not kind:
            info.add_text(key, value)
        elif kind[0] == "z":
            info.add_text(key, value, zip=True)
        else:
            info.add_itxt(key, value, kind[1], kind[2], zip=kind[0] == "iz")
    for kind, body, *after_idat in meta.get("chunks", []):
        info.add(kind.encode("ascii"), base64.b64decode(body, validate=True), bool(after_idat))
    return info


def _tiff_info(tags: dict) -> ImageFileDirectory_v2:
    """The TIFF tags of meta["tiff"] (see _tiff_value) as Pillow's tiffinfo."""
    ifd = ImageFileDirectory_v2()
    for key, value in tags.items():
        tag = int(key)
        if tag in _TIFF_RATIONALS:
            ifd[tag] = IFDRational(int(value[0]), int(value[1]))
        elif tag in _TIFF_BYTES:
            ifd[tag] = base64.b64decode(value, validate=True)
        elif tag in _TIFF_STRINGS:
            ifd[tag] = value.encode("latin-1")  # as Pillow read it (a str would be written as ASCII)
        elif tag in _TIFF_INTS:
            ifd[tag] = int(value)
    return ifd


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
