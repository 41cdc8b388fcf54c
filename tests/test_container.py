"""Tests of ardmzip.container: the .ardm file format of FORMAT.md."""
from __future__ import annotations

import dataclasses
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ardmzip import container
from ardmzip.container import MAGIC, MAX_ELEMENTS, Header, content_hash, pack, read_header, unpack
from ardmzip.errors import (CorruptError, FormatError, NotArdmError, TruncatedError,
                            UnsupportedVersionError)

IMAGE = Header(media="image", method="ardm", arithmetic="float32", model_id="img-rgb-v1",
               model_hash=bytes(range(1, 9)), budget=200, seed=12345, shape=(2, 3, 3),
               meta={"mode": "RGB", "format": "PNG"}, content_hash=b"\xaa" * 8)
WORDS = np.array([1, 0xFFFFFFFF, 0x12345678], dtype=np.uint32)

# offsets of the fixed fields (FORMAT.md, "Header fields")
VERSION_AT, FLAGS_AT, MEDIA_AT, RESERVED_AT = 8, 9, 10, 13


def recrc(body_and_crc: bytes) -> bytes:
    """The same file with its last 4 bytes replaced by the CRC-32 of the rest: crafts 'valid' files."""
    body = body_and_crc[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def with_byte(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + bytes([value]) + data[at + 1:]


def small_file() -> bytes:
    return pack(IMAGE, WORDS)


class TestRoundTrip:
    @pytest.mark.parametrize("header", [
        IMAGE,
        dataclasses.replace(IMAGE, shape=(7,)),
        dataclasses.replace(IMAGE, shape=(1, 2, 3, 4), arithmetic="int-exact"),
        dataclasses.replace(IMAGE, method="raw", model_id="", model_hash=bytes(8)),
        dataclasses.replace(IMAGE, method="raw", model_hash=bytes(8), budget=0, seed=0),
        dataclasses.replace(IMAGE, media="audio", shape=(44100, 2), budget=2**32 - 1, seed=2**64 - 1,
                            meta={"samplerate": 44100, "subtype": "PCM_16", "format": "WAV",
                                  "channels": 2}),
        dataclasses.replace(IMAGE, meta={"mode": "P", "palette": list(range(768)), "note": "ünïcødé ✓ 😀",
                                         "nested": {"a": [1.5, None, True]}}),
        dataclasses.replace(IMAGE, model_id="x" * 64, meta={}),
        dataclasses.replace(IMAGE, shape=(1 << 15, 1 << 16)),  # exactly MAX_ELEMENTS
    ])
    @pytest.mark.parametrize("words", [WORDS, np.zeros(0, np.uint32)])
    def test_pack_unpack(self, header: Header, words: np.ndarray) -> None:
        data = pack(header, words)
        got, payload = unpack(data)
        assert got == header
        assert payload.dtype == np.uint32 and payload.flags.c_contiguous
        np.testing.assert_array_equal(payload, words)
        assert read_header(data) == header

    def test_layout_starts_with_magic_and_ends_with_crc(self) -> None:
        data = small_file()
        assert data[:8] == MAGIC and data[VERSION_AT] == 1
        assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])
        # 56 fixed bytes + model id + dims + meta + words (FORMAT.md "Total size")
        meta_len = len(b'{"format":"PNG","mode":"RGB"}')
        assert len(data) == 56 + len(IMAGE.model_id) + 4 * 3 + meta_len + 4 * WORDS.size
        at = 15 + len(IMAGE.model_id)  # offsets of the FORMAT.md table
        assert data[at:at + 8] == IMAGE.model_hash
        assert struct.unpack_from("<IQB3I", data, at + 8) == (IMAGE.budget, IMAGE.seed, 3, *IMAGE.shape)

    def test_payload_is_a_copy(self) -> None:
        data = bytearray(small_file())
        _, payload = unpack(data)
        payload[0] = 99
        assert unpack(bytes(data))[1][0] == WORDS[0]

    def test_accepts_non_native_or_strided_payload(self) -> None:
        words = np.arange(10, dtype=">u4")[::2]
        np.testing.assert_array_equal(unpack(pack(IMAGE, words))[1], np.arange(0, 10, 2))

    def test_pack_is_deterministic(self) -> None:
        a = dataclasses.replace(IMAGE, meta={"b": 1, "a": 2})
        b = dataclasses.replace(IMAGE, meta={"a": 2, "b": 1})
        assert pack(a, WORDS) == pack(b, WORDS)


class TestPackRejects:
    @pytest.mark.parametrize("change", [
        {"media": "video"}, {"method": "zip"}, {"arithmetic": "float64"},
        {"model_id": ""}, {"model_id": "x" * 65}, {"model_id": "mödel"}, {"model_id": "a b"},
        {"model_hash": b"1234567"}, {"model_hash": "12345678"},
        {"method": "raw"},  # raw needs an all-zero model hash
        {"budget": -1}, {"budget": 2**32}, {"seed": 2**64}, {"seed": 1.5}, {"budget": True},
        {"shape": ()}, {"shape": (1, 1, 1, 1, 1)}, {"shape": (0, 3)}, {"shape": (2**32, 1)},
        {"shape": (1 << 16, 1 << 16)}, {"shape": (2.0, 3)}, {"shape": 5},
        {"meta": [1, 2]}, {"meta": {"x": float("nan")}}, {"meta": {"x": object()}},
        {"meta": {"x": "a" * (1 << 20)}}, {"content_hash": b""},
    ])
    def test_bad_header(self, change: dict) -> None:
        with pytest.raises(ValueError):
            pack(dataclasses.replace(IMAGE, **change), WORDS)

    @pytest.mark.parametrize("payload", [
        np.zeros(3, np.int32), np.zeros(3, np.uint64), np.zeros((2, 2), np.uint32), [1, 2, 3],
    ])
    def test_bad_payload(self, payload: object) -> None:
        with pytest.raises(ValueError):
            pack(IMAGE, payload)  # type: ignore[arg-type]

    def test_not_a_header(self) -> None:
        with pytest.raises(ValueError):
            pack({"media": "image"}, WORDS)  # type: ignore[arg-type]


class TestUnpackErrors:
    def test_empty(self) -> None:
        with pytest.raises(NotArdmError, match="empty"):
            unpack(b"")

    def test_short(self) -> None:
        with pytest.raises(NotArdmError):
            unpack(MAGIC[:5])

    def test_bad_magic(self) -> None:
        with pytest.raises(NotArdmError, match="bad magic number"):
            unpack(b"\x89PNG\r\n\x1a\n" + small_file()[8:])

    @pytest.mark.parametrize("old, new", [(b"\r\n", b"\n"), (b"\n", b"\r\n"), (b"\x89", b"\x09")])
    def test_text_mode_damage(self, old: bytes, new: bytes) -> None:
        with pytest.raises(NotArdmError, match="text-mode"):
            unpack(small_file().replace(old, new, 1))

    def test_no_text_mode_hint_for_other_damage(self) -> None:
        with pytest.raises(NotArdmError, match=r"bad magic number\)"):
            unpack(with_byte(small_file(), 7, 0x1B))

    def test_newer_version(self) -> None:
        with pytest.raises(UnsupportedVersionError, match="version 2 .*reads version 1"):
            unpack(recrc(with_byte(small_file(), VERSION_AT, 2)))

    def test_version_checked_before_length_and_crc(self) -> None:
        with pytest.raises(UnsupportedVersionError, match="version 7"):
            unpack(MAGIC + b"\x07")

    @pytest.mark.parametrize("at, value, message", [
        (FLAGS_AT, 0x80, "reserved"), (RESERVED_AT, 1, "reserved"),
        (MEDIA_AT, 9, "unknown media code 9"), (MEDIA_AT + 1, 2, "unknown method code 2"),
        (MEDIA_AT + 2, 5, "unknown arithmetic code 5"),
    ])
    def test_reserved_and_codes(self, at: int, value: int, message: str) -> None:
        with pytest.raises(CorruptError, match=message):
            unpack(recrc(with_byte(small_file(), at, value)))

    def test_crc_mismatch(self) -> None:
        data = small_file()
        with pytest.raises(CorruptError, match="CRC-32 mismatch"):
            unpack(with_byte(data, len(data) - 10, data[-10] ^ 1))

    def test_trailing_garbage(self) -> None:
        with pytest.raises(CorruptError, match="3 trailing bytes"):
            unpack(small_file() + b"xyz")

    def test_truncated_message(self) -> None:
        data = small_file()
        with pytest.raises(TruncatedError, match="header says 12 payload bytes .*, 8 present"):
            unpack(data[:-8])

    @pytest.mark.parametrize("reader", [unpack, read_header])
    def test_truncated_at_every_offset(self, reader) -> None:
        data = small_file()
        for n in range(len(data)):
            expected = NotArdmError if n < len(MAGIC) else TruncatedError
            with pytest.raises(expected):
                reader(data[:n])

    def test_every_bit_flip(self) -> None:
        data = small_file()
        for bit in range(8 * len(data)):
            with pytest.raises(FormatError):
                unpack(with_byte(data, bit // 8, data[bit // 8] ^ (1 << bit % 8)))

    def test_huge_shape_refused_before_allocating(self, monkeypatch: pytest.MonkeyPatch) -> None:
        raw = pack(dataclasses.replace(IMAGE, shape=(1, 1, 1)), WORDS)
        dims_at = 15 + len(IMAGE.model_id) + 8 + 12 + 1
        huge = raw[:dims_at] + struct.pack("<3I", 65535, 65535, 65535) + raw[dims_at + 12:]
        monkeypatch.setattr(np, "frombuffer", None)  # any allocation attempt would fail loudly
        with pytest.raises(CorruptError, match="more than the limit"):
            unpack(recrc(huge))

    @pytest.mark.parametrize("ndim", [0, 5])
    def test_bad_ndim(self, ndim: int) -> None:
        raw = pack(dataclasses.replace(IMAGE, shape=(1, 1, 1, 1)), WORDS)
        ndim_at = 15 + len(IMAGE.model_id) + 8 + 12
        # rewrite ndim and the dims block so the lengths still walk to the CRC
        crafted = raw[:ndim_at] + bytes([ndim]) + struct.pack(f"<{ndim}I", *[1] * ndim) + raw[ndim_at + 17:]
        with pytest.raises(CorruptError, match="dimensions"):
            unpack(recrc(crafted))

    @pytest.mark.parametrize("meta, message", [
        (b"{not json", "not UTF-8 JSON"), (b'{"a":"\xff"}', "not UTF-8 JSON"),
        (b"[" * 100_000, "not UTF-8 JSON"), (b'{"a":NaN}', "not UTF-8 JSON"), (b"[1]", "JSON object"),
    ])
    def test_bad_meta(self, meta: bytes, message: str) -> None:
        with pytest.raises(CorruptError, match=message):
            unpack(self._with_meta(meta))

    @staticmethod
    def _with_meta(meta: bytes) -> bytes:
        header = dataclasses.replace(IMAGE, meta={})
        raw = pack(header, WORDS)
        meta_at = 15 + len(IMAGE.model_id) + 8 + 12 + 1 + 4 * len(IMAGE.shape)
        assert raw[meta_at:meta_at + 6] == b"\x02\x00\x00\x00{}"
        return recrc(raw[:meta_at] + struct.pack("<I", len(meta)) + meta + raw[meta_at + 6:])

    def test_non_ascii_model_id(self) -> None:
        raw = small_file()
        with pytest.raises(CorruptError, match="model id"):
            unpack(recrc(raw.replace(b"img-rgb-v1", b"img-rgb-\xc3\xa9", 1)))

    def test_raw_with_model_hash(self) -> None:
        raw = pack(dataclasses.replace(IMAGE, method="raw", model_hash=bytes(8)), WORDS)
        with pytest.raises(CorruptError, match="zeros"):
            unpack(recrc(raw.replace(bytes(8), b"\x01" * 8, 1)))

    @settings(max_examples=200, deadline=None)
    @given(st.data())
    def test_random_mutations(self, data: st.DataObject) -> None:
        original = small_file()
        mutated = bytearray(original)
        for at in data.draw(st.lists(st.integers(0, len(original) - 1), min_size=1, max_size=8)):
            mutated[at] = data.draw(st.integers(0, 255))
        if bytes(mutated) == original:
            assert unpack(mutated)[0] == IMAGE
            return
        with pytest.raises(FormatError):
            unpack(bytes(mutated))

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=200))
    def test_arbitrary_bytes_after_magic(self, tail: bytes) -> None:
        with pytest.raises(FormatError):
            unpack(MAGIC + b"\x01" + tail)


class TestContentHash:
    def test_is_eight_bytes_and_deterministic(self) -> None:
        a = np.arange(12, dtype=np.uint8).reshape(3, 4)
        assert len(content_hash(a)) == 8 and content_hash(a) == content_hash(a.copy())

    def test_distinguishes_dtype_shape_values(self) -> None:
        a = np.arange(12, dtype=np.uint8).reshape(3, 4)
        b = a.copy()
        b[2, 3] += 1
        hashes = {content_hash(x) for x in (a, a.reshape(4, 3), a.reshape(12), a.astype(np.int8),
                                            a.astype(np.uint16), b)}
        assert len(hashes) == 6

    def test_layout_and_byte_order_do_not_matter(self) -> None:
        a = np.arange(12, dtype=np.uint16).reshape(3, 4)
        assert content_hash(a) == content_hash(np.asfortranarray(a)) == content_hash(a.astype(">u2"))
        assert content_hash(a.T) == content_hash(np.ascontiguousarray(a.T))

    def test_documented_definition(self) -> None:
        import hashlib
        a = np.arange(6, dtype=np.uint8).reshape(2, 3)
        assert content_hash(a) == hashlib.sha256(b"|u1\x002,3\x00" + a.tobytes()).digest()[:8]

    def test_rejects_object_arrays(self) -> None:
        with pytest.raises(ValueError):
            content_hash(np.array([object()]))


def test_module_constants() -> None:
    assert container.VERSION == 1 and len(MAGIC) == 8 and MAX_ELEMENTS == 1 << 31
