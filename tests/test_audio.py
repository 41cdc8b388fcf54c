"""Tests of ardmzip.audio: WAV/FLAC/AIFF files <-> integer samples + meta, exact round trips, clear refusals."""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from ardmzip.audio import (BITS, DTYPES, Audio, audio_from_array, looks_like_audio, read_audio,
                           write_audio)
from ardmzip.errors import UnsupportedInputError

SUBTYPES = {"WAV": ("PCM_U8", "PCM_16", "PCM_24"), "FLAC": ("PCM_S8", "PCM_16", "PCM_24"),
            "AIFF": ("PCM_S8", "PCM_U8", "PCM_16", "PCM_24"), "WAVEX": ("PCM_16", "PCM_24")}
FORMAT_SUBTYPES = [(fmt, st) for fmt, subtypes in SUBTYPES.items() for st in subtypes]
RATES = (8000, 16000, 44100, 48000)


def random_samples(frames: int, channels: int, bits: int, seed: int = 0) -> np.ndarray:
    """Uniform random samples over the full signed range, both extremes included when frames > 1."""
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    s = rng.integers(lo, hi, (frames, channels), endpoint=True).astype(DTYPES[bits])
    if frames > 1:
        s[0, 0], s[-1, -1] = lo, hi
    return s


def make_audio(fmt: str, subtype: str, rate: int, frames: int, channels: int, **meta) -> Audio:
    samples = random_samples(frames, channels, BITS[subtype], seed=frames + channels)
    return Audio(samples, {"format": fmt, "subtype": subtype, "samplerate": rate, "channels": channels,
                           **meta})


def assert_round_trip(audio: Audio) -> bytes:
    """write_audio -> read_audio gives back the same samples and meta; returns the file."""
    data = write_audio(audio)
    assert looks_like_audio(data)
    back = read_audio(data, "back")
    assert back.samples.dtype == DTYPES[audio.bits] and back.samples.shape == audio.samples.shape
    assert np.array_equal(back.samples, audio.samples)
    assert back.meta == audio.meta
    assert (back.bits, back.samplerate, back.channels, back.frames) == (
        audio.bits, audio.samplerate, audio.channels, audio.frames)
    return data


def sf_bytes(samples: np.ndarray, rate: int, fmt: str, subtype: str, **options) -> bytes:
    """`samples` written by soundfile itself (float in [-1, 1), or int scaled to its full dtype range)."""
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=subtype, **options)
    return buf.getvalue()


def raises_one_line(data: bytes, *words: str) -> str:
    """read_audio refuses `data` with one line naming the file and containing `words`."""
    with pytest.raises(UnsupportedInputError) as e:
        read_audio(data, "clip.x")
    msg = str(e.value)
    assert msg.startswith("clip.x: ") and "\n" not in msg
    for w in words:
        assert w in msg
    return msg


# ------------------------------------------------------------------------------------------ round trips

@pytest.mark.parametrize("fmt,subtype", FORMAT_SUBTYPES)
@pytest.mark.parametrize("channels", [1, 2, 3])
@pytest.mark.parametrize("frames", [0, 1, 997])
def test_round_trip(fmt, subtype, channels, frames):
    for rate in RATES:
        data = assert_round_trip(make_audio(fmt, subtype, rate, frames, channels))
        info = sf.info(io.BytesIO(data))  # what another reader sees
        assert (info.format, info.subtype, info.samplerate, info.channels) == (fmt, subtype, rate, channels)
        if frames or fmt != "FLAC":  # an empty FLAC has no sample count (libsndfile says 2**63 - 1)
            assert info.frames == frames


@pytest.mark.parametrize("fmt,endian,magic", [("WAV", "BIG", b"RIFX"), ("AIFF", "LITTLE", b"FORM")])
def test_endianness_is_kept(fmt, endian, magic):
    data = assert_round_trip(make_audio(fmt, "PCM_16", 22050, 100, 2, endian=endian))
    assert data[:4] == magic and read_audio(data).meta["endian"] == endian


def test_long_and_odd_clips():
    assert_round_trip(make_audio("FLAC", "PCM_16", 44100, 5 * 44100, 2))  # 5 s stereo
    assert_round_trip(make_audio("WAV", "PCM_24", 7, 3, 8))  # 7 Hz, 8 channels
    assert_round_trip(make_audio("AIFF", "PCM_S8", 192000, 2, 1))


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "AIFF"])
def test_tags_round_trip(fmt):
    tags = {"title": "Ünïcode title", "artist": "someone", "comment": "a comment", "copyright": "(c) 2024",
            "software": "an editor"}  # libsndfile writes "an editor (libsndfile-1.x)"; read_audio strips it
    if fmt != "AIFF":  # AIFF holds title, copyright, software, artist and comment only
        tags.update(date="2024", album="an album", genre="speech", tracknumber="3")
    if fmt == "FLAC":
        tags["license"] = "CC0"
    for frames in (0, 10):
        assert_round_trip(make_audio(fmt, "PCM_16", 8000, frames, 1, tags=tags))


# ------------------------------------------------------------------ the values soundfile's files hold

def test_16_bit_values_are_the_stored_ones():
    s = random_samples(500, 2, 16)
    for fmt in ("WAV", "FLAC", "AIFF"):
        assert np.array_equal(read_audio(sf_bytes(s, 8000, fmt, "PCM_16")).samples, s)


def test_24_bit_values_undo_soundfiles_shift():
    s = random_samples(500, 2, 24).astype(np.int32)
    for fmt in ("WAV", "FLAC", "AIFF"):
        data = sf_bytes(s << 8, 48000, fmt, "PCM_24")  # soundfile's int32 scale: the value << 8
        assert np.array_equal(sf.read(io.BytesIO(data), dtype="int32")[0] >> 8, s)
        back = read_audio(data)
        assert back.samples.dtype == np.int32 and np.array_equal(back.samples, s) and back.bits == 24
    wav = sf_bytes(np.array([[-(1 << 23)], [(1 << 23) - 1]], np.int32) << 8, 8000, "WAV", "PCM_24")
    assert wav[-6:] == b"\x00\x00\x80\xff\xff\x7f"  # little-endian 24-bit min and max


def wav_u8(payload: bytes, channels: int = 1, pad: bool = True, after: bytes = b"") -> bytes:
    """An 8-bit (unsigned) WAV written by hand; `pad`: the pad byte after odd data; `after`: more chunks."""
    fmt = struct.pack("<HHIIHH", 1, channels, 8000, 8000 * channels, channels, 8)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(payload)) + payload
            + b"\0" * (len(payload) & pad) + after)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def aiff_s8(payload: bytes) -> bytes:
    """An 8-bit (signed) mono AIFF written by hand; 8000 Hz as an 80-bit float."""
    rate = b"\x40\x0b\xfa" + bytes(7)
    comm = struct.pack(">hIh", 1, len(payload), 8) + rate
    ssnd = struct.pack(">II", 0, 0) + payload
    body = b"AIFF" + b"COMM" + struct.pack(">I", len(comm)) + comm + b"SSND" + struct.pack(">I", len(ssnd)) + ssnd
    return b"FORM" + struct.pack(">I", len(body)) + body


def test_8_bit_wav_is_unsigned_and_aiff_signed_both_held_signed():
    wav = read_audio(wav_u8(bytes([0, 1, 127, 128, 129, 255])), "u8.wav")
    assert wav.meta["subtype"] == "PCM_U8" and wav.samples.dtype == np.int8
    assert wav.samples[:, 0].tolist() == [-128, -127, -1, 0, 1, 127]
    aiff = read_audio(aiff_s8(bytes([0x80, 0x81, 0xFF, 0, 1, 0x7F])), "s8.aiff")
    assert aiff.meta["subtype"] == "PCM_S8" and aiff.samples[:, 0].tolist() == [-128, -127, -1, 0, 1, 127]
    assert write_audio(wav).endswith(bytes([0, 1, 127, 128, 129, 255]))  # unsigned again
    assert write_audio(aiff).endswith(bytes([0x80, 0x81, 0xFF, 0, 1, 0x7F]))


def test_unknown_chunks_are_named_as_dropped():
    smpl = b"smpl" + struct.pack("<I", 4) + bytes(4)
    adtl = b"LIST" + struct.pack("<I", 4) + b"adtl"
    for payload, pad in ((bytes(4), True), (bytes(3), True), (bytes(3), False)):  # pad byte left out
        back = read_audio(wav_u8(payload, pad=pad, after=smpl + adtl))
        assert back.meta["dropped"] == ["LIST adtl", "smpl"] and back.samples.tolist() == [[-128]] * len(payload)
        assert "dropped" not in read_audio(write_audio(back)).meta


# ------------------------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("fmt,subtype,words", [
    ("WAV", "FLOAT", ("32 bit float", "FLOAT")), ("AIFF", "DOUBLE", ("64 bit float",)),
    ("WAV", "ULAW", ("U-Law",)), ("AIFF", "ALAW", ("A-Law",)), ("WAV", "PCM_32", ("32 bit",)),
    ("WAV", "IMA_ADPCM", ("ADPCM",)), ("OGG", "VORBIS", ("not a WAV, FLAC or AIFF",)),
    ("AU", "PCM_16", ("not a WAV",)), ("W64", "PCM_16", ("not a WAV",))])
def test_unsupported_sample_formats(fmt, subtype, words):
    raises_one_line(sf_bytes(np.full((100, 1), 0.25, np.float32), 8000, fmt, subtype), *words)


@pytest.mark.parametrize("data", [b"", b"\0" * 100, bytes(range(256)) * 4, b"RIFF\0\0\0\0WEBPVP8L" + bytes(40),
                                  b"RIFF\0\0\0\0WAVE" + bytes(100), b"fLaC", b"FORM\0\0\0\4AIFF"])
def test_garbage_is_refused(data):
    raises_one_line(data)


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("AIFF", "PCM_24"),
                                         ("FLAC", "PCM_24"), ("WAV", "PCM_U8")])
def test_truncated_files_are_refused(fmt, subtype, capfd):
    data = write_audio(make_audio(fmt, subtype, 16000, 3000, 2))
    for cut in (len(data) - 1, len(data) - 7, len(data) // 2, 60, 44, 40, 20, 12, 5):
        raises_one_line(data[:cut], fmt)
    assert "Exception ignored" not in capfd.readouterr().err  # no noise from soundfile's callbacks


def flac_with_streaminfo(data: bytes, *, bits: int | None = None, total: int | None = None) -> bytes:
    """A FLAC file with STREAMINFO's bits per sample or total samples replaced."""
    out = bytearray(data)
    v = int.from_bytes(out[18:26], "big")
    if bits is not None:
        v = (v & ~(0x1F << 36)) | ((bits - 1) << 36)
    if total is not None:
        v = (v & ~(2 ** 36 - 1)) | total
    out[18:26] = v.to_bytes(8, "big")
    return bytes(out)


def test_flac_without_sample_count_and_odd_bit_depths():
    data = write_audio(make_audio("FLAC", "PCM_16", 8000, 5000, 1))
    raises_one_line(flac_with_streaminfo(data, total=0), "without a total sample count")
    raises_one_line(flac_with_streaminfo(data, bits=12), "12-bit FLAC")
    empty = write_audio(make_audio("FLAC", "PCM_16", 8000, 0, 1))
    assert read_audio(empty).frames == 0  # total 0 and no frames: an empty clip


def test_looks_like_audio():
    s = random_samples(4, 1, 16)
    for fmt in ("WAV", "FLAC", "AIFF"):
        assert looks_like_audio(sf_bytes(s, 8000, fmt, "PCM_16"))
    assert looks_like_audio(sf_bytes(s, 8000, "AIFF", "PCM_16", endian="LITTLE"))  # AIFF-C
    for other in (b"", b"RIFF\0\0\0\0WEBPVP8L", b"\x89PNG\r\n\x1a\n", b"OggS", b"ID3\x04"):
        assert not looks_like_audio(other)


# ------------------------------------------------------------------------------------ writing, arrays

def test_write_refuses_samples_that_do_not_fit():
    a = make_audio("WAV", "PCM_16", 8000, 10, 2)
    with pytest.raises(ValueError, match="shape"):
        write_audio(Audio(a.samples[:, :1], a.meta))
    with pytest.raises(ValueError, match=r"\[-128, 127\]"):
        write_audio(Audio(a.samples, {**a.meta, "subtype": "PCM_U8"}))
    with pytest.raises(ValueError, match="integer"):
        write_audio(Audio(a.samples.astype(np.float32), a.meta))


def test_audio_from_array():
    mono = audio_from_array(random_samples(100, 1, 16)[:, 0], 16000)
    assert mono.samples.shape == (100, 1) and mono.meta["subtype"] == "PCM_16"
    assert_round_trip(mono)
    assert_round_trip(audio_from_array(random_samples(50, 2, 24), 96000))
    assert_round_trip(audio_from_array(random_samples(50, 3, 8), 11025))
    assert_round_trip(audio_from_array(np.zeros(0, np.int16), 8000))
    for bad in (np.zeros(4, np.float32), np.zeros((4, 2, 2), np.int16), np.array([1 << 23], np.int32)):
        with pytest.raises(UnsupportedInputError):
            audio_from_array(bad, 8000)
    with pytest.raises(UnsupportedInputError, match="sample rate"):
        audio_from_array(np.zeros(4, np.int16), 0)


# ------------------------------------------------------------- ardmzip.data's audio helpers (no packages)

def riff_chunk(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)


def sf2_bytes(samples: list[tuple[str, np.ndarray, int, int, int]], instruments: list[tuple[str, list[int]]]) -> bytes:
    """A minimal SoundFont 2: samples (name, int16 data, rate, link, type), instruments (name, sample ids)."""
    smpl, headers, start = b"", b"", 0
    for name, data, rate, link, kind in samples:
        smpl += data.astype("<i2").tobytes() + bytes(2 * 46)  # 46 zero points after each sample
        headers += struct.pack("<20sIIIIIBbHH", name.encode(), start, start + len(data), start, start,
                               rate, 60, 0, link, kind)
        start += len(data) + 46
    headers += struct.pack("<20sIIIIIBbHH", b"EOS", 0, 0, 0, 0, 0, 0, 0, 0, 0)
    inst, bags, gens = b"", b"", b""
    for name, ids in instruments:
        inst += struct.pack("<20sH", name.encode(), len(bags) // 4)
        for i in ids:
            bags += struct.pack("<HH", len(gens) // 4, 0)
            gens += struct.pack("<HH", 53, i)  # sampleID
    inst += struct.pack("<20sH", b"EOI", len(bags) // 4)
    bags += struct.pack("<HH", len(gens) // 4, 0)
    gens += struct.pack("<HH", 0, 0)
    sdta = riff_chunk(b"LIST", b"sdta" + riff_chunk(b"smpl", smpl))
    pdta = riff_chunk(b"LIST", b"pdta" + riff_chunk(b"inst", inst) + riff_chunk(b"ibag", bags)
                      + riff_chunk(b"igen", gens) + riff_chunk(b"shdr", headers))
    body = b"sfbk" + riff_chunk(b"LIST", b"INFO" + riff_chunk(b"ifil", bytes(4))) + sdta + pdta
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_read_sf2_pairs_stereo_and_names_instruments():
    from ardmzip.data import read_sf2
    a, left, right, b = (random_samples(n, 1, 16, seed=n)[:, 0] for n in (5, 7, 7, 3))
    blob = sf2_bytes([("mono", a, 44100, 0, 1), ("pair L", left, 32000, 2, 4), ("pair R", right, 32000, 1, 2),
                      ("orphan", b, 22050, 0, 1)],
                     [("Piano", [0, 1, 2]), ("Organ", [0])])
    got = list(read_sf2(blob))
    assert [(inst, name, rate, pcm.shape) for inst, name, rate, pcm in got] == [
        ("Piano", "mono", 44100, (5, 1)), ("Piano", "pair L", 32000, (7, 2)), ("unused", "orphan", 22050, (3, 1))]
    assert np.array_equal(got[0][3][:, 0], a) and np.array_equal(got[2][3][:, 0], b)
    assert np.array_equal(got[1][3], np.stack([left, right], axis=1))  # left channel first


def test_clips_save_load_and_pcm16(tmp_path):
    from ardmzip.data import Clip, load_clips, save_clips, to_pcm16
    assert to_pcm16(np.array([[1.0], [-1.0], [0.5], [-2.0]])).ravel().tolist() == [32767, -32768, 16384, -32768]
    clips = [Clip("a", "src", 8000, random_samples(10, 1, 16)), Clip("b", "src2", 44100, random_samples(4, 2, 16))]
    save_clips(tmp_path / "c.npz", {"speech": clips[:1], "music": clips[1:]})
    for kind, want in (("speech", clips[:1]), ("music", clips[1:])):
        back = load_clips(tmp_path / "c.npz", kind)
        assert [(c.name, c.source, c.rate) for c in back] == [(c.name, c.source, c.rate) for c in want]
        assert all(np.array_equal(b.samples, w.samples) for b, w in zip(back, want))
