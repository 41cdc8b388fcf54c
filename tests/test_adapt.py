"""Adapted steps (adapt.py, format version 5): per network step the encoder may store a linear mean
correction and scale offsets per bucket, fitted to the image being coded; the decoder computes them in
integers. Format version 6 (FLAG_PHASES) does that per phase class of each step."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ardmzip import adapt, api, container, interp
from ardmzip.codec import OFFSETS, Coding, decode_plane, encode_plane, make_plan
from ardmzip.coder import Decoder, Encoder
from ardmzip.errors import UnsupportedInputError
from ardmzip.exact import LOGS_MIN
from ardmzip.prior import MU_MAX, MU_MIN
from ardmzip.registry import load_model

PHOTO = Path(__file__).parent / "data" / "crop64.png"


@pytest.fixture(scope="module")
def img7():
    return load_model("img7")


def _upscaled(h: int = 96, w: int = 96) -> np.ndarray:
    """The test photo upscaled 3× (bicubic): smoother than any training crop, so a fitted correction pays."""
    photo = Image.open(PHOTO).convert("RGB").crop((8, 8, 8 + w // 3, 8 + h // 3))
    return np.asarray(photo.resize((w, h), Image.BICUBIC))


def test_coefficient_symbols_round_trip():
    c = np.array([0, 1, -1, 2, -3, 1000, -(1 << 22) - 5, interp.COEF_LIMIT, -interp.COEF_LIMIT], dtype=np.int64)
    sizes, bits = interp.coefficient_symbols(c)
    assert list(sizes[:4]) == [0, 1, 1, 2] and len(bits) == interp.bit_count(sizes)
    assert np.array_equal(interp.coefficients_from_symbols(sizes, bits), c)


def test_correction_is_the_rounded_integer_dot_product():
    rng = np.random.default_rng(0)
    h, w = 9, 11
    values = rng.integers(0, 256, 3 * h * w)
    known = rng.random(3 * h * w) < 0.6
    positions = np.flatnonzero(~known[h * w:2 * h * w]) + h * w       # unknown variables of channel 1
    feats = adapt.feature_list(known, positions, (h, w), False)
    assert feats and all(abs(dy) <= (2 if cc == 1 else 1) and abs(dx) <= (2 if cc == 1 else 1) for cc, dy, dx in feats)
    ref16 = rng.integers(0, 16 * 255, len(positions))
    coefs = rng.integers(-(1 << 15), 1 << 15, len(feats) + 1)
    got = adapt.correction(values, known, positions, (h, w), False, feats, ref16, coefs)
    v, k = values.reshape(3, h, w), known.reshape(3, h, w)
    for i, p in enumerate(positions):
        y, x = divmod(int(p) - h * w, w)
        total = 16 * int(coefs[-1])
        for (cc, dy, dx), cj in zip(feats, coefs):
            yy, xx = min(max(y + dy, 0), h - 1), min(max(x + dx, 0), w - 1)
            if k[cc, yy, xx]:
                total += int(cj) * (16 * int(v[cc, yy, xx]) - int(ref16[i]))
        assert got[i] == (total + (1 << 13)) >> 14                      # Python ints: floor of the half-up


def test_features_need_half_the_variables_to_know_the_neighbour():
    h, w = 4, 4
    known = np.zeros(h * w, dtype=bool)
    known[[0, 1]] = True                                                # (0, 0) and (0, 1)
    positions = np.array([5, 6, 10, 15])                               # (1, 1), (1, 2), (2, 2), (3, 3)
    feats = adapt.feature_list(known, positions, (h, w), True)
    # (−1, −1) is known for (1, 1) and (1, 2)'s is (0, 1): 2 of 4 variables; (−1, 0) only for (1, 1)
    assert (0, -1, -1) in feats and (0, -1, 0) not in feats


def test_apply_shifts_means_and_buckets_log_scales_within_the_grids():
    k = 2
    q = torch.tensor([[3, 0, 100, MU_MAX - 5, -100, -100],     # mean log-scale −100: bucket 0
                      [0, 0, MU_MIN + 1, 50, -20, -20]])       # −20: the last bucket
    buckets = np.arange(adapt.BUCKETS) % len(OFFSETS)
    out = adapt.apply(q, np.array([10, -7]), buckets, OFFSETS, k, LOGS_MIN, 48)
    assert out[0, 2:4].tolist() == [110, MU_MAX] and out[1, 2:4].tolist() == [MU_MIN, 43]
    assert out[0, 4:].tolist() == [max(LOGS_MIN, -100 + OFFSETS[0])] * 2
    assert out[1, 4:].tolist() == [min(48, -20 + OFFSETS[adapt.BUCKETS - 1])] * 2
    assert adapt.reference(q, k).tolist() == [100, MU_MIN + 1]          # the first of equal logits


def test_plane_round_trips_and_adapted_steps_pay_on_an_upscaled_photo(img7):
    plane = _upscaled()
    sizes, steps = {}, []
    for way in (Coding.OFFSET, Coding.ADAPT):
        plan = make_plan(img7, plane.shape, 18, 1, offsets=way == Coding.OFFSET, adapt=way == Coding.ADAPT)
        enc = Encoder()
        encode_plane(img7, plane, plan, enc)                    # the plan says how: offsets or adapted
        words = enc.words()
        dec = Decoder(words)
        assert np.array_equal(decode_plane(img7, plan, dec), plane)
        dec.finish()
        sizes[way] = len(words)
    assert sizes[Coding.ADAPT] < 0.97 * sizes[Coding.OFFSET]


@pytest.mark.parametrize("phases", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 7, 3), (13, 6), (19, 21, 3)])
def test_awkward_sizes_round_trip_with_adapted_steps(img7, shape, phases):
    plane = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    plane = np.sort(plane, axis=1)                       # some structure, so both modes occur
    blob = api.compress(plane, model="img7", adapt=True, phases=phases, fallback=False)
    header = container.read_header(blob)
    assert header.adapt and header.phases == phases and blob[4] == (6 if phases else 5)
    assert np.array_equal(api.decompress_array(blob), plane)


def test_phase_classes_split_by_pixel_parity_and_block_edges():
    h, w = 90, 100
    positions = np.arange(h * w, 3 * h * w)                                   # channels 1 and 2, every pixel
    assert [len(c) for c in adapt.phase_classes(positions, (h, w), False, 0)] == [len(positions)]
    classes = adapt.phase_classes(positions, (h, w), False, 1)
    assert len(classes) == 4 and sorted(np.concatenate(classes).tolist()) == list(range(len(positions)))
    for p, idx in enumerate(classes):
        y, x = divmod(positions[idx] % (h * w), w)
        assert np.all(y % 2 == p // 2) and np.all(x % 2 == p % 2)
    finest = np.flatnonzero((np.add.outer(np.arange(h), np.arange(w)) % 2).ravel())   # x + y odd: 2 phases
    assert [len(c) for c in adapt.phase_classes(finest, (h, w), True, 1)] == [h * w // 4] * 2
    classes = adapt.phase_classes(positions, (h, w), False, 2, grid=(3, 5))
    assert len(classes) == 16 and sorted(np.concatenate(classes).tolist()) == list(range(len(positions)))
    for idx in classes:                       # each class: one phase, rows and columns on an edge or not
        y, x = divmod(positions[idx] % (h * w), w)
        ey, ex = np.isin((y - 3) % 8, (0, 7)), np.isin((x - 5) % 8, (0, 7))
        assert len(set(zip(y % 2, x % 2, ey, ex))) == 1


def test_block_grid_finds_where_the_blocks_start():
    rng = np.random.default_rng(1)
    h, w = 64, 72
    blocks = rng.integers(0, 200, (h // 8 + 1, w // 8 + 1))
    y, x = np.arange(h)[:, None], np.arange(w)[None, :]
    plane = blocks[(y + 5) // 8, (x + 2) // 8] + rng.integers(0, 3, (h, w))     # blocks start at 3, 6
    assert adapt.block_grid(np.stack([plane] * 3).ravel(), (h, w)) == (3, 6)
    assert adapt.block_grid(plane.ravel(), (h, w)) == (3, 6)
    assert adapt.block_grid(plane[:10, :12].ravel(), (10, 12)) == (0, 0)        # too small to tell


def test_phase_classes_pay_where_the_chroma_is_subsampled(img7):
    """A photo whose colour went through 2×2 chroma subsampling, as a JPEG's does: the finest steps
    split into two phases that relate to their neighbours differently, and one fit per phase codes it
    smaller than one fit per step; both decode."""
    ycc = np.asarray(Image.fromarray(_upscaled(96, 96)).convert("YCbCr")).astype(np.float64)
    ycc[..., 1:] = np.repeat(np.repeat(ycc[::2, ::2, 1:], 2, 0), 2, 1)
    plane = np.asarray(Image.fromarray(np.clip(ycc.round(), 0, 255).astype(np.uint8), "YCbCr").convert("RGB"))
    sizes = {}
    for phases in (False, True):
        plan = make_plan(img7, plane.shape, 18, 1, adapt=True, phases=phases)
        enc = Encoder()
        encode_plane(img7, plane, plan, enc)
        words = enc.words()
        dec = Decoder(words)
        assert np.array_equal(decode_plane(img7, plan, dec), plane)
        dec.finish()
        sizes[phases] = len(words)
    assert sizes[True] < 0.99 * sizes[False]


def test_api_adapts_large_images_by_default_and_keeps_small_ones_as_before():
    big = np.asarray(Image.fromarray(_upscaled()).resize((128, 128), Image.BICUBIC))
    blob = api.compress(big, model="img7")
    header = container.read_header(blob)
    assert header.adapt and header.phases and not header.offsets and blob[4] == 6
    assert np.array_equal(api.decompress_array(blob), big)
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))                      # 64×64: the least that adapts
    assert container.read_header(api.compress(photo, model="img7")).adapt
    for small, budget in ((photo[:32, :32], None), (photo, 50)):             # fewer subpixels, more calls
        assert container.read_header(api.compress(small, model="img7", budget=budget)).adapt is False


def test_noise_that_adapted_steps_cannot_code_is_stored_without_their_flags():
    noise = np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)   # adapts by default
    blob = api.compress(noise, model="img7")
    header = container.read_header(blob)
    assert header.method != "ardm" and not (header.adapt or header.phases or header.offsets)
    assert np.array_equal(api.decompress_array(blob), noise)


def test_adapt_needs_an_int_exact_one_stage_model():
    with pytest.raises(UnsupportedInputError, match="int-exact one-stage"):
        api.compress(np.zeros((8, 8, 3), np.uint8), model="img1", adapt=True)


def test_the_container_allows_the_flag_for_model_coded_images_only():
    base = dict(media="image", method="ardm", arithmetic="int-exact", model_id="img7", model_hash=bytes(4),
                budget=18, seed=0, shape=(4, 4, 3), meta={}, content_hash=bytes(4))
    blob = container.pack(container.Header(**base, adapt=True), np.zeros(1, np.uint32))
    assert blob[4] == 5 and container.read_header(blob).adapt
    blob = container.pack(container.Header(**base, adapt=True, phases=True), np.zeros(1, np.uint32))
    assert blob[4] == 6 and container.read_header(blob).phases
    for bad in (dict(offsets=True), dict(media="audio", shape=(4, 1)), dict(arithmetic="float32")):
        with pytest.raises(ValueError, match="adapt"):
            container.pack(container.Header(**{**base, **bad}, adapt=True), np.zeros(1, np.uint32))
    with pytest.raises(ValueError, match="FLAG_PHASES needs FLAG_ADAPT"):
        container.pack(container.Header(**base, phases=True), np.zeros(1, np.uint32))


def test_the_version_6_golden_file_splits_steps_by_phase_and_block_edge(monkeypatch):
    golden = Path(__file__).parent / "data" / "golden" / "img7-v6-jpeg.ardm"
    partitions = []
    real = adapt.phase_classes
    monkeypatch.setattr(adapt, "phase_classes", lambda *a: partitions.append(a[3]) or real(*a))
    expected = np.load(golden.with_suffix(".npy"))
    assert golden.read_bytes()[4] == 6 and np.array_equal(api.decompress_array(golden.read_bytes()), expected)
    assert {1, 2} <= set(partitions)                  # steps split by phase, and by phase and block edge


def test_the_golden_file_has_adapted_steps(monkeypatch):
    golden = Path(__file__).parent / "data" / "golden" / "img7-v5-upscaled.ardm"
    popped = []
    real = adapt.pop
    monkeypatch.setattr(adapt, "pop", lambda *a: popped.append(1) or real(*a))
    expected = np.load(golden.with_suffix(".npy"))
    assert np.array_equal(api.decompress_array(golden.read_bytes()), expected)
    assert 0 < len(popped) < 18                      # some of its 18 steps adapted, not all

