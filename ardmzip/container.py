"""The .ardm container (FORMAT.md): a compact header, the payload's uint32 words, and a CRC-32.

Stdlib + numpy only. A parse goes magic -> version -> lengths -> CRC-32 -> field meanings, so each
damaged input gets one unambiguous error: a short file reports TruncatedError, a flipped bit reports
CorruptError (the CRC fails before any field is interpreted), and nothing is allocated from a length
or a shape that has not been checked. No other exception escapes for any input bytes.

Integers that vary in size (budget, seed, dims, meta length, word count) are unsigned LEB128 varints,
minimally encoded, so the header of a small image costs ~32 bytes (FORMAT.md "Total size").
"""
from __future__ import annotations

import hashlib
import json
import operator
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import CorruptError, NotArdmError, TruncatedError, UnsupportedVersionError

MAGIC: bytes = b"\x89ARD"  # non-ASCII first byte: marks the file binary, catches 7-bit transfers
VERSION: int = 6  # the newest version this release writes; it reads every version in VERSIONS
VERSIONS = (1, 2, 3, 4, 5, 6)
FLAG_OFFSETS = 0x01  # (version 2) the payload carries a log-scale offset per network step (codec.OFFSETS)
FLAG_CHANNELS = 0x02  # (version 3) a channel transform per audio segment (audio_codec.CHANNEL_MODES)
FLAG_LOW = 0x04  # (version 4) a low-byte model per 24-bit audio segment (lowbyte.LOW_MODES)
FLAG_ADAPT = 0x08  # (version 5) a mode per network step of an image: one scale offset, or adapted (adapt.py)
FLAG_PHASES = 0x10  # (version 6) with FLAG_ADAPT: a mode per phase class of each network step (adapt.phase_classes)
VERSION_FLAGS = {1: 0, 2: FLAG_OFFSETS, 3: FLAG_OFFSETS | FLAG_CHANNELS,
                 4: FLAG_OFFSETS | FLAG_CHANNELS | FLAG_LOW,
                 5: FLAG_OFFSETS | FLAG_CHANNELS | FLAG_LOW | FLAG_ADAPT,
                 6: FLAG_OFFSETS | FLAG_CHANNELS | FLAG_LOW | FLAG_ADAPT | FLAG_PHASES}  # the flags each version defines
MAX_ELEMENTS = 1 << 31  # limit on the product of the shape, checked before anything is allocated
MAX_NDIM = 4
MAX_MODEL_ID = 64
MAX_META_BYTES = 1 << 20
HASH_BYTES = 4  # model hash and content hash: SHA-256 prefixes
MAX_VARINT_BYTES = 10  # ceil(64 / 7)

MEDIA_CODES = {"image": 1, "audio": 2}  # kinds bits 0-1
METHOD_CODES = {"ardm": 0, "raw": 1, "deflate": 2}  # kinds bits 2-3
STORED_METHODS = ("raw", "deflate")  # no model: empty or informative id, zero hash
ARITHMETIC_CODES = {"float32": 0, "int-exact": 1}  # kinds bits 4-5; bits 6-7 reserved

# MAGIC after a 7-bit transfer (high bit stripped): worth a hint
_TEXT_DAMAGED_STARTS = (b"\tARD",)
_U32_MAX = (1 << 32) - 1
_U64_MAX = (1 << 64) - 1


@dataclass(frozen=True)
class Header:
    """Everything in an .ardm file except the payload words; field meanings in FORMAT.md."""

    media: str  # "image" | "audio"
    method: str  # "ardm" (model-coded) | "raw" | "deflate" (stored fallbacks, no model)
    arithmetic: str  # "float32" | "int-exact": the inference the decoder must reproduce
    model_id: str  # printable ASCII, 1..64 chars; "" allowed only for method "raw"
    model_hash: bytes  # 4 bytes: prefix of the weights' SHA-256 (zeros for "raw")
    budget: int  # network-call budget, u32
    seed: int  # order seed, u64
    shape: tuple[int, ...]  # 1..4 dims, each >= 1, product <= MAX_ELEMENTS
    meta: dict = field(hash=False)  # JSON object describing the media, <= 1 MiB as UTF-8
    content_hash: bytes  # 4 bytes: content_hash() of the original samples
    offsets: bool = False  # FLAG_OFFSETS: coded by an int-exact model with per-step scale offsets
    channel_transform: bool = False  # FLAG_CHANNELS: audio of 2+ channels, a channel transform per segment
    low_modes: bool = False  # FLAG_LOW: model-coded 24-bit audio, a low-byte model per segment
    adapt: bool = False  # FLAG_ADAPT: an image coded by an int-exact model, a mode per network step
    phases: bool = False  # FLAG_PHASES: adapted steps with a mode per phase class of each step (needs adapt)


# ------------------------------------------------------------------------------------- validation
def _as_int(value: Any) -> int | None:
    """value as a Python int if it is an integer (numpy ints included, bool excluded), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _codes_problem(h: Header) -> str | None:
    for name, codes in (("media", MEDIA_CODES), ("method", METHOD_CODES), ("arithmetic", ARITHMETIC_CODES)):
        value = getattr(h, name)
        if not isinstance(value, str) or value not in codes:
            return f"{name} is {value!r}, expected one of {sorted(codes)}"
    return None


def _model_problem(h: Header) -> str | None:
    mid = h.model_id
    if not isinstance(mid, str) or len(mid) > MAX_MODEL_ID:
        return f"model id {mid!r} must be a string of at most {MAX_MODEL_ID} characters"
    if any(not 0x21 <= ord(c) <= 0x7E for c in mid):
        return f"model id {mid!r} must be printable ASCII without spaces"
    if mid == "" and h.method not in STORED_METHODS:
        return "model id is empty, which is only allowed for methods 'raw' and 'deflate'"
    if not isinstance(h.model_hash, (bytes, bytearray)) or len(h.model_hash) != HASH_BYTES:
        return f"model hash must be {HASH_BYTES} bytes, got {h.model_hash!r}"
    if h.method in STORED_METHODS and any(h.model_hash):
        return f"model hash must be all zeros for method '{h.method}'"
    return None


def _numbers_problem(h: Header) -> str | None:
    for name, top in (("budget", _U32_MAX), ("seed", _U64_MAX)):
        value = _as_int(getattr(h, name))
        if value is None or not 0 <= value <= top:
            return f"{name} is {getattr(h, name)!r}, expected an integer in 0..{top}"
    if not isinstance(h.content_hash, (bytes, bytearray)) or len(h.content_hash) != HASH_BYTES:
        return f"content hash must be {HASH_BYTES} bytes, got {h.content_hash!r}"
    return None


def _shape_problem(h: Header) -> str | None:
    shape = h.shape
    if not isinstance(shape, (tuple, list)) or not 1 <= len(shape) <= MAX_NDIM:
        return f"shape {shape!r} must have 1..{MAX_NDIM} dimensions"
    dims = [_as_int(d) for d in shape]
    if any(d is None or not 1 <= d <= _U32_MAX for d in dims):
        return f"shape {shape!r} must hold integers in 1..{_U32_MAX}"
    size = 1
    for d in dims:
        size *= d
    if size > MAX_ELEMENTS:
        return f"shape {shape!r} has {size} elements, more than the limit {MAX_ELEMENTS}"
    return None


def _header_problem(h: Header) -> str | None:
    """The first reason h is not a storable header, or None. pack raises ValueError, unpack CorruptError."""
    if not isinstance(h, Header):
        return f"expected a Header, got {type(h).__name__}"
    for check in (_codes_problem, _model_problem, _numbers_problem, _shape_problem):
        problem = check(h)
        if problem:
            return problem
    if not isinstance(h.meta, dict):
        return f"meta must be a JSON object (dict), got {type(h.meta).__name__}"
    if not isinstance(h.offsets, bool):
        return f"offsets must be a bool, got {type(h.offsets).__name__}"
    if h.offsets and (h.method, h.arithmetic) != ("ardm", "int-exact"):
        return f"scale offsets are defined for files coded by an int-exact model only, not {h.method} / {h.arithmetic}"
    if not isinstance(h.channel_transform, bool):
        return f"channel_transform must be a bool, got {type(h.channel_transform).__name__}"
    if h.channel_transform and (h.media, h.method, len(h.shape)) != ("audio", "ardm", 2):
        return "a channel transform is defined for model-coded audio of at least one frame only"
    if h.channel_transform and h.shape[1] < 2:
        return f"a channel transform needs at least 2 channels, the shape {tuple(h.shape)} has {h.shape[1]}"
    if not isinstance(h.adapt, bool):
        return f"adapt must be a bool, got {type(h.adapt).__name__}"
    if h.adapt and (h.media, h.method, h.arithmetic) != ("image", "ardm", "int-exact"):
        return "adapted steps are defined for images coded by an int-exact model only"
    if h.adapt and h.offsets:
        return "adapted steps carry their own scale offsets: FLAG_ADAPT excludes FLAG_OFFSETS"
    if not isinstance(h.phases, bool):
        return f"phases must be a bool, got {type(h.phases).__name__}"
    if h.phases and not h.adapt:
        return "phase classes are defined for adapted steps only: FLAG_PHASES needs FLAG_ADAPT"
    if not isinstance(h.low_modes, bool):
        return f"low_modes must be a bool, got {type(h.low_modes).__name__}"
    if h.low_modes and ((h.media, h.method, len(h.shape)) != ("audio", "ardm", 2)
                        or h.meta.get("subtype") != "PCM_24"):
        return "low-byte models are defined for model-coded 24-bit audio only"
    return None


def version_for(flags: int) -> int:
    """The format version a file with these flags is written as: the oldest that defines them all."""
    return min(v for v, defined in VERSION_FLAGS.items() if not flags & ~defined)


# ------------------------------------------------------------------------------------------- pack
def _encode_varint(n: int) -> bytes:
    """n (0..2^64-1) as a minimal unsigned LEB128 varint: 7 bits a byte, low bits first, high bit = more."""
    if not 0 <= n <= _U64_MAX:
        raise ValueError(f"varint value {n} is outside 0..{_U64_MAX}")
    out = bytearray()
    while n >= 0x80:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


def _encode_meta(meta: dict) -> bytes:
    """meta as compact, key-sorted UTF-8 JSON (b"" for {}); ValueError if not JSON-able or over 1 MiB."""
    if not meta:
        return b""
    try:
        text = json.dumps(meta, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
        raw = text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as e:
        raise ValueError(f"cannot pack .ardm header: meta is not JSON-able ({e})") from None
    if len(raw) > MAX_META_BYTES:
        raise ValueError(f"cannot pack .ardm header: meta JSON is {len(raw)} bytes, over {MAX_META_BYTES}")
    return raw


def _payload_words(payload: np.ndarray) -> np.ndarray:
    """payload as a C-contiguous little-endian uint32 array; ValueError unless it is 1-D uint32."""
    if not isinstance(payload, np.ndarray) or payload.ndim != 1:
        raise ValueError(f"payload must be a 1-D numpy uint32 array, got {type(payload).__name__}")
    if payload.dtype.kind != "u" or payload.dtype.itemsize != 4:
        raise ValueError(f"payload must have dtype uint32, got {payload.dtype}")
    if payload.size > _U32_MAX:
        raise ValueError(f"payload has {payload.size} words, more than {_U32_MAX}")
    return np.ascontiguousarray(payload, dtype="<u4")


def pack(header: Header, payload: np.ndarray) -> bytes:
    """The whole .ardm file for header and payload (1-D uint32 words: ANS words, or raw-packed samples).

    Raises ValueError naming the bad value if the header or payload cannot be stored.
    """
    problem = _header_problem(header)
    if problem:
        raise ValueError(f"cannot pack .ardm header: {problem}")
    meta, words = _encode_meta(header.meta), _payload_words(payload)
    model_id = header.model_id.encode("ascii")
    shape = [operator.index(d) for d in header.shape]
    kinds = (MEDIA_CODES[header.media] | METHOD_CODES[header.method] << 2
             | ARITHMETIC_CODES[header.arithmetic] << 4)
    flags = ((FLAG_OFFSETS if header.offsets else 0) | (FLAG_CHANNELS if header.channel_transform else 0)
             | (FLAG_LOW if header.low_modes else 0) | (FLAG_ADAPT if header.adapt else 0)
             | (FLAG_PHASES if header.phases else 0))
    body = b"".join([
        MAGIC,
        bytes([version_for(flags), flags, kinds, len(model_id)]), model_id, bytes(header.model_hash),
        _encode_varint(operator.index(header.budget)), _encode_varint(operator.index(header.seed)),
        bytes([len(shape)]), *map(_encode_varint, shape),
        _encode_varint(len(meta)), meta, bytes(header.content_hash),
        _encode_varint(words.size), words.tobytes(),
    ])
    return body + struct.pack("<I", zlib.crc32(body))


# ------------------------------------------------------------------------------------------ parse
class _Reader:
    """Walks a byte buffer; every read past the end raises TruncatedError.

    Varints that are readable but not canonical (non-minimal, or above 2^64-1) are noted in
    `problems` and reported after the CRC-32 check, like every other field meaning.
    """

    def __init__(self, data: memoryview) -> None:
        self.data, self.pos = data, 0
        self.problems: list[str] = []

    def _take(self, n: int, message: str) -> memoryview:
        if self.pos + n > len(self.data):
            raise TruncatedError(f"file is truncated: {message}, {len(self.data) - self.pos} present")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def field(self, fmt: str, name: str) -> tuple[int, ...]:
        """Fixed-size little-endian field(s) in struct format fmt."""
        n = struct.calcsize(fmt)
        needs = f"the {name} field needs {n} byte{'s' * (n != 1)} at offset {self.pos}"
        return struct.unpack(fmt, self._take(n, needs))

    def block(self, n: int, name: str) -> memoryview:
        """A block whose length n came from the header."""
        return self._take(n, f"header says {n} {name} bytes at offset {self.pos}")

    def varint(self, name: str) -> int:
        """An unsigned LEB128 varint of at most 10 bytes.

        TruncatedError if the input ends inside it; CorruptError (at once: the walk cannot go on) if
        its 10th byte still has the continuation bit.
        """
        start, value = self.pos, 0
        for i in range(MAX_VARINT_BYTES):
            if self.pos >= len(self.data):
                raise TruncatedError(f"file is truncated: the {name} varint at offset {start} runs past the "
                                     f"end, {i} byte{'s' * (i != 1)} present")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if i and not byte:
                    self.problems.append(f"the {name} varint at offset {start} is not minimally encoded")
                elif value > _U64_MAX:
                    self.problems.append(f"the {name} varint at offset {start} is {value}, over 2^64-1")
                return value
        raise CorruptError(f"file is corrupt: the {name} varint at offset {start} is longer than "
                           f"{MAX_VARINT_BYTES} bytes")


@dataclass(frozen=True)
class _Walked:
    """The fields as laid out in the file, before their meanings are checked."""

    flags: int
    kinds: int
    model_id: bytes
    model_hash: bytes
    budget: int
    seed: int
    dims: tuple[int, ...]
    meta: bytes
    content_hash: bytes
    words: int
    words_at: int
    problems: tuple[str, ...]  # non-canonical varints, reported after the CRC-32


def _check_magic(data: memoryview) -> None:
    if len(data) == 0:
        raise NotArdmError("not an .ardm file (the input is empty)")
    if len(data) < len(MAGIC):
        raise NotArdmError(f"not an .ardm file (only {len(data)} bytes, shorter than the magic number)")
    if data[:len(MAGIC)] != MAGIC:
        damaged = any(bytes(data[:len(start)]) == start for start in _TEXT_DAMAGED_STARTS)
        hint = "; it looks like an .ardm file damaged by a text-mode transfer" if damaged else ""
        raise NotArdmError(f"not an .ardm file (bad magic number{hint})")


def _walk(r: _Reader) -> _Walked:
    """Reads every field after the version, following the lengths; TruncatedError if one runs out."""
    flags, kinds, id_len = r.field("<3B", "flags/kinds/model id length")
    model_id = bytes(r.block(id_len, "model id"))
    model_hash = bytes(r.block(HASH_BYTES, "model hash"))
    budget, seed = r.varint("budget"), r.varint("seed")
    ndim = r.field("<B", "ndim")[0]
    dims = tuple(r.varint(f"dimension {i}") for i in range(ndim))  # ndim <= 255: no large allocation
    meta = bytes(r.block(r.varint("meta length"), "meta"))
    content = bytes(r.block(HASH_BYTES, "content hash"))
    words = r.varint("payload word count")
    words_at = r.pos
    r.block(4 * words, "payload")
    return _Walked(flags, kinds, model_id, model_hash, budget, seed, dims, meta, content, words, words_at,
                   tuple(r.problems))


def _check_crc(r: _Reader) -> None:
    """The CRC-32 of every byte before it must match; nothing may follow it."""
    computed = zlib.crc32(r.data[:r.pos])
    (stored,) = r.field("<I", "CRC-32")
    if stored != computed:
        raise CorruptError(f"file is corrupt: CRC-32 mismatch (stored {stored:08x}, computed {computed:08x})")
    if r.pos != len(r.data):
        raise CorruptError(f"file is corrupt: {len(r.data) - r.pos} trailing bytes after the CRC-32")


def _code_name(codes: dict[str, int], value: int, what: str) -> str:
    for name, code in codes.items():
        if code == value:
            return name
    known = ", ".join(f"{c}={n}" for n, c in codes.items())
    raise CorruptError(f"file is corrupt: unknown {what} code {value} (known: {known})")


def _decode_meta(raw: bytes) -> Any:
    if len(raw) > MAX_META_BYTES:
        raise CorruptError(f"file is corrupt: meta JSON is {len(raw)} bytes, over {MAX_META_BYTES}")
    if not raw:
        return {}

    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(raw.decode("utf-8"), parse_constant=no_constants)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CorruptError(f"file is corrupt: meta is not UTF-8 JSON ({type(e).__name__})") from None


def _interpret(w: _Walked, version: int) -> Header:
    """Header from walked fields; CorruptError for bad varints, reserved bits, unknown codes, bad values."""
    if w.problems:
        raise CorruptError(f"file is corrupt: {w.problems[0]}")
    reserved = w.flags & ~VERSION_FLAGS[version]
    if reserved or w.kinds & 0xC0:
        raise CorruptError(f"file is corrupt: reserved flags {reserved:#04x} / reserved kinds bits "
                           f"{w.kinds & 0xC0:#04x} must be zero")
    if version_for(w.flags) != version:
        raise CorruptError(f"file is corrupt: a version-{version} file with flags {w.flags:#04x} (such files "
                           f"are written as version {version_for(w.flags)})")
    if not w.model_id.isascii():
        raise CorruptError("file is corrupt: model id is not ASCII")
    if w.words > _U32_MAX:
        raise CorruptError(f"file is corrupt: payload word count {w.words} is over {_U32_MAX}")
    header = Header(media=_code_name(MEDIA_CODES, w.kinds & 3, "media"),
                    method=_code_name(METHOD_CODES, w.kinds >> 2 & 3, "method"),
                    arithmetic=_code_name(ARITHMETIC_CODES, w.kinds >> 4 & 3, "arithmetic"),
                    model_id=w.model_id.decode("ascii"), model_hash=w.model_hash, budget=w.budget,
                    seed=w.seed, shape=w.dims, meta=_decode_meta(w.meta), content_hash=w.content_hash,
                    offsets=bool(w.flags & FLAG_OFFSETS), channel_transform=bool(w.flags & FLAG_CHANNELS),
                    low_modes=bool(w.flags & FLAG_LOW), adapt=bool(w.flags & FLAG_ADAPT),
                    phases=bool(w.flags & FLAG_PHASES))
    problem = _header_problem(header)
    if problem:
        raise CorruptError(f"file is corrupt: {problem}")
    return header


def _parse(data: bytes) -> tuple[Header, _Walked, memoryview]:
    """Every check that needs no model: magic, version, lengths, CRC-32, then field meanings."""
    view = memoryview(data).cast("B")
    _check_magic(view)
    r = _Reader(view)
    r.pos = len(MAGIC)
    (version,) = r.field("<B", "version")
    if version not in VERSIONS:
        raise UnsupportedVersionError(f"unsupported format version {version} (this release reads versions "
                                      f"{', '.join(map(str, VERSIONS))})")
    walked = _walk(r)
    _check_crc(r)
    return _interpret(walked, version), walked, view


def read_header(data: bytes) -> Header:
    """The header of an .ardm file (for `ardmzip info`), after every check unpack makes.

    Raises NotArdmError, UnsupportedVersionError, TruncatedError or CorruptError (all FormatError).
    """
    return _parse(data)[0]


def unpack(data: bytes) -> tuple[Header, np.ndarray]:
    """Header and payload words (a C-contiguous uint32 copy, shape (words,)) of an .ardm file.

    Checks everything that can be checked without a model; raises the FormatError subclasses of
    read_header. The caller checks content_hash after decoding.
    """
    header, walked, view = _parse(data)
    words = np.frombuffer(view, dtype="<u4", count=walked.words, offset=walked.words_at)
    return header, words.astype(np.uint32)


def content_hash(samples: np.ndarray) -> bytes:
    """First 4 bytes of SHA-256 over dtype.str, 0x00, the comma-joined shape, 0x00, the C-order bytes.

    Multi-byte dtypes are hashed little-endian (dtype.str "<u2", never ">u2"), so equal arrays hash
    equally on every machine; arrays differing in dtype, shape or any value hash differently (but for
    a 2^-32 chance of collision).
    """
    a = np.asarray(samples)
    if a.dtype.hasobject:
        raise ValueError(f"cannot hash samples of dtype {a.dtype}: object arrays have no fixed bytes")
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    if not a.flags.c_contiguous:
        a = a.copy(order="C")
    prefix = f"{a.dtype.str}\0{','.join(map(str, a.shape))}\0".encode("ascii")
    h = hashlib.sha256(prefix)
    h.update(a.reshape(-1).view(np.uint8) if a.size else b"")
    return h.digest()[:HASH_BYTES]
