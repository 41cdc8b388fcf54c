"""The channel transform (audio_codec.CHANNEL_MODES, format version 3): a clip of 2+ channels may code
channels 1.. as their wrapped differences from channel 0, chosen by the encoder per segment."""
from pathlib import Path

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from ardmzip import api, audio, audio_codec, container
from ardmzip.audio_codec import choose_mode, mix, unmix
from ardmzip.cli import main
from ardmzip.registry import load_model

DTYPES = {8: np.int8, 16: np.int16, 24: np.int32}
SPEECH = Path(__file__).parent / "data" / "speech8k.wav"


def _speech(frames: int) -> np.ndarray:
    return soundfile.read(SPEECH, dtype="int16", always_2d=True)[0][2000:2000 + frames, 0]


def _extremes(bits: int, n: int, seed: int) -> np.ndarray:
    """(n, 3) samples drawn from the ends and the middle of the range, where differences wrap."""
    lo, hi = -2 ** (bits - 1), 2 ** (bits - 1) - 1
    rng = np.random.default_rng(seed)
    pool = np.array([lo, lo + 1, -1, 0, 1, hi - 1, hi])
    return np.where(rng.random((n, 3)) < 0.5, rng.choice(pool, (n, 3)), rng.integers(lo, hi + 1, (n, 3)))


@pytest.mark.parametrize("bits", [8, 16, 24])
def test_mix_is_exactly_invertible_and_stays_in_the_sample_width(bits):
    x = _extremes(bits, 5000, bits).astype(DTYPES[bits])
    for mode in range(len(audio_codec.CHANNEL_MODES)):
        coded = mix(x, bits, mode)
        assert coded.min() >= -2 ** (bits - 1) and coded.max() < 2 ** (bits - 1)
        assert np.array_equal(unmix(coded, bits, mode), x)
    assert np.array_equal(mix(x, bits, 0), x)                      # mode 0: as they are
    np.testing.assert_array_equal(mix(x, bits, 1)[:, 0], x[:, 0])  # mode 1: channel 0 as it is


def test_the_encoder_picks_differences_for_correlated_channels_only():
    s = _speech(3000).astype(np.int64)
    other = np.roll(s, 700)
    assert choose_mode(np.stack([s, s], 1), 16) == 1
    assert choose_mode(np.stack([s, s + 3], 1), 16) == 1
    assert choose_mode(np.stack([s, other], 1), 16) == 0
    assert choose_mode(np.stack([s, other, np.roll(s, 1300)], 1), 16) == 0
    assert choose_mode(np.stack([s, s, other], 1), 16) == 1        # channel 1's saving outweighs channel 2's loss
    assert choose_mode(s[:1, None].repeat(2, 1), 16) == 0           # one frame: nothing to compare


@pytest.mark.parametrize("bits", [8, 16, 24])
def test_round_trips_through_the_api_with_wrapping_differences(bits):
    x = _extremes(bits, 1200, 7 * bits).astype(DTYPES[bits])
    x[:, 1] = x[:, 0] ^ 1 if bits > 8 else x[:, 0]                   # correlated: mode 1, wrapping on the ends
    blob, _ = api.compress_audio(audio.audio_from_array(x, 44100), fallback=False)
    h = container.read_header(blob)
    assert blob[4] == (4 if bits == 24 else 3) and h.channel_transform and h.method == "ardm"
    assert h.low_modes == (bits == 24)
    back = api.decompress_audio(blob).samples
    assert back.dtype == x.dtype and np.array_equal(back, x)


def test_identical_channels_cost_almost_nothing_more_than_one():
    s = _speech(4000)
    mono = api.compress_audio(audio.audio_from_array(s[:, None], 8000))[0]
    both = audio.audio_from_array(np.stack([s, s], 1), 8000)
    stereo = api.compress_audio(both)[0]
    plain = api.compress_audio(both, channel_transform=False)[0]
    assert plain[4] in (1, 2) and not container.read_header(plain).channel_transform   # scale offsets or not
    assert len(stereo) < 1.1 * len(mono) < 0.6 * len(plain)
    for blob in (stereo, plain):
        assert np.array_equal(api.decompress_audio(blob).samples, both.samples)


def test_each_segment_has_its_own_mode(monkeypatch):
    monkeypatch.setattr(audio_codec, "SEGMENT", 1024)
    s = _speech(3000)
    x = np.stack([s, s], 1)
    x[1024:2048, 1] = np.roll(s, 500)[1024:2048]                   # segment 1 independent, 0 and 2 equal
    modes = [choose_mode(x[seg], 16) for seg in audio_codec.segments(len(x))]
    assert modes == [1, 0, 1]
    aud3 = load_model("aud3")
    words, _ = audio_codec.compress_samples(aud3, x, 16, 7, seed=4, offsets=True, channel_transform=True)
    out = audio_codec.decompress_samples(aud3, words, len(x), 2, 16, 7, seed=4, offsets=True,
                                         channel_transform=True)
    assert np.array_equal(out, x)


def test_mono_and_stored_files_have_no_transform(tmp_path):
    s = _speech(2000)
    mono = api.compress_audio(audio.audio_from_array(s[:, None], 8000))[0]
    h = container.read_header(mono)   # version 2 with scale offsets, 1 where the encoder found them no gain
    assert mono[4] == (2 if h.offsets else 1) and h.method == "ardm" and not h.channel_transform
    noise = np.random.default_rng(3).integers(-2 ** 15, 2 ** 15, (3, 2)).astype(np.int16)
    tiny = api.compress_audio(audio.audio_from_array(noise, 8000))[0]     # stored: smaller than the code
    assert tiny[4] == 1 and container.read_header(tiny).method != "ardm"
    path = tmp_path / "st.wav"
    soundfile.write(path, np.stack([s, s], 1), 8000, subtype="PCM_16")
    r = CliRunner().invoke(main, ["compress", str(path)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["info", str(path) + ".ardm"])
    assert "scale offsets, channel transform" in r.output
