"""Audio files <-> integer samples + metadata, exactly, through soundfile (libsndfile). No torch here.

An :class:`Audio` is one array of samples, (frames, channels), in their true signed integer range, plus
a JSON-able ``meta`` dict that rebuilds the file:

    bits  dtype   range                 subtypes read and written back
    8     int8    -128 .. 127           PCM_U8 (WAV, AIFF-C "raw "), PCM_S8 (AIFF, FLAC)
    16    int16   -32768 .. 32767       PCM_16
    24    int32   -8388608 .. 8388607   PCM_24

Unsigned 8-bit files (PCM_U8: every 8-bit WAV) are held as signed too (value - 128, which is what
libsndfile does); the subtype in meta restores them. soundfile hands out 24-bit samples shifted left by
8 in int32 and 8-bit ones shifted left by 8 in int16: read_audio reads int32 and shifts back, so the
array holds the values that are stored in the file.

``meta`` keys: "format" ("WAV", "WAVEX", "FLAC" or "AIFF": the container written back), "subtype",
"samplerate" (Hz), "channels"; "endian" ("BIG" for a RIFX WAV, "LITTLE" for a 16- or 24-bit AIFF-C
"sowt") when not the container's default; "tags" {name: text} for soundfile's string fields (TAG_FIELDS) that the file
has; "dropped" sorted names of what the input had that is not kept (RIFF/AIFF chunk ids such as "bext",
"cue ", "smpl", "MARK", "INST", FLAC blocks such as "PICTURE", "CUESHEET", "APPLICATION").

What comes back: a file of the same container type, subtype, sample rate, channel count and endianness,
with exactly the same samples, and the tags libsndfile reads. Byte-identical files are not a goal (the
file is re-written by libsndfile): not kept are WAV LIST/INFO entries and FLAC Vorbis comments beyond
TAG_FIELDS (without being named), the WAVE_FORMAT_EXTENSIBLE channel mask and valid-bits field, FLAC's
compression level, block sizes, seek table, padding and MD5, chunk order and padding, and the named
"dropped" chunks. libsndfile appends " (libsndfile-VERSION)" to a "software" tag it writes; read_audio
takes such a suffix off, so meta is the same for a file and its rewrite.

Refused with UnsupportedInputError (one line naming the file and the problem): anything that is not a
WAV (RIFF/RIFX), FLAC or AIFF/AIFF-C file, float, 32-bit, u-law, A-law and ADPCM samples, FLAC of other
than 8, 16 or 24 bits, damaged or truncated files (a data chunk longer than the file, an undecodable
FLAC frame), a FLAC without a sample count (streamed) that holds audio, and clips over MAX_SAMPLES.
Zero-frame and one-sample clips are fine. Two libsndfile 1.2 slips are mended in write_audio: it writes
nothing for an empty FLAC (write_audio writes the header itself), and it counts the pad byte of an
8-bit mono AIFF with an odd frame count as one more frame (write_audio corrects COMM and SSND).
"""
from __future__ import annotations

import io
import json
import re
import struct
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import soundfile as sf

from ardmzip.errors import UnsupportedInputError

MAX_SAMPLES = 600_000_000  # frames x channels (an hour of 48 kHz 8-channel audio is 1.4e9 bytes)
AUDIO_EXTENSIONS = (".wav", ".wave", ".flac", ".aif", ".aiff", ".aifc")
BITS = {"PCM_U8": 8, "PCM_S8": 8, "PCM_16": 16, "PCM_24": 24}  # the subtypes read_audio accepts
DTYPES = {8: np.int8, 16: np.int16, 24: np.int32}
FORMATS = ("WAV", "WAVEX", "FLAC", "AIFF")
TAG_FIELDS = ("title", "copyright", "software", "artist", "comment", "date", "album", "license",
              "tracknumber", "genre")  # soundfile's string fields; WAV and AIFF hold only some of them
TAG_BUDGET = 100_000  # bytes of tag text kept in meta (the rest is dropped, and named)

_SUPPORTED = "WAV, FLAC or AIFF with 8-, 16- or 24-bit integer PCM samples"
# Chunks whose content read_audio keeps (as samples, format fields or tags)
_RIFF_KEPT = {b"fmt ", b"data", b"fact", b"PEAK"}
_AIFF_KEPT = {b"COMM", b"SSND", b"FVER", b"NAME", b"AUTH", b"(c) ", b"ANNO", b"COMT"}
_FLAC_BLOCKS = {0: "STREAMINFO", 1: "PADDING", 2: "APPLICATION", 3: "SEEKTABLE", 4: "VORBIS_COMMENT",
                5: "CUESHEET", 6: "PICTURE"}
_FLAC_KEPT = {0, 1, 3, 4}  # padding and seek table are re-made, not "dropped"
_UNKNOWN_SIZES = {0xFFFFFFFF}  # data chunk size written by streaming WAV writers
_LIBSNDFILE_SUFFIX = re.compile(r" ?\(libsndfile-[^)]*\).?$", re.DOTALL)  # .?: AIFF pad byte libsndfile sometimes reads back


@dataclass
class Audio:
    """What the codec codes: samples (frames, channels) of DTYPES[bits], and JSON-able meta."""

    samples: np.ndarray
    meta: dict

    @property
    def bits(self) -> int:
        return BITS[self.meta["subtype"]]

    @property
    def samplerate(self) -> int:
        return self.meta["samplerate"]

    @property
    def channels(self) -> int:
        return self.meta["channels"]

    @property
    def frames(self) -> int:
        return self.samples.shape[0]


def looks_like_audio(data: bytes) -> bool:
    """True when `data` starts like a WAV (RIFF or RIFX "WAVE"), FLAC or AIFF/AIFF-C file."""
    head = bytes(data[:12])
    return (head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE" or head[:4] == b"fLaC"
            or head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"))


# ---------------------------------------------------------------------------------------------- reading

def read_audio(data: bytes, name: str = "<stdin>") -> Audio:
    """Decode a WAV, FLAC or AIFF file's bytes into samples + meta; UnsupportedInputError naming `name`."""
    if not looks_like_audio(data):
        what = "empty input (0 bytes)" if not data else "not a WAV, FLAC or AIFF file"
        raise UnsupportedInputError(f"{name}: {what}; pass {_SUPPORTED}")
    structure = _structure(data, name)
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            meta = _meta_of(f, name)
            frames = _frames_to_read(f, structure, name)
            raw = (f.read(frames, dtype="int32", always_2d=True) if frames
                   else np.zeros((0, f.channels), np.int32))
            tags = f.copy_metadata()
    except (sf.SoundFileError, ValueError) as e:
        raise UnsupportedInputError(f"{name}: damaged or truncated {_kind(data)} file ({_reason(e)})") from e
    if len(raw) != frames:
        raise UnsupportedInputError(f"{name}: truncated {_kind(data)} file ({len(raw)} of the {frames} "
                                    "frames its header announces)")
    bits = BITS[meta["subtype"]]
    raw >>= 32 - bits  # soundfile's int32 scale -> the stored values
    samples = raw.astype(DTYPES[bits])
    _add_tags(meta, tags, structure["dropped"])
    return Audio(samples, meta)


def _kind(data: bytes) -> str:
    return {b"RIFF": "WAV", b"RIFX": "WAV", b"fLaC": "FLAC", b"FORM": "AIFF"}[bytes(data[:4])]


def _reason(e: Exception) -> str:
    """libsndfile's message without soundfile's "Error opening <_io.BytesIO object at 0x...>: " prefix."""
    return str(e).rsplit(">: ", 1)[-1].strip(" :") or type(e).__name__


def _meta_of(f: sf.SoundFile, name: str) -> dict:
    """format/subtype/samplerate/channels (+ endian) of an open file; refuse what can't round-trip."""
    if f.format not in FORMATS:
        raise UnsupportedInputError(f"{name}: {f.format} files are not supported; pass {_SUPPORTED}")
    if f.subtype not in BITS:
        what = sf.available_subtypes().get(f.subtype, f.subtype)
        raise UnsupportedInputError(f"{name}: {what} samples ({f.format} {f.subtype}) are not supported; "
                                    f"pass {_SUPPORTED}")
    meta = {"format": f.format, "subtype": f.subtype, "samplerate": f.samplerate, "channels": f.channels}
    if f.endian != "FILE" and sf.check_format(f.format, f.subtype, f.endian):  # not for 8 bits
        meta["endian"] = f.endian
    return meta


def _frames_to_read(f: sf.SoundFile, structure: dict, name: str) -> int:
    """The frame count of the header; 0 for an empty FLAC without one; refuse streamed FLAC and huge clips."""
    frames = f.frames
    if structure.get("flac_total") == 0:  # FLAC: total samples unknown; libsndfile says 2**63 - 1
        if structure["flac_audio_bytes"]:
            raise UnsupportedInputError(f"{name}: FLAC stream without a total sample count is not supported; "
                                        "re-encode it with the flac tool (flac -d, then flac)")
        frames = 0
    if frames * f.channels > MAX_SAMPLES:
        raise UnsupportedInputError(f"{name}: clip too long ({frames} frames x {f.channels} channels); at "
                                    f"most {MAX_SAMPLES} samples, so split it")
    return frames


def _add_tags(meta: dict, tags: dict, dropped: set[str]) -> None:
    """meta["tags"] (within TAG_BUDGET, the largest dropped first) and meta["dropped"]."""
    tags = {k: v for k, v in tags.items() if k in TAG_FIELDS and v}
    if "software" in tags:  # libsndfile appends its version when it writes the tag: keep it out of meta
        tags["software"] = _LIBSNDFILE_SUFFIX.sub("", tags["software"])
        if not tags["software"]:
            del tags["software"]
    while tags and len(json.dumps(tags, ensure_ascii=False).encode()) > TAG_BUDGET:
        big = max(tags, key=lambda k: len(tags[k]))
        del tags[big]
        dropped.add(f"tag {big}")
    if tags:
        meta["tags"] = tags
    if dropped:
        meta["dropped"] = sorted(dropped)


# ------------------------------------------------------------------------------ the container structure
# libsndfile reads a WAV or AIFF whose data chunk runs past the end of the file without complaint (it
# returns fewer frames), so the chunk sizes are checked here; the walk also names the dropped chunks.

def _structure(data: bytes, name: str) -> dict:
    """{"dropped": set of names}, plus "flac_total" and "flac_audio_bytes" for FLAC; refuse truncation."""
    if data[:4] == b"fLaC":
        return _flac_structure(data, name)
    order = "<" if data[:4] == b"RIFF" else ">"
    wav = data[8:12] == b"WAVE"
    samples_chunk, kept = (b"data", _RIFF_KEPT) if wav else (b"SSND", _AIFF_KEPT)
    dropped, found = set(), False
    for cid, body, size in _chunks(data, order):
        if cid == samples_chunk and size not in _UNKNOWN_SIZES and body + size > len(data):
            raise UnsupportedInputError(f"{name}: truncated {_kind(data)} file ({cid.decode()} chunk of "
                                        f"{size} bytes, {len(data) - body} present)")
        found |= cid == samples_chunk
        if (cid, wav) in ((b"LIST", True), (b"APPL", False)):
            # tags are read from LIST "INFO" (WAV) and APPL "m3ga" (AIFF software); adtl (cue labels) etc. not
            if data[body:body + 4] not in (b"INFO", b"m3ga"):
                dropped.add(f"{cid.decode()} {data[body:body + 4].decode('latin-1')}")
        elif cid not in kept:
            dropped.add(cid.decode("latin-1"))
    if not found:  # libsndfile would fail too, after reading past the end of a truncated file
        raise UnsupportedInputError(f"{name}: damaged or truncated {_kind(data)} file (no "
                                    f"{samples_chunk.decode()} chunk)")
    return {"dropped": dropped}


def _chunks(data: bytes, order: str) -> Iterator[tuple[bytes, int, int]]:
    """(chunk id, body offset, declared size) of each chunk of a RIFF/RIFX/FORM file, padded to 2 bytes
    (or not, where a writer left out the pad byte: then only the unpadded offset holds a chunk id)."""
    pos = 12
    while pos + 8 <= len(data):
        cid, size = bytes(data[pos:pos + 4]), struct.unpack(order + "I", data[pos + 4:pos + 8])[0]
        yield cid, pos + 8, size
        pos += 8 + size
        if size & 1 and not (_is_chunk_id(data[pos:pos + 4]) and not _is_chunk_id(data[pos + 1:pos + 5])):
            pos += 1


def _is_chunk_id(b: bytes) -> bool:
    """Letters, digits, spaces and "(c) " ("mpl$", the misaligned "smpl" of an unpadded file, is not)."""
    return len(b) == 4 and (b.decode("latin-1").replace(" ", "").isalnum() or b == b"(c) ")


def _flac_structure(data: bytes, name: str) -> dict:
    """Walk the FLAC metadata blocks: bits per sample, total samples, the bytes of audio frames after them."""
    pos, dropped, info = 4, set(), None
    while True:
        if pos + 4 > len(data):
            raise UnsupportedInputError(f"{name}: truncated FLAC file (ends inside its metadata)")
        kind, last, size = data[pos] & 0x7F, data[pos] & 0x80, int.from_bytes(data[pos + 1:pos + 4], "big")
        if pos + 4 + size > len(data):
            raise UnsupportedInputError(f"{name}: truncated FLAC file (ends inside its metadata)")
        if kind == 0 and size >= 18:
            info = int.from_bytes(data[pos + 14:pos + 22], "big")  # rate 20, channels 3, bits 5, total 36
        elif kind not in _FLAC_KEPT:
            dropped.add(_FLAC_BLOCKS.get(kind, f"FLAC block {kind}"))
        pos += 4 + size
        if last:
            break
    if info is None:
        raise UnsupportedInputError(f"{name}: damaged FLAC file (no STREAMINFO block)")
    bits = ((info >> 36) & 0x1F) + 1
    if bits not in DTYPES:
        raise UnsupportedInputError(f"{name}: {bits}-bit FLAC is not supported; pass {_SUPPORTED}")
    return {"dropped": dropped, "flac_total": info & (2 ** 36 - 1), "flac_audio_bytes": len(data) - pos}


# ---------------------------------------------------------------------------------------------- writing

def write_audio(audio: Audio) -> bytes:
    """Encode `audio` as a file of meta["format"] and meta["subtype"] (with its tags); ValueError if the
    samples don't fit the meta (shape, channel count, range of the bits)."""
    meta, raw = audio.meta, _raw(audio)
    if meta["format"] == "FLAC" and len(raw) == 0:
        return _empty_flac(meta)
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", meta["samplerate"], meta["channels"], meta["subtype"],
                      meta.get("endian", "FILE"), meta["format"]) as f:
        for key, value in meta.get("tags", {}).items():
            if key in TAG_FIELDS:
                setattr(f, key, value)
        f.write(raw)
    data = buf.getvalue()
    if meta["format"] == "AIFF" and len(raw) % 2 and audio.bits == 8 and audio.channels == 1:
        data = _uncount_aiff_pad_byte(data, len(raw))
    return data


def _uncount_aiff_pad_byte(data: bytes, frames: int) -> bytes:
    """Fix libsndfile 1.2's 8-bit mono AIFF of an odd frame count, whose COMM and SSND count the pad
    byte as one more frame: set both to `frames` (the pad byte stays, as AIFF wants)."""
    out = bytearray(data)
    for cid, body, size in _chunks(data, ">"):
        if cid == b"COMM" and struct.unpack(">I", data[body + 2:body + 6])[0] == frames + 1:
            out[body + 2:body + 6] = struct.pack(">I", frames)
        elif cid == b"SSND" and size % 2 == 0:
            offset = struct.unpack(">I", data[body:body + 4])[0]
            out[body - 4:body] = struct.pack(">I", 8 + offset + frames)
    return bytes(out)


def _raw(audio: Audio) -> np.ndarray:
    """The samples as int32 shifted left to soundfile's full scale; ValueError if they don't fit the meta."""
    s, bits, channels = audio.samples, audio.bits, audio.channels
    if s.ndim != 2 or s.shape[1] != channels or not np.issubdtype(s.dtype, np.integer):
        raise ValueError(f"{channels}-channel audio needs integer samples of shape (frames, {channels}), "
                         f"got {s.dtype} {s.shape}")
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if s.size and (s.min() < lo or s.max() > hi):
        raise ValueError(f"{bits}-bit samples must lie in [{lo}, {hi}], got [{s.min()}, {s.max()}]")
    return np.ascontiguousarray(s, dtype=np.int32) << (32 - bits)


def _empty_flac(meta: dict) -> bytes:
    """A FLAC file with no audio frames: STREAMINFO (total samples 0) and the tags as Vorbis comments."""
    fields = (meta["samplerate"] << 44) | ((meta["channels"] - 1) << 41) | ((BITS[meta["subtype"]] - 1) << 36)
    info = struct.pack(">HH", 4096, 4096) + bytes(6) + fields.to_bytes(8, "big") + bytes(16)
    blocks = [(0, info)]
    tags = [f"{k}={v}".encode() for k, v in meta.get("tags", {}).items() if k in TAG_FIELDS]
    if tags:
        vendor = b"ardmzip"
        blocks.append((4, struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(tags))
                       + b"".join(struct.pack("<I", len(t)) + t for t in tags)))
    out = b"fLaC"
    for i, (kind, body) in enumerate(blocks):
        out += bytes([kind | (0x80 if i == len(blocks) - 1 else 0)]) + len(body).to_bytes(3, "big") + body
    return out


# ----------------------------------------------------------------------------------------------- arrays

def audio_from_array(samples: np.ndarray, samplerate: int) -> Audio:
    """Wrap integer samples, (frames,) mono or (frames, channels), as a WAV: int8 -> 8-bit (PCM_U8),
    int16 -> PCM_16, int32 -> PCM_24 (values must lie in the 24-bit range)."""
    a = np.asarray(samples)
    bits = {np.dtype(np.int8): 8, np.dtype(np.int16): 16, np.dtype(np.int32): 24}.get(a.dtype)
    if bits is None or a.ndim not in (1, 2) or (a.ndim == 2 and a.shape[1] == 0):
        raise UnsupportedInputError(f"audio array of dtype {a.dtype} and shape {a.shape} is not supported; "
                                    "pass int8, int16 or int32 (24-bit values) of shape (frames, channels)")
    if bits == 24 and a.size and (a.min() < -(1 << 23) or a.max() >= 1 << 23):
        raise UnsupportedInputError("int32 audio samples must be 24-bit values in [-8388608, 8388607]")
    if not isinstance(samplerate, (int, np.integer)) or samplerate <= 0:
        raise UnsupportedInputError(f"sample rate {samplerate!r} is not supported; pass a positive integer")
    a = np.ascontiguousarray(a[:, None] if a.ndim == 1 else a)
    subtype = {8: "PCM_U8", 16: "PCM_16", 24: "PCM_24"}[bits]
    return Audio(a, {"format": "WAV", "subtype": subtype, "samplerate": int(samplerate),
                     "channels": a.shape[1]})
