"""Scale offsets (codec.OFFSETS, format version 2): per network step the encoder stores one offset to the
log-scales of the int-exact head, chosen on the image being coded."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ardmzip import api, container
from ardmzip.codec import OFFSETS, best_offset, decode_plane, encode_plane, make_plan, with_offset
from ardmzip.coder import Decoder, Encoder
from ardmzip.exact import LOGS_MAX, LOGS_MIN
from ardmzip.registry import load_model

PHOTO = Path(__file__).parent / "data" / "crop64.png"


@pytest.fixture(scope="module")
def img7():
    return load_model("img7")


def _smooth(h: int = 48, w: int = 56) -> np.ndarray:
    """A smooth gradient with faint noise: sharper than the net's training crops."""
    y, x = np.mgrid[:h, :w]
    rng = np.random.default_rng(5)
    base = np.stack([60 + 2 * y + x, 90 + x, 200 - y - x // 2], -1) + rng.integers(0, 2, (h, w, 3))
    return base.clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 9, 3), (7, 13, 3), (17, 33, 3), (23, 40), (9, 9)])
def test_round_trips_of_awkward_sizes(img7, shape):
    plane = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    plan = make_plan(img7, plane.shape, 18, 3, offsets=True)
    enc = Encoder()
    encode_plane(img7, plane, plan, enc)
    dec = Decoder(enc.words())
    assert np.array_equal(decode_plane(img7, plan, dec), plane)
    dec.finish()


def test_api_writes_version_2_for_int_exact_models_and_it_pays_on_a_smooth_image():
    a = _smooth()
    with_offsets, plain = api.compress(a, model="img7"), api.compress(a, model="img7", offsets=False)
    assert container.read_header(with_offsets).offsets and with_offsets[4] == 2
    assert not container.read_header(plain).offsets and plain[4] == 1
    assert np.array_equal(api.decompress_array(with_offsets), a)
    assert np.array_equal(api.decompress_array(plain), a)
    assert len(with_offsets) < 0.97 * len(plain)
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))   # and never costs much on a textured photo
    assert len(api.compress(photo, model="img7")) < len(api.compress(photo, model="img7", offsets=False)) + 16


def test_where_the_indices_could_cost_more_the_smaller_file_wins():
    # a 32×32 crop at 200 calls: 200 indices of 4.1 bits would be 0.27 bpd; coded both ways, it keeps
    # the version-1 file when that is smaller (and never a larger one)
    a = np.asarray(Image.open(PHOTO).convert("RGB"))[:32, :32]
    auto, plain = api.compress(a, model="img7", budget=200), api.compress(a, model="img7", budget=200, offsets=False)
    assert len(auto) <= len(plain) and np.array_equal(api.decompress_array(auto), a)
    assert len(auto) < len(api.compress(a, model="img7", budget=200, offsets=True))
    assert api.OFFSET_BITS * 200 > api.OFFSET_TRY_BITS * a.size      # the rule that made it try both


def test_float_models_refuse_offsets():
    with pytest.raises(ValueError, match="int-exact"):
        make_plan(load_model("img1"), (8, 8, 3), 5, 0, offsets=True)
    blob = api.compress(_smooth(8, 8), model="img1")   # the default for a float model: off, version 1
    assert blob[4] == 1 and not container.read_header(blob).offsets


def test_offset_arithmetic_and_choice(img7):
    k = img7.cfg.mixtures
    q = torch.tensor([[0] * k + [16 * 100] * k + [LOGS_MIN + 3, 0, 10, LOGS_MAX - 2, -50, 20]])
    shifted = with_offset(img7, q, -8)
    assert torch.equal(shifted[:, :2 * k], q[:, :2 * k])
    assert shifted[0, 2 * k:].tolist() == [LOGS_MIN, -8, 2, LOGS_MAX - 10, -58, 12]
    assert with_offset(img7, q, 16)[0, 2 * k:].tolist() == [LOGS_MIN + 19, 16, 26, LOGS_MAX, -34, 36]
    # all components at value 100 with log-scale −48/16 (scale ≈ 6 values): symbols spread ±40 want wider
    q = torch.tensor([[0] * k + [16 * 100] * k + [-48] * k] * 400)
    wide = 100 + np.random.default_rng(0).integers(-40, 41, 400)
    narrow = np.full(400, 100)
    assert OFFSETS[best_offset(img7, q, wide)] > 0 > OFFSETS[best_offset(img7, q, narrow)]


@pytest.mark.parametrize("bits", [8, 16, 24])
def test_audio_round_trips_with_offsets(bits):
    from ardmzip import audio_codec
    aud3 = load_model("aud3")
    rng = np.random.default_rng(bits)
    t = np.arange(3000)
    wave = (np.sin(t / 7.0)[:, None] * [0.3, 0.1] * 2.0 ** (bits - 1)).astype(np.int64) + rng.integers(-3, 4, (3000, 2))
    samples = wave.clip(-2 ** (bits - 1), 2 ** (bits - 1) - 1).astype({8: np.int8, 16: np.int16, 24: np.int32}[bits])
    words, _ = audio_codec.compress_samples(aud3, samples, bits, 7, seed=2, offsets=True)
    out = audio_codec.decompress_samples(aud3, words, 3000, 2, bits, 7, seed=2, offsets=True)
    assert np.array_equal(out, samples)
    plain, _ = audio_codec.compress_samples(aud3, samples, bits, 7, seed=2)
    assert len(words) < len(plain)     # a quiet sine: sharper than the net's training audio


def test_audio_files_name_their_offsets():
    import soundfile
    from ardmzip import audio
    speech = soundfile.read(Path(__file__).parent / "data" / "speech8k.wav", dtype="int16", always_2d=True)[0][:4000]
    blob = api.compress_audio(audio.audio_from_array(speech, 8000))[0]
    assert blob[4] == 2 and container.read_header(blob).offsets
    assert np.array_equal(api.decompress_audio(blob).samples, speech)
