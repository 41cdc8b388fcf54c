"""The group-0 lattice coder (lattice.py): models whose manifest entry says first_group "lattice" code
the pixels at multiples of 8 row by row with an exact rule, without network calls."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ardmzip.codec import decode_plane, encode_plane, make_plan
from ardmzip.coder import Decoder, Encoder
from ardmzip.lattice import lattice_index, lattice_units, unit_params
from ardmzip.registry import load_model

PHOTO = Path(__file__).parent / "data" / "crop64.png"


@pytest.fixture(scope="module")
def models():
    plain = load_model("img6")
    return plain, dataclasses.replace(plain, info={**plain.info, "first_group": "lattice"})


def _roundtrip(model, plane, budget=21):
    plan = make_plan(model, plane.shape, budget, 7)
    enc = Encoder()
    bits = encode_plane(model, plane, plan, enc)
    dec = Decoder(enc.words())
    out = decode_plane(model, plan, dec)
    dec.finish()
    assert np.array_equal(out, plane)
    return plan, bits, 32 * len(enc.words())


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 9, 3), (9, 1, 3), (7, 13, 3), (17, 33, 3), (23, 40), (9, 9)])
def test_round_trips_of_awkward_sizes(models, shape):
    rng = np.random.default_rng(sum(shape))
    plane = rng.integers(0, 256, shape, dtype=np.uint8)
    plan, bits, coded = _roundtrip(models[1], plane)
    assert plan.first == lattice_index(shape[0], shape[1], len(shape) == 2).size
    assert abs(coded - bits) < 0.01 * bits + 64


def test_no_network_call_for_the_lattice_and_a_smaller_photo(models):
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    plain_plan, plain_bits, _ = _roundtrip(models[0], photo, budget=10)   # the fewest calls: one per group
    plan, bits, _ = _roundtrip(models[1], photo, budget=10)
    assert bits < plain_bits
    # one lattice step first, then a call per group after group 0 (18 of the 21 groups' parts)
    assert plain_plan.calls == 21 and plan.calls == 18 and plan.steps == 19 and list(plan.bounds[:2]) == [0, plan.first]
    assert make_plan(models[1], photo.shape, 21, 0).calls == 21   # a budget is network calls
    grey = np.asarray(Image.open(PHOTO).convert("L"))
    lat = make_plan(models[1], grey.shape, 10, 0)
    assert lat.calls == 10 and list(lat.bounds[:2]) == [0, lat.first] and lat.first == 64
    assert make_plan(models[1], (1, 1, 3), 21, 0).calls == 0       # a single pixel: the lattice alone


def test_each_unit_reads_only_units_decoded_before():
    rng = np.random.default_rng(3)
    lat = rng.integers(0, 256, (3, 5, 6)).astype(np.int64)
    order = list(lattice_units(5, 6, grey=False))
    for i, (c, r, cols) in enumerate(order):
        scrambled = lat.copy()
        for c2, r2, cols2 in order[i:]:                           # this unit and everything after it
            scrambled[c2, r2, cols2] = rng.integers(0, 256, len(cols2))
        assert np.array_equal(unit_params(lat, c, r, cols, False), unit_params(scrambled, c, r, cols, False))
    covered = np.zeros((3, 5, 6), dtype=int)
    for c, r, cols in order:
        covered[c, r, cols] += 1
    assert (covered == 1).all()


def test_rows_predict_from_the_row_above():
    lat = np.zeros((3, 2, 3), dtype=np.int64)
    lat[:, 0] = [[40, 50, 70], [100, 110, 130], [10, 20, 40]]        # R, G, B of lattice row 0
    lat[1, 1] = [111, 111, 111]                                     # green of row 1 (decoded before R, B)
    q = unit_params(lat, 1, 1, np.arange(3), False)
    assert list(q[:, 1]) == [4 * (100 + 200 + 110), 4 * (100 + 220 + 130), 4 * (110 + 260 + 130)]
    q = unit_params(lat, 0, 1, np.arange(3), False)                 # red: green here + (R − G) above
    assert list(q[:, 1]) == [16 * 111 - 16 * 60] * 3
