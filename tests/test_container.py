"""Tests of ardmzip.container: the .ardm file format of FORMAT.md."""
from __future__ import annotations

import dataclasses
import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ardmzip import container
from ardmzip.container import MAGIC, MAX_ELEMENTS, Header, content_hash, pack, read_header, unpack
from ardmzip.errors import (CorruptError, FormatError, NotArdmError, TruncatedError,
                            UnsupportedVersionError)

IMAGE = Header(media="image", method="ardm", arithmetic="float32", model_id="img-rgb-v1",
               model_hash=bytes(range(1, 5)), budget=200, seed=12345, shape=(2, 3, 3),
               meta={"mode": "RGB", "format": "PNG"}, content_hash=b"\xaa" * 4)
WORDS = np.array([1, 0xFFFFFFFF, 0x12345678], dtype=np.uint32)
# a typical small RGB crop as api.compress_image writes it (manifest default budget, default seed)
SMALL_RGB = Header(media="image", method="ardm", arithmetic="float32", model_id="img1",
                   model_hash=bytes.fromhex("3f9a0c51"), budget=5, seed=0, shape=(32, 32, 3), meta={},
                   content_hash=bytes.fromhex("d2e47b10"))
NO_WORDS = np.zeros(0, np.uint32)
# SMALL_RGB with an empty payload, byte for byte: the worked example of FORMAT.md
SMALL_RGB_HEX = ("89 41 52 44 01 00 01 04 69 6d 67 31 3f 9a 0c 51 05 00 03 20 20 03 00 d2 e4 7b 10 00 "
                 "97 5c f7 7b")

# offsets of the fixed fields (FORMAT.md, "Header fields")
VERSION_AT, FLAGS_AT, KINDS_AT, ID_LEN_AT = 4, 5, 6, 7
U32_MAX, U64_MAX = 2**32 - 1, 2**64 - 1


def v(n: int) -> bytes:
    """n as a minimal LEB128 varint, written out independently of the module under test."""
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n >= 0x80 else 0))
        n >>= 7
        if not n:
            return bytes(out)


def craft(*, version: int = 1, flags: int = 0, kinds: int = 0x01, model_id: bytes = b"img-rgb-v1",
          id_len: int | None = None, model_hash: bytes = bytes(range(1, 5)), budget: bytes = v(200),
          seed: bytes = v(12345), ndim: int = 3, dims: bytes = v(2) + v(3) + v(3),
          meta: bytes = b'{"format":"PNG","mode":"RGB"}', meta_len: bytes | None = None,
          content: bytes = b"\xaa" * 4, words: bytes = WORDS.astype("<u4").tobytes(),
          word_count: bytes | None = None) -> bytes:
    """A file laid out field by field as FORMAT.md says, with a valid CRC-32; defaults give pack(IMAGE)."""
    body = b"".join([
        MAGIC, bytes([version, flags, kinds, len(model_id) if id_len is None else id_len]), model_id,
        model_hash, budget, seed, bytes([ndim]), dims, v(len(meta)) if meta_len is None else meta_len, meta,
        content, v(len(words) // 4) if word_count is None else word_count, words,
    ])
    return body + struct.pack("<I", zlib.crc32(body))


def recrc(body_and_crc: bytes) -> bytes:
    """The same file with its last 4 bytes replaced by the CRC-32 of the rest: crafts 'valid' files."""
    body = body_and_crc[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def with_byte(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + bytes([value]) + data[at + 1:]


def small_file() -> bytes:
    return pack(IMAGE, WORDS)


def varint_len(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


class TestRoundTrip:
    @pytest.mark.parametrize("header", [
        IMAGE,
        SMALL_RGB,
        dataclasses.replace(IMAGE, shape=(7,)),
        dataclasses.replace(IMAGE, shape=(1, 2, 3, 4), arithmetic="int-exact"),
        dataclasses.replace(IMAGE, method="raw", model_id="", model_hash=bytes(4)),
        dataclasses.replace(IMAGE, method="raw", model_hash=bytes(4), budget=0, seed=0),
        dataclasses.replace(IMAGE, media="audio", shape=(44100, 2), budget=2**32 - 1, seed=2**64 - 1,
                            meta={"samplerate": 44100, "subtype": "PCM_16", "format": "WAV",
                                  "channels": 2}),
        dataclasses.replace(IMAGE, meta={"mode": "P", "palette": list(range(768)), "note": "ünïcødé ✓ 😀",
                                         "nested": {"a": [1.5, None, True]}}),
        dataclasses.replace(IMAGE, model_id="x" * 64, meta={}),
        dataclasses.replace(IMAGE, shape=(1 << 15, 1 << 16)),  # exactly MAX_ELEMENTS
        dataclasses.replace(IMAGE, shape=(1 << 31,)),  # one dim of 5 varint bytes
        dataclasses.replace(IMAGE, meta={"x": "a" * 200}),  # meta length of 2 varint bytes
    ])
    @pytest.mark.parametrize("words", [WORDS, NO_WORDS, np.arange(200, dtype=np.uint32)])
    def test_pack_unpack(self, header: Header, words: np.ndarray) -> None:
        data = pack(header, words)
        got, payload = unpack(data)
        assert got == header
        assert payload.dtype == np.uint32 and payload.flags.c_contiguous
        np.testing.assert_array_equal(payload, words)
        assert read_header(data) == header
        # FORMAT.md "Total size"
        meta = b"" if not header.meta else container._encode_meta(header.meta)
        varints = [header.budget, header.seed, *header.shape, len(meta), words.size]
        assert len(data) == (21 + len(header.model_id) + len(meta) + 4 * words.size
                             + sum(map(varint_len, varints)))

    def test_layout_field_by_field(self) -> None:
        data = small_file()
        assert data == craft()
        assert data[:4] == MAGIC and data[VERSION_AT] == 1 and data[FLAGS_AT] == 0
        assert data[KINDS_AT] == 0x01 and data[ID_LEN_AT] == len(IMAGE.model_id)
        assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])

    def test_kinds_bits(self) -> None:
        h = dataclasses.replace(IMAGE, media="audio", method="raw", arithmetic="int-exact",
                                model_hash=bytes(4))
        assert pack(h, WORDS)[KINDS_AT] == 0b01_01_10

    def test_small_rgb_header_is_compact(self) -> None:
        data = pack(SMALL_RGB, NO_WORDS)  # header incl. CRC and the empty payload's word count
        assert len(data) == 32 <= 36
        assert 8 * len(data) / (32 * 32 * 3) < 0.09  # bits per dimension spent on the header
        bigger = dataclasses.replace(SMALL_RGB, budget=10_000, seed=12345,
                                     model_hash=bytes.fromhex("ffffffff"))
        assert len(pack(bigger, NO_WORDS)) <= 36

    def test_worked_example_of_format_md(self) -> None:
        assert pack(SMALL_RGB, NO_WORDS).hex(" ") == SMALL_RGB_HEX
        format_md = (Path(__file__).resolve().parent.parent / "FORMAT.md").read_text(encoding="utf-8")
        assert SMALL_RGB_HEX in format_md

    def test_empty_meta_is_length_zero(self) -> None:
        data = pack(SMALL_RGB, NO_WORDS)
        assert b"{}" not in data and data[22] == 0  # meta length varint right after the dims
        # a reader also accepts an explicit "{}" (JSON text is not canonicalised)
        assert unpack(craft(meta=b"{}"))[0].meta == {}

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


class TestVarint:
    CASES = [(0, "00"), (1, "01"), (127, "7f"), (128, "80 01"), (300, "ac 02"), (16383, "ff 7f"),
             (16384, "80 80 01"), (2**32 - 1, "ff ff ff ff 0f"), (2**63, "80 80 80 80 80 80 80 80 80 01"),
             (2**64 - 1, "ff ff ff ff ff ff ff ff ff 01")]

    @pytest.mark.parametrize("value, hex_", CASES)
    def test_encode_decode(self, value: int, hex_: str) -> None:
        enc = container._encode_varint(value)
        assert enc.hex(" ") == hex_ and enc == v(value)
        r = container._Reader(memoryview(enc + b"\x55"))
        assert r.varint("x") == value and r.pos == len(enc) and not r.problems

    @pytest.mark.parametrize("value", [-1, 2**64])
    def test_encode_refuses_out_of_range(self, value: int) -> None:
        with pytest.raises(ValueError):
            container._encode_varint(value)

    @pytest.mark.parametrize("value", [0, 127, 128, 2**32 - 1, 2**64 - 1])
    def test_seed_edge_values_round_trip(self, value: int) -> None:
        h = dataclasses.replace(IMAGE, seed=value)
        assert unpack(pack(h, WORDS))[0] == h

    @pytest.mark.parametrize("value", [0, 127, 128, 2**32 - 1])
    def test_budget_edge_values_round_trip(self, value: int) -> None:
        h = dataclasses.replace(IMAGE, budget=value)
        assert unpack(pack(h, WORDS))[0] == h

    @settings(max_examples=200, deadline=None)
    @given(st.integers(0, 2**64 - 1))
    def test_any_u64(self, value: int) -> None:
        enc = container._encode_varint(value)
        assert enc == v(value) and len(enc) == varint_len(value) <= 10
        r = container._Reader(memoryview(enc))
        assert r.varint("x") == value and r.pos == len(enc) and not r.problems

    NON_MINIMAL = ["80 00", "ff 00", "80 81 00", "ff ff ff ff 8f 00", "80 80 80 80 80 80 80 80 80 00"]

    @pytest.mark.parametrize("hex_", NON_MINIMAL)
    @pytest.mark.parametrize("where", ["budget", "seed", "dims", "meta_len", "word_count"])
    def test_non_minimal_refused(self, hex_: str, where: str) -> None:
        enc = bytes.fromhex(hex_)
        value = container._Reader(memoryview(enc)).varint("x")
        kw: dict = {"budget": {"budget": enc}, "seed": {"seed": enc},
                    "dims": {"ndim": 1, "dims": enc},
                    "meta_len": {"meta_len": enc, "meta": b"x" * value},
                    "word_count": {"word_count": enc, "words": bytes(4 * value)}}[where]
        if value > 1000 and where in ("meta_len", "word_count"):
            return  # a length that would need a huge file (and a meta over 1 MiB)
        with pytest.raises(CorruptError, match="not minimally encoded"):
            unpack(craft(**kw))

    @pytest.mark.parametrize("hex_", ["80 80 80 80 80 80 80 80 80 02", "ff ff ff ff ff ff ff ff ff 7f"])
    def test_over_u64_refused(self, hex_: str) -> None:
        with pytest.raises(CorruptError, match=r"over 2\^64-1"):
            unpack(craft(seed=bytes.fromhex(hex_)))

    def test_longer_than_ten_bytes_refused(self) -> None:
        with pytest.raises(CorruptError, match="longer than 10 bytes"):
            unpack(craft(seed=b"\x80" * 10 + b"\x01"))
        with pytest.raises(CorruptError, match="longer than 10 bytes"):
            unpack(craft(budget=b"\xff" * 30))

    def test_ends_inside_varint(self) -> None:
        prefix = MAGIC + bytes([1, 0, 1, 4]) + b"img1" + bytes(4)
        for tail in (b"", b"\x80", b"\xff\xff", b"\x80" * 9):
            with pytest.raises(TruncatedError, match="budget varint"):
                unpack(prefix + tail)

    def test_budget_over_u32_refused(self) -> None:
        with pytest.raises(CorruptError, match="budget"):
            unpack(craft(budget=v(2**32)))


class TestPackRejects:
    @pytest.mark.parametrize("change", [
        {"media": "video"}, {"method": "zip"}, {"arithmetic": "float64"},
        {"model_id": ""}, {"model_id": "x" * 65}, {"model_id": "mödel"}, {"model_id": "a b"},
        {"model_hash": b"123"}, {"model_hash": b"12345678"}, {"model_hash": "1234"},
        {"method": "raw"},  # raw needs an all-zero model hash
        {"budget": -1}, {"budget": 2**32}, {"seed": 2**64}, {"seed": -1}, {"seed": 1.5}, {"budget": True},
        {"shape": ()}, {"shape": (1, 1, 1, 1, 1)}, {"shape": (0, 3)}, {"shape": (2**32, 1)},
        {"shape": (1 << 16, 1 << 16)}, {"shape": (2.0, 3)}, {"shape": 5},
        {"meta": [1, 2]}, {"meta": {"x": float("nan")}}, {"meta": {"x": object()}},
        {"meta": {"x": "a" * (1 << 20)}}, {"content_hash": b""}, {"content_hash": bytes(8)},
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
            unpack(MAGIC[:3])

    def test_bad_magic(self) -> None:
        with pytest.raises(NotArdmError, match="bad magic number"):
            unpack(b"\x89PNG\r\n\x1a\n" + small_file()[4:])

    def test_seven_bit_damage_hint(self) -> None:
        with pytest.raises(NotArdmError, match="text-mode"):
            unpack(with_byte(small_file(), 0, 0x09))

    def test_no_text_mode_hint_for_other_damage(self) -> None:
        with pytest.raises(NotArdmError, match=r"bad magic number\)"):
            unpack(with_byte(small_file(), 3, ord("X")))

    def test_line_ending_damage_is_caught(self) -> None:
        data = pack(IMAGE, np.array([0x0A0D0A0A, 0x0D0A0D0D], np.uint32))
        for old, new in ((b"\r\n", b"\n"), (b"\n", b"\r\n"), (b"\r", b"\r\n")):
            with pytest.raises(FormatError):
                unpack(data.replace(old, new))

    def test_newer_version(self) -> None:
        with pytest.raises(UnsupportedVersionError, match="version 7 .*reads versions 1, 2, 3, 4, 5, 6"):
            unpack(recrc(with_byte(small_file(), VERSION_AT, 7)))

    def test_version_2_scale_offsets(self) -> None:
        # FORMAT.md "Flags": bit 0 (scale offsets), only in version 2, which a file without flags never is
        h = dataclasses.replace(IMAGE, arithmetic="int-exact", offsets=True)
        data = pack(h, WORDS)
        assert data[VERSION_AT] == 2 and data[FLAGS_AT] == 0x01
        assert data == craft(version=2, flags=0x01, kinds=0x11)
        header, words = unpack(data)
        assert header == h and header.offsets
        np.testing.assert_array_equal(words, WORDS)
        assert pack(dataclasses.replace(h, offsets=False), WORDS)[VERSION_AT] == 1
        audio = dataclasses.replace(h, media="audio", shape=(6, 1), meta={})   # audio files may have them too
        assert unpack(pack(audio, WORDS))[0] == audio
        with pytest.raises(CorruptError, match="version-2 file with flags 0x00 .*written as version 1"):
            unpack(craft(version=2, flags=0x00, kinds=0x11))
        with pytest.raises(CorruptError, match="reserved flags 0x02"):
            unpack(craft(version=2, flags=0x03, kinds=0x11))

    def test_version_3_channel_transform(self) -> None:
        # FORMAT.md "Flags": bit 1 (channel transform), version 3, model-coded audio of 2+ channels only
        stereo = dataclasses.replace(IMAGE, media="audio", shape=(6, 2), meta={}, channel_transform=True)
        for offsets, flags in ((False, 0x02), (True, 0x03)):
            h = dataclasses.replace(stereo, arithmetic="int-exact", offsets=offsets)
            data = pack(h, WORDS)
            assert data[VERSION_AT] == 3 and data[FLAGS_AT] == flags
            assert unpack(data)[0] == h
        assert container.version_for(0) == 1 and container.version_for(0x01) == 2
        with pytest.raises(CorruptError, match="version-3 file with flags 0x01 .*written as version 2"):
            unpack(recrc(with_byte(pack(dataclasses.replace(h, channel_transform=False), WORDS), VERSION_AT, 3)))
        with pytest.raises(CorruptError, match="reserved flags 0x04"):
            unpack(recrc(with_byte(data, FLAGS_AT, 0x07)))
        for bad, message in (({"media": "image", "shape": (6, 2, 3)}, "model-coded audio"),
                             ({"method": "raw", "model_hash": bytes(4)}, "model-coded audio"),
                             ({"shape": (2,)}, "model-coded audio"),
                             ({"shape": (6, 1)}, "at least 2 channels")):
            with pytest.raises(ValueError, match=message):
                pack(dataclasses.replace(stereo, **bad), WORDS)
        with pytest.raises(CorruptError, match="at least 2 channels"):
            unpack(craft(version=3, flags=0x02, kinds=0x02, ndim=2, dims=v(6) + v(1), meta=b""))

    def test_version_4_low_byte_models(self) -> None:
        # FORMAT.md "Flags": bit 2 (a low-byte model per segment), version 4, model-coded 24-bit audio only
        mono = dataclasses.replace(IMAGE, media="audio", shape=(6, 1), meta={"subtype": "PCM_24"}, low_modes=True)
        for offsets, flags in ((False, 0x04), (True, 0x05)):
            h = dataclasses.replace(mono, arithmetic="int-exact", offsets=offsets)
            data = pack(h, WORDS)
            assert data[VERSION_AT] == 4 and data[FLAGS_AT] == flags
            assert unpack(data)[0] == h
        stereo = dataclasses.replace(h, shape=(6, 2), channel_transform=True)
        assert pack(stereo, WORDS)[FLAGS_AT] == 0x07 and unpack(pack(stereo, WORDS))[0] == stereo
        with pytest.raises(CorruptError, match="version-4 file with flags 0x01 .*written as version 2"):
            unpack(recrc(with_byte(pack(dataclasses.replace(h, low_modes=False), WORDS), VERSION_AT, 4)))
        with pytest.raises(CorruptError, match="reserved flags 0x08"):
            unpack(recrc(with_byte(data, FLAGS_AT, 0x0D)))
        for bad in ({"meta": {"subtype": "PCM_16"}}, {"media": "image", "shape": (6, 2, 3)}):
            with pytest.raises(ValueError, match="24-bit audio"):
                pack(dataclasses.replace(mono, **bad), WORDS)

    def test_version_5_adapted_steps(self) -> None:
        # FORMAT.md "Flags": bit 3 (adapted steps), version 5, images coded by an int-exact model only
        h = dataclasses.replace(IMAGE, arithmetic="int-exact", adapt=True)
        data = pack(h, WORDS)
        assert data[VERSION_AT] == 5 and data[FLAGS_AT] == 0x08 and unpack(data)[0] == h
        with pytest.raises(CorruptError, match="version-5 file with flags 0x01 .*written as version 2"):
            unpack(recrc(with_byte(pack(dataclasses.replace(h, adapt=False, offsets=True), WORDS), VERSION_AT, 5)))
        with pytest.raises(CorruptError, match="reserved flags 0x10"):
            unpack(recrc(with_byte(data, FLAGS_AT, 0x18)))
        with pytest.raises(CorruptError, match="FLAG_ADAPT excludes FLAG_OFFSETS"):
            unpack(recrc(with_byte(data, FLAGS_AT, 0x09)))

    def test_version_6_phase_classes(self) -> None:
        # FORMAT.md "Flags": bit 4 (adapted steps per phase class), version 6, only with bit 3
        h = dataclasses.replace(IMAGE, arithmetic="int-exact", adapt=True, phases=True)
        data = pack(h, WORDS)
        assert data[VERSION_AT] == 6 and data[FLAGS_AT] == 0x18 and unpack(data)[0] == h
        with pytest.raises(CorruptError, match="version-6 file with flags 0x08 .*written as version 5"):
            unpack(recrc(with_byte(pack(dataclasses.replace(h, phases=False), WORDS), VERSION_AT, 6)))
        with pytest.raises(CorruptError, match="reserved flags 0x20"):
            unpack(recrc(with_byte(data, FLAGS_AT, 0x38)))
        with pytest.raises(CorruptError, match="FLAG_PHASES needs FLAG_ADAPT"):
            unpack(recrc(with_byte(data, FLAGS_AT, 0x10)))

    @pytest.mark.parametrize("changes", [{"arithmetic": "float32"}, {"method": "raw", "model_hash": bytes(4)},
                                         {"method": "deflate", "model_hash": bytes(4)}])
    def test_scale_offsets_only_for_int_exact_models(self, changes: dict) -> None:
        h = dataclasses.replace(IMAGE, offsets=True, **{"arithmetic": "int-exact", **changes})
        with pytest.raises(ValueError, match="scale offsets are defined for files coded by an int-exact model"):
            pack(h, WORDS)
        plain = pack(dataclasses.replace(h, offsets=False), WORDS)
        with pytest.raises(CorruptError, match="scale offsets"):
            unpack(recrc(with_byte(with_byte(plain, VERSION_AT, 2), FLAGS_AT, 1)))

    def test_version_checked_before_length_and_crc(self) -> None:
        with pytest.raises(UnsupportedVersionError, match="version 7"):
            unpack(MAGIC + b"\x07")

    @pytest.mark.parametrize("changes, message", [
        ({"flags": 0x80}, "reserved"), ({"flags": 0x01}, "reserved"),
        ({"kinds": 0x41}, "reserved"), ({"kinds": 0x81}, "reserved"),
        ({"kinds": 0x00}, "unknown media code 0"), ({"kinds": 0x03}, "unknown media code 3"),
        ({"kinds": 0x01 | 3 << 2}, "unknown method code 3"),
        ({"kinds": 0x01 | 3 << 2}, "unknown method code 3"),
        ({"kinds": 0x01 | 2 << 4}, "unknown arithmetic code 2"),
        ({"kinds": 0x01 | 3 << 4}, "unknown arithmetic code 3"),
    ])
    def test_reserved_and_codes(self, changes: dict, message: str) -> None:
        with pytest.raises(CorruptError, match=message):
            unpack(craft(**changes))

    def test_crc_mismatch(self) -> None:
        data = small_file()
        with pytest.raises(CorruptError, match="CRC-32 mismatch"):
            unpack(with_byte(data, len(data) - 10, data[-10] ^ 1))

    def test_crc_checked_before_field_meanings(self) -> None:
        bad = craft(kinds=0x00, seed=b"\x80\x00")  # unknown media and a non-minimal varint ...
        with pytest.raises(CorruptError, match="CRC-32 mismatch"):  # ... but a damaged CRC is reported
            unpack(with_byte(bad, len(bad) - 1, bad[-1] ^ 1))

    def test_trailing_garbage(self) -> None:
        with pytest.raises(CorruptError, match="3 trailing bytes"):
            unpack(small_file() + b"xyz")

    def test_truncated_message(self) -> None:
        data = small_file()
        with pytest.raises(TruncatedError, match="header says 12 payload bytes .*, 8 present"):
            unpack(data[:-8])

    @pytest.mark.parametrize("reader", [unpack, read_header])
    @pytest.mark.parametrize("make", [small_file, lambda: pack(SMALL_RGB, NO_WORDS),
                                      lambda: pack(dataclasses.replace(IMAGE, seed=2**64 - 1,
                                                                       shape=(1 << 31,)), WORDS)])
    def test_truncated_at_every_offset(self, reader, make) -> None:
        data = make()
        for n in range(len(data)):
            expected = NotArdmError if n < len(MAGIC) else TruncatedError
            with pytest.raises(expected):
                reader(data[:n])

    @pytest.mark.parametrize("make", [small_file, lambda: pack(SMALL_RGB, NO_WORDS)])
    def test_every_bit_flip(self, make) -> None:
        data = make()
        for bit in range(8 * len(data)):
            with pytest.raises(FormatError):
                unpack(with_byte(data, bit // 8, data[bit // 8] ^ (1 << bit % 8)))

    def test_huge_shape_refused_before_allocating(self, monkeypatch: pytest.MonkeyPatch) -> None:
        huge = craft(dims=v(65535) * 3)
        monkeypatch.setattr(np, "frombuffer", None)  # any allocation attempt would fail loudly
        with pytest.raises(CorruptError, match="more than the limit"):
            unpack(huge)

    @pytest.mark.parametrize("dim", [0, 2**32, 2**64 - 1])
    def test_bad_dimension(self, dim: int) -> None:
        with pytest.raises(CorruptError, match="shape"):
            unpack(craft(ndim=2, dims=v(3) + v(dim)))

    @pytest.mark.parametrize("ndim", [0, 5, 255])
    def test_bad_ndim(self, ndim: int) -> None:
        with pytest.raises(CorruptError, match="dimensions"):
            unpack(craft(ndim=ndim, dims=v(1) * ndim))

    @pytest.mark.parametrize("meta, message", [
        (b"{not json", "not UTF-8 JSON"), (b'{"a":"\xff"}', "not UTF-8 JSON"),
        (b"[" * 100_000, "not UTF-8 JSON"), (b'{"a":NaN}', "not UTF-8 JSON"), (b"[1]", "JSON object"),
        (b'""', "JSON object"), (b" ", "not UTF-8 JSON"),
    ])
    def test_bad_meta(self, meta: bytes, message: str) -> None:
        with pytest.raises(CorruptError, match=message):
            unpack(craft(meta=meta))

    def test_meta_over_limit(self) -> None:
        with pytest.raises(CorruptError, match="over 1048576"):
            unpack(craft(meta=b'{"x":"' + b"a" * (1 << 20) + b'"}'))

    def test_huge_lengths_are_truncation(self) -> None:
        for kw in ({"meta_len": v(2**64 - 1)}, {"word_count": v(2**64 - 1)}, {"id_len": 255}):
            with pytest.raises(TruncatedError):
                unpack(craft(**kw)[:-4])

    @pytest.mark.parametrize("model_id, message", [
        (b"img-rgb-\xc3\xa9", "model id"), (b"a b", "printable"), (b"x" * 65, "at most 64"),
        (b"", "only allowed for methods 'raw' and 'deflate'"), (b"tab\x7f", "printable"),
    ])
    def test_bad_model_id(self, model_id: bytes, message: str) -> None:
        with pytest.raises(CorruptError, match=message):
            unpack(craft(model_id=model_id))

    def test_raw_with_model_hash(self) -> None:
        with pytest.raises(CorruptError, match="zeros"):
            unpack(craft(kinds=0x01 | 1 << 2, model_hash=b"\x01" * 4))

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

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=40))
    def test_arbitrary_tail_with_valid_crc(self, tail: bytes) -> None:
        """A CRC-valid file whose fields are random: a header, or a FormatError, never another error."""
        body = MAGIC + b"\x01" + tail
        try:
            header = read_header(body + struct.pack("<I", zlib.crc32(body)))
        except FormatError:
            return
        assert isinstance(header, Header)


class TestContentHash:
    def test_is_four_bytes_and_deterministic(self) -> None:
        a = np.arange(12, dtype=np.uint8).reshape(3, 4)
        assert len(content_hash(a)) == 4 and content_hash(a) == content_hash(a.copy())

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
        a = np.arange(6, dtype=np.uint8).reshape(2, 3)
        assert content_hash(a) == hashlib.sha256(b"|u1\x002,3\x00" + a.tobytes()).digest()[:4]

    def test_rejects_object_arrays(self) -> None:
        with pytest.raises(ValueError):
            content_hash(np.array([object()]))


def test_module_constants() -> None:
    assert container.VERSION == 6 and container.VERSIONS == (1, 2, 3, 4, 5, 6) and MAGIC == b"\x89ARD" and MAX_ELEMENTS == 1 << 31
    assert container.HASH_BYTES == 4
