"""The 24-bit low byte (lowbyte.py): the step protocol, the interpolated model, the per-segment choice and
format version 4."""
import dataclasses

import numpy as np
import pytest

from ardmzip import api, audio_codec, container, lowbyte
from ardmzip.audio import audio_from_array
from ardmzip.registry import load_model


def _quiet(frames: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Smooth 24-bit audio that lives mostly below the top 16 bits: int64 (frames, channels), centred."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None]
    x = sum(a * np.sin(2 * np.pi * f * t / 16000 + p) for a, f, p in
            zip(rng.uniform(200, 900, 3), rng.uniform(40, 500, 3), rng.uniform(0, 6, 3)))
    return np.round(x + rng.normal(0, 1.5, (frames, channels))).astype(np.int64)


def _bits(x: np.ndarray, mode: int, filters=None) -> float:
    flat = x.reshape(-1)
    return sum(-np.log2(p[np.arange(len(sel)), flat[sel] & 255]).sum() for sel, p in lowbyte.steps(mode, x, filters))


@pytest.mark.parametrize("mode", range(len(lowbyte.LOW_MODES)))
def test_steps_cover_every_position_once_and_read_only_coded_low_bytes(mode):
    x = np.ascontiguousarray(_quiet(1000, 2).T)
    seen, probs = [], []
    scrambled = (x >> 8) << 8                      # low bytes unknown to the decoder: 0, filled in as coded
    for sel, p in lowbyte.steps(mode, scrambled):
        assert p.shape == (len(sel), 256) and np.allclose(p.sum(1), 1)
        seen.append(sel)
        probs.append(p.copy())
        scrambled.reshape(-1)[sel] += x.reshape(-1)[sel] & 255
    assert np.array_equal(np.sort(np.concatenate(seen)), np.arange(x.size))
    for (sel, p), q in zip(lowbyte.steps(mode, x), probs):  # the encoder's tables, from every low byte
        assert np.array_equal(p, q)


def test_interpolation_codes_quiet_smooth_audio_in_fewer_bits_and_noise_in_about_eight():
    quiet = np.ascontiguousarray(_quiet(4096).T)
    assert _bits(quiet, 1) < 0.8 * _bits(quiet, 0)
    noise = np.random.default_rng(3).integers(-(1 << 23), 1 << 23, (1, 4096))
    assert 8.0 <= _bits(noise, 1) / noise.size < 8.1


@pytest.mark.parametrize("channels", [1, 2])
def test_a_shipped_model_round_trips_24_bit_audio_with_low_modes(channels):
    model = load_model("aud5")
    quiet = _quiet(3000, channels, seed=channels)
    loud = quiet * 97 + np.random.default_rng(5).integers(0, 256, quiet.shape)   # noise below the top 16 bits
    for x, shorter in ((quiet, True), (loud, False)):
        x = x.astype(np.int32)
        sizes = {}
        for low in (False, True):
            words, _ = audio_codec.compress_samples(model, x, 24, 7, offsets=True, low_modes=low,
                                                    channel_transform=channels > 1)
            out = audio_codec.decompress_samples(model, words, *x.shape, 24, 7, offsets=True, low_modes=low,
                                                 channel_transform=channels > 1)
            assert out.dtype == np.int32 and np.array_equal(out, x)
            sizes[low] = len(words)
        if shorter:
            assert sizes[True] < 0.95 * sizes[False]
        else:  # the counts win on noise: one more symbol of one bit at most
            assert sizes[True] <= sizes[False] + 1


def test_24_bit_files_are_version_4_and_others_keep_their_version():
    x = _quiet(400).astype(np.int32)
    blob = api.compress_audio(audio_from_array(x, 16000), fallback=False)[0]
    h = container.read_header(blob)
    assert blob[4] == 4 and h.low_modes
    assert np.array_equal(api.decompress_array(blob), x)
    blob16 = api.compress_audio(audio_from_array((x // 4).astype(np.int16), 16000), fallback=False)[0]
    assert blob16[4] == 2 and not container.read_header(blob16).low_modes


def test_the_container_refuses_low_modes_outside_model_coded_24_bit_audio():
    x = _quiet(400).astype(np.int32)
    h = container.read_header(api.compress_audio(audio_from_array(x, 16000), fallback=False)[0])
    for bad in ({"meta": dict(h.meta, subtype="PCM_16")}, {"method": "raw", "model_id": "", "model_hash": bytes(4), "offsets": False},
                {"low_modes": 1}):
        with pytest.raises(ValueError, match="low"):
            container.pack(dataclasses.replace(h, **bad), np.zeros(2, np.uint32))
