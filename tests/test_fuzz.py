"""Fuzzing the .ardm reader and decoder through the API, on mutated copies of small real files.

Whatever the bytes, api.decompress / api.decompress_image may only raise ArdmError subclasses (never
another exception, never hang), and a decode that succeeds must give back the original's pixels.
The images are 8×8 so that a decode takes milliseconds; the file runs in well under 30 s.
"""
from __future__ import annotations

import dataclasses
import io
import struct
import zlib
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from PIL import Image

from ardmzip import api, container, media
from ardmzip.errors import ArdmError, NotArdmError, TruncatedError

from conftest import DATA

# Deterministic (the same examples on every run, no example database): a CI check, not a search. The
# deadline catches a hang, not a slow machine: a crafted 12×12 header asking for 229 network calls
# takes ~4-6 s on 2 busy cores.
FUZZ = settings(max_examples=300, deadline=30000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])

# Re-packed headers may declare any shape; decoding one costs up to a network call per element, so
# shapes above this are only parsed here (test_huge_shape_fails_before_planning covers those).
MAX_DECODED_ELEMENTS = 512


@lru_cache(maxsize=None)
def _files() -> dict[str, tuple[bytes, media.Image]]:
    """Small .ardm files of every method and plane layout: name -> (file bytes, the image coded)."""
    photo = np.asarray(Image.open(DATA / "crop64.png").convert("RGB"))
    rng = np.random.default_rng(7)
    alpha = np.full((8, 8), 255, np.uint8)
    alpha[:3] = 0
    sources = {
        "ardm-rgb": (photo[:8, 8:16], False),
        "ardm-grey": (photo[8:16, :8, 1], False),
        "ardm-rgba": (np.dstack([photo[16:24, :8], alpha]), False),
        "raw": (rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), True),
        "deflate": (np.tile(np.arange(8, dtype=np.uint8) * 30, (8, 1)), True),
    }
    files = {}
    for name, (array, fallback) in sources.items():
        img = media.image_from_array(array)
        blob, report = api.compress_image(img, budget=2, fallback=fallback)
        assert report.method == name.split("-")[0], (name, report.method)
        files[name] = (blob, img)
    buf = io.BytesIO()
    Image.fromarray(photo[:8, :8]).quantize(5).save(buf, "PNG")  # mode P: palette in the meta JSON
    files["palette"] = (api.compress(buf.getvalue(), budget=2), media.read_image(buf.getvalue()))
    return files


NAMES = ["ardm-rgb", "ardm-grey", "ardm-rgba", "raw", "deflate", "palette"]


def _same_pixels(a: media.Image, b: media.Image) -> bool:
    return len(a.planes) == len(b.planes) and all(
        x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a.planes, b.planes))


def _decodes_right_or_refuses(blob: bytes, original: media.Image) -> str:
    """Decode blob, then write the image file; only ArdmError may stop it, and a decode that succeeds
    gives back the original's pixels. Returns the error's class name, or "ok"."""
    try:
        img = api.decompress_image(blob)
        written = media.write_image(img)
    except ArdmError as e:
        return type(e).__name__
    assert _same_pixels(img, original), "a damaged file decoded to other pixels"
    assert _same_pixels(media.read_image(written), original), "the written file holds other pixels"
    return "ok"


def _with_crc(body: bytes) -> bytes:
    """body (everything but the CRC-32) with a valid CRC-32 appended."""
    return body + struct.pack("<I", zlib.crc32(body))


def _decoded_elements(blob: bytes) -> int | None:
    """The header's element count, or None if the header is refused (which is all we test then)."""
    try:
        return int(np.prod(container.read_header(blob).shape, dtype=object))
    except ArdmError:
        return None


# Headers with a valid CRC-32 that no writer makes, each of which once let a non-ArdmError escape
# (found by the fuzz tests below): they must give an ArdmError or the original pixels.
_CRAFTED = [
    ("ardm-rgb", {"seed": 1}),
    ("ardm-rgb", {"model_id": "nope"}),
    ("ardm-rgb", {"arithmetic": "int-exact"}),
    ("ardm-rgb", {"shape": (8, 8, 5)}),
    ("ardm-rgb", {"shape": (8, 8, 1)}),
    ("raw", {"media": "audio"}),
    ("ardm-rgb", {"shape": (64,)}),
    ("ardm-rgb", {"budget": 0}),
    ("raw", {"meta": {"width": 3}}),
    ("raw", {"meta": {"transparency": 5}}),
    ("raw", {"meta": {"icc": "not base64!"}}),
    ("raw", {"meta": {"dpi": [1.0]}}),
    ("ardm-grey", {"meta": {"mode": "1"}}),
    ("ardm-grey", {"meta": {"mode": "P"}}),
    ("palette", {"meta": {"palette_mode": "XYZ"}}),
    ("palette", {"meta": {"palette": [1.5, 2, 3]}}),
    ("palette", {"meta": {"palette": [256, 0, 0]}}),
]


# ------------------------------------------------------------------------------------ mutations
_OPS = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 1 << 16), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 16), st.integers(1, 8)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 16), st.just(0)),
)


def _mutate(data: bytes, ops: list[tuple]) -> bytes:
    b = bytearray(data)
    for op, pos, arg in ops:
        at = pos % (len(b) + 1)
        if op == "flip" and at < len(b):
            b[at] ^= 1 << arg
        elif op == "set" and at < len(b):
            b[at] = arg
        elif op == "insert":
            b[at:at] = arg
        elif op == "delete":
            del b[at:at + arg]
        elif op == "truncate":
            del b[at:]
    return bytes(b)


class TestDamagedFiles:
    """Damage as a disk or a transfer makes it: the CRC-32 is left as it was."""

    @pytest.mark.parametrize("name", NAMES)
    def test_truncated_at_every_offset(self, name: str) -> None:
        blob, _ = _files()[name]
        for k in range(len(blob)):
            with pytest.raises((TruncatedError, NotArdmError)):
                api.decompress(blob[:k])

    @pytest.mark.parametrize("name", ["ardm-rgb", "raw"])
    def test_every_bit_flip(self, name: str) -> None:
        blob, original = _files()[name]
        for i in range(8 * len(blob)):
            damaged = bytearray(blob)
            damaged[i // 8] ^= 1 << (i % 8)
            assert _decodes_right_or_refuses(bytes(damaged), original) != "ok", i

    @FUZZ
    @given(name=st.sampled_from(NAMES), ops=st.lists(_OPS, min_size=1, max_size=4))
    def test_random_mutations(self, name: str, ops: list[tuple]) -> None:
        blob, original = _files()[name]
        damaged = _mutate(blob, ops)
        outcome = _decodes_right_or_refuses(damaged, original)
        assert outcome != "ok" or damaged == blob


class TestDamageBehindAValidCrc:
    """Mutations with the CRC-32 recomputed, so that the header checks, the model lookup, the ANS
    decoder and the pixel checksum each meet damaged input (as from a buggy or hostile writer)."""

    @settings(FUZZ, phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False)
    @given(name=st.sampled_from(NAMES), ops=st.lists(_OPS, min_size=1, max_size=3))
    def test_random_mutations(self, name: str, ops: list[tuple]) -> None:
        blob, original = _files()[name]
        damaged = _with_crc(_mutate(blob[:-4], ops))
        elements = _decoded_elements(damaged)
        if elements is not None and elements > MAX_DECODED_ELEMENTS:
            return
        _decodes_right_or_refuses(damaged, original)

    @FUZZ
    @given(name=st.sampled_from(NAMES), data=st.data())
    def test_payload_words(self, name: str, data: st.DataObject) -> None:
        """Any payload of any length behind a valid header: only ArdmError, or the original pixels."""
        blob, original = _files()[name]
        header, words = container.unpack(blob)
        new = data.draw(st.one_of(
            st.lists(st.integers(0, (1 << 32) - 1), max_size=2 * len(words) + 2),
            st.lists(st.sampled_from([0, 1, 0xFFFFFFFF, *map(int, words[:4])]), max_size=len(words) + 2)))
        _decodes_right_or_refuses(container.pack(header, np.array(new, dtype=np.uint32)), original)


# ---------------------------------------------------------------------------- crafted headers
_META = st.fixed_dictionaries({}, optional={
    "mode": st.sampled_from(["L", "1", "P", "RGB", "RGBA", "LA", "I;16", "CMYK", "", "RGBX"]),
    "format": st.sampled_from(["PNG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "JPEG", "XYZ", ""]),
    "palette": st.lists(st.integers(-1, 300), max_size=20),
    "palette_mode": st.sampled_from(["RGB", "RGBA", "L", "?"]),
    "transparency": st.one_of(st.integers(-1, 300), st.lists(st.integers(0, 300), max_size=5)),
    "width": st.integers(0, 20), "height": st.integers(0, 20),
    "icc": st.sampled_from(["", "AAAA", "not base64!"]),
    "dpi": st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), max_size=3),
})


@st.composite
def _header_changes(draw) -> dict:
    """A few header fields replaced by arbitrary values that pack() accepts."""
    fields = {
        "shape": st.lists(st.integers(1, 12), min_size=1, max_size=4).map(tuple),
        "meta": _META,
        "method": st.sampled_from(["ardm", "raw", "deflate"]),
        "media": st.sampled_from(["image", "audio"]),
        "arithmetic": st.sampled_from(["float32", "int-exact"]),
        "model_id": st.sampled_from(["img1", "nope", "", "x" * 64]),
        "model_hash": st.binary(min_size=4, max_size=4),
        "budget": st.one_of(st.integers(0, 300), st.just((1 << 32) - 1)),
        "seed": st.one_of(st.integers(0, 3), st.just((1 << 64) - 1)),
        "content_hash": st.binary(min_size=4, max_size=4),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=3, unique=True))
    return {k: draw(fields[k]) for k in chosen}


def _crafted(name: str, changes: dict) -> tuple[bytes, media.Image]:
    blob, original = _files()[name]
    header, words = container.unpack(blob)
    if "meta" in changes:
        changes = {"meta": {**header.meta, **changes["meta"]}}
    return container.pack(dataclasses.replace(header, **changes), words), original


class TestCraftedHeaders:
    """Headers that pack() accepts, with any field values, in front of a real payload."""

    @pytest.mark.parametrize("name, changes", [
        pytest.param(name, changes, id="-".join(map(str, changes.items()))) for name, changes in _CRAFTED])
    def test_refused_or_decoded_right(self, name: str, changes: dict) -> None:
        _decodes_right_or_refuses(*_crafted(name, changes))

    @settings(FUZZ, phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False)
    @given(name=st.sampled_from(NAMES), changes=_header_changes())
    def test_any_valid_header_over_a_real_payload(self, name: str, changes: dict) -> None:
        blob, original = _files()[name]
        header, words = container.unpack(blob)
        try:
            crafted = container.pack(dataclasses.replace(header, **changes), words)
        except ValueError:  # pack refuses, e.g. an empty model id for method "ardm"
            return
        elements = _decoded_elements(crafted)
        if elements is None or elements <= MAX_DECODED_ELEMENTS:
            _decodes_right_or_refuses(crafted, original)

    def test_huge_shape_fails_before_planning(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A 46340×46340 image (2^31 elements, the container's limit) would need a 16 GiB order
        array: it must be refused from the header, before anything that size is allocated."""
        crafted, _ = _crafted("ardm-grey", {"shape": (46340, 46340)})

        def no_planning(*args, **kw):
            raise AssertionError("the decoder started planning a 2^31-element image")

        monkeypatch.setattr(api, "make_plan", no_planning)
        with pytest.raises(ArdmError):
            api.decompress_image(crafted)

    def test_payload_ending_in_a_zero_word(self) -> None:
        """An ANS stream never ends in a zero word: a file whose payload does is corrupt."""
        blob, _ = _files()["ardm-rgb"]
        header, words = container.unpack(blob)
        with pytest.raises(ArdmError):
            api.decompress_image(container.pack(header, np.append(words, np.uint32(0))))
