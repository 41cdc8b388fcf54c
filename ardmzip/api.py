"""compress()/decompress() on arrays and bytes: the one pipeline that the CLI, the tests and the
benchmarks all call.

    blob = compress(png_bytes)                  # or compress(uint8 array), budget=…, model=…
    png_bytes = decompress(blob)                # the original file format, same pixels
    array = decompress_array(blob)              # (H, W) / (H, W, 3) / (H, W, 4) uint8
"""
from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import container, media
from .codec import decode_plane, encode_plane, make_plan
from .coder import Decoder, Encoder
from .errors import ChecksumMismatchError, CorruptError, UnsupportedInputError
from .registry import Model, default_model_id, find_model, load_model
from .schedule import expected_bits

DEFAULT_SEED = 0


@dataclass
class Report:
    """What a compression measured: sizes in bytes and bits, the model's own −log2 p, steps used."""
    file_bytes: int
    payload_bits: int
    model_bits: float      # Σ −log2 p of the coded values under the model (the ideal code length)
    predicted_bits: float  # what the schedule predicts from the model's loss curve (validation photos)
    dims: int              # number of coded subpixels / samples
    steps: int             # network calls
    method: str = "ardm"   # what the file stores: "ardm", or the "raw"/"deflate" fallback when smaller

    @property
    def bpd(self) -> float:
        return 8 * self.file_bytes / self.dims


LEVEL_FACTORS = {1: (1, 25), 2: (1, 10), 3: (1, 5), 4: (2, 5), 5: (3, 5), 6: (1, 1), 7: (2, 1), 8: (4, 1), 9: (8, 1)}


def level_budget(level: int, model: str | None = None, media_kind: str = "image") -> int:
    """The step budget of compression level 1 (fastest) … 9 (smallest): a fixed fraction or multiple
    of the model's default budget d (level 6 = d), at least 1 network call."""
    if level not in LEVEL_FACTORS:
        raise UnsupportedInputError(f"compression level must be 1 … 9 (got {level})")
    num, den = LEVEL_FACTORS[level]
    return max(1, _model(model, media_kind).default_budget * num // den)


def _model(model: str | None, media_kind: str) -> Model:
    return load_model(model or default_model_id(media_kind))


def _samples(img: media.Image) -> np.ndarray:
    """All coded values of an image as one flat uint8 array (the checksum's input)."""
    return np.concatenate([p.reshape(-1) for p in img.planes]) if img.planes else np.zeros(0, np.uint8)


def _step_counter(total: int, progress: Callable[[int, int], None] | None) -> Callable[[int], None]:
    """Turns the codec's per-step ticks into progress(done, total) calls."""
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total)

    return tick


def compress_image(img: media.Image, *, budget: int | None = None, model: str | None = None,
                   seed: int = DEFAULT_SEED, progress: Callable[[int, int], None] | None = None,
                   fallback: bool = True) -> tuple[bytes, Report]:
    """Code the planes of an image; returns the .ardm bytes and a Report.

    With `fallback` (the default) the file stores the samples raw or deflated instead whenever that is
    smaller than the model's code.
    """
    m = _model(model, "image")
    budget = m.default_budget if budget is None else budget
    if budget < 1:
        raise UnsupportedInputError(f"budget must be at least 1 network call (got {budget})")
    plans = [make_plan(m, p.shape, budget, seed) for p in img.planes]
    total = sum(pl.steps for pl in plans)
    predicted = _predicted_bits(m, plans)
    tick = _step_counter(total, progress)
    enc, model_bits = Encoder(), 0.0
    for plane, plan in reversed(list(zip(img.planes, plans))):  # stack: last plane pushed first
        model_bits += encode_plane(m, plane, plan, enc, tick)
    samples, shape = _samples(img), _shape_of(img)
    header = container.Header(media="image", method="ardm", arithmetic=m.arithmetic, model_id=m.id,
                              model_hash=m.hash_prefix, budget=budget, seed=seed,
                              shape=shape, meta=_stored_meta(img.meta, shape),
                              content_hash=container.content_hash(samples))
    candidates = [("ardm", enc.words()), *(_stored_payloads(samples) if fallback else [])]
    method, words = min(candidates, key=lambda c: len(c[1]))
    if method != "ardm":  # never lose to the trivial: the samples stored, or deflated
        header = dataclasses.replace(header, method=method, model_id="", model_hash=bytes(4), budget=0, seed=0)
    blob = container.pack(header, words)
    return blob, Report(len(blob), 32 * len(words), model_bits, predicted, samples.size, total, method)


def _words(data: bytes) -> np.ndarray:
    return np.frombuffer(data + bytes(-len(data) % 4), dtype="<u4").astype(np.uint32)


def _stored_payloads(samples: np.ndarray) -> list[tuple[str, np.ndarray]]:
    raw = samples.tobytes()
    return [("raw", _words(raw)), ("deflate", _words(zlib.compress(raw, 9)))]


def _unstore(method: str, words: np.ndarray, n: int) -> np.ndarray:
    """Samples (n,) uint8 of a raw or deflate payload; CorruptError unless exactly n bytes come out."""
    data = words.astype("<u4").tobytes()
    if method == "deflate":
        try:
            d = zlib.decompressobj()
            data = d.decompress(data, n + 1)
        except zlib.error as e:
            raise CorruptError(f"file is corrupt: deflate payload: {e}") from None
    if len(data) < n or (method == "deflate" and len(data) != n):
        raise CorruptError(f"file is corrupt: stored payload holds {len(data)} bytes, {n} expected")
    return np.frombuffer(data[:n], dtype=np.uint8)


def _predicted_bits(m: Model, plans: list) -> float:
    return sum(expected_bits(m.curve, pl.bounds, pl.n_vars) for pl in plans)


def predict_bits(img: media.Image, *, budget: int | None = None, model: str | None = None) -> float:
    """Bits the schedule predicts for an image from the model's loss curve, without running the net."""
    m = _model(model, "image")
    b = m.default_budget if budget is None else budget
    return _predicted_bits(m, [make_plan(m, p.shape, b, DEFAULT_SEED) for p in img.planes])


def _shape_of(img: media.Image) -> tuple[int, ...]:
    """(H, W) for one-plane grey/palette images, else (H, W, channels), as FORMAT.md's Dims."""
    h, w = img.planes[0].shape[:2]
    c = sum(1 if p.ndim == 2 else p.shape[2] for p in img.planes)
    return (h, w) if c == 1 else (h, w, c)


_MODE_BY_CHANNELS = {2: "LA", 3: "RGB", 4: "RGBA"}


def _implied_meta(shape: tuple[int, ...]) -> dict:
    """Meta a file need not store because Dims imply it (every byte counts on a 32×32 crop)."""
    mode = "L" if len(shape) == 2 else _MODE_BY_CHANNELS.get(shape[2], "")
    return {"mode": mode, "format": "PNG", "height": shape[0], "width": shape[1]}


def _stored_meta(meta: dict, shape: tuple[int, ...]) -> dict:
    implied = _implied_meta(shape)
    return {k: v for k, v in meta.items() if implied.get(k, object()) != v}


def _full_meta(stored: dict, shape: tuple[int, ...]) -> dict:
    return {**_implied_meta(shape), **stored}


def _check_header(header: container.Header) -> None:
    """Refuse an image header that no writer makes, before anything is allocated for it."""
    shape = header.shape
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in _MODE_BY_CHANNELS):
        raise CorruptError(f"file is corrupt: {shape} is not an image shape (H, W) or (H, W, 2/3/4)")
    if shape[0] * shape[1] > media.MAX_PIXELS:
        raise CorruptError(f"file is corrupt or too large: it declares {shape[1]}×{shape[0]} pixels, "
                           f"at most {media.MAX_PIXELS} are supported")
    if header.method == "ardm" and header.budget < 1:
        raise CorruptError(f"file is corrupt: budget {header.budget} (at least 1 network call)")
    for key, size in (("height", shape[0]), ("width", shape[1])):
        if key in header.meta and header.meta[key] != size:
            raise CorruptError(f"file is corrupt: meta {key} {header.meta[key]!r} disagrees with the shape {shape}")


def _plane_shapes(header: container.Header) -> list[tuple[int, ...]]:
    """The plane shapes media.read_image produces for the stored mode (media.PLANE_LAYOUT)."""
    h, w = header.shape[:2]
    mode = _full_meta(header.meta, header.shape)["mode"]
    if mode not in media.PLANE_LAYOUT:
        raise UnsupportedInputError(f"file stores an image of mode {mode!r}, which this release cannot decode")
    return [(h, w, 3) if kind == "rgb" else (h, w) for kind in media.PLANE_LAYOUT[mode]]


def decompress_image(blob: bytes, *, progress: Callable[[int, int], None] | None = None) -> media.Image:
    """Inverse of compress_image; verifies the content checksum."""
    header, words = container.unpack(blob)
    if header.media != "image":
        raise UnsupportedInputError(f"file holds {header.media}, not an image")
    _check_header(header)
    shapes = _plane_shapes(header)
    if header.method in container.STORED_METHODS:
        sizes = [int(np.prod(s)) for s in shapes]
        planes = np.split(_unstore(header.method, words, sum(sizes)), np.cumsum(sizes)[:-1])
        return _checked(media.Image([p.reshape(s) for p, s in zip(planes, shapes)],
                                    _full_meta(header.meta, header.shape)), header)
    m = find_model(header.model_id, header.model_hash)
    if m.arithmetic != header.arithmetic:
        raise CorruptError(f"file says arithmetic {header.arithmetic}, but model {m.id} is {m.arithmetic}")
    plans = [make_plan(m, s, header.budget, header.seed) for s in shapes]
    tick = _step_counter(sum(pl.steps for pl in plans), progress)
    dec = Decoder(words)
    planes = [decode_plane(m, plan, dec, tick) for plan in plans]
    dec.finish()
    return _checked(media.Image(planes=planes, meta=_full_meta(header.meta, header.shape)), header)


def _checked(img: media.Image, header: container.Header) -> media.Image:
    if container.content_hash(_samples(img)) != header.content_hash:
        raise ChecksumMismatchError("decoded pixels do not match the checksum of the original: "
                                    "the file is corrupt or this machine computes the model differently")
    return img


def read_info(blob: bytes) -> container.Header:
    """The header of an .ardm file with its meta completed (mode, format, size), for `ardmzip info`."""
    h = container.read_header(blob)
    return dataclasses.replace(h, meta=_full_meta(h.meta, h.shape))


def compress(data: bytes | np.ndarray, *, name: str = "<input>", **kw) -> bytes:
    """Image file bytes (PNG, BMP, TIFF, …) or a uint8 array -> .ardm bytes."""
    img = media.image_from_array(data) if isinstance(data, np.ndarray) else media.read_image(data, name)
    return compress_image(img, **kw)[0]


def decompress(blob: bytes, **kw) -> bytes:
    """.ardm bytes -> image file bytes in the original format (PNG where it cannot be written losslessly)."""
    return media.write_image(decompress_image(blob, **kw))


def decompress_array(blob: bytes, **kw) -> np.ndarray:
    return media.image_to_array(decompress_image(blob, **kw))
