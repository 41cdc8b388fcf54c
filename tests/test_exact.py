"""Integer-exact inference (issue 4): identical probabilities whatever the threads, batch, instruction
set or process, with positive controls showing that the float path does differ under the same settings."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ardmzip import api, exact, registry
from ardmzip.errors import ChecksumMismatchError, CorruptError, ModelError
from ardmzip.registry import list_models, load_model

ROOT = Path(__file__).resolve().parent.parent
PROBE = [sys.executable, str(ROOT / "tests" / "exact_probe.py")]
SLOW_CPU = {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"}  # oldest kernels, 1 thread
EXACT_IDS = [k for k, e in list_models().items() if e.get("arithmetic") == "int-exact"]
FLOAT_IDS = [k for k, e in list_models().items() if e.get("arithmetic", "float32") == "float32"]


def test_release_has_an_exact_default():
    assert EXACT_IDS, "no int-exact model shipped"
    assert registry.manifest()["defaults"]["image"] in EXACT_IDS


def test_tables_are_pinned():
    """The lookup tables are part of the format: any change would break every exact file."""
    digest = hashlib.sha256(b"".join(t.astype("<i8").tobytes() for t in exact.tables())).hexdigest()
    assert digest == TABLES_SHA256


TABLES_SHA256 = "bc9ce0a3d11e1fbc5fb9624b823146efc8adbfa0a97404dc2300f9d86fb6cb18"


def _random_heads(rng, n, k):
    return np.concatenate([rng.integers(-2048, 2049, (n, k)), rng.integers(exact.MU_MIN, exact.MU_MAX + 1, (n, k)),
                           rng.integers(exact.LOGS_MIN, exact.LOGS_MAX + 1, (n, k))], 1)


@pytest.mark.parametrize("k", [1, 6])
def test_fast_probabilities_equal_reference(k):
    rng = np.random.default_rng(k)
    q = _random_heads(rng, 3000, k)
    q[:8, 2 * k:] = exact.LOGS_MIN                          # extremes: narrowest, widest, far-off means
    q[8:16, 2 * k:] = exact.LOGS_MAX
    q[16:24, k:2 * k] = exact.MU_MIN
    q[24:32, k:2 * k] = exact.MU_MAX
    p = exact.probabilities(q, k)
    assert np.array_equal(p, exact.reference_probabilities(q, k))
    assert p.shape == (3000, 256) and (p > 0).all() and np.allclose(p.sum(1), 1.0)


def test_probabilities_follow_the_parameters():
    """A narrow component centred on v puts most of its mass on v."""
    q = np.array([[0, 16 * 100, exact.LOGS_MIN]])
    p = exact.probabilities(q, 1)[0]
    assert p.argmax() == 100 and p[100] > 0.9


@pytest.fixture(scope="module")
def exact_model():
    return load_model(EXACT_IDS[0])


def _state(seed, b=4, h=40, w=56):
    g = torch.Generator().manual_seed(seed)
    v = torch.randint(0, 256, (b, 3, h, w), generator=g).float()
    known = (torch.rand(b, 3, h, w, generator=g) < torch.rand(b, 1, 1, 1, generator=g)).float()
    return v, known, torch.randint(0, 256, (b,), generator=g).float()


def test_batch_and_thread_invariance(exact_model):
    v, known, fi = _state(1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = torch.cat([exact_model.exact(v[i:i + 1], known[i:i + 1], fi[i:i + 1]) for i in range(4)])
        torch.set_num_threads(2)
        batch = exact_model.exact(v, known, fi)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, batch)
    assert torch.equal(one, torch.round(one))


def test_memory_layout_does_not_change_the_integers(exact_model):
    """The exact net runs channels-last (oneDNN's fast layout); the plain layout gives the same integers."""
    import dataclasses
    from ardmzip.prior import add_prior
    en = exact_model.exact
    v, known, fi = _state(2)
    fast = en(v, known, fi)
    plain = {k: dataclasses.replace(L, weight=L.weight.contiguous()) for k, L in en.layers.items()}
    inp, pri = exact.int_inputs(v, known, fi, en.cfg.prior)
    with torch.inference_mode():
        out = exact.walk(en.skeleton, exact.IntOps(en.skeleton, plain, en.scales),
                         (inp.contiguous(), torch.tensor(exact.INPUT_SCALE, dtype=torch.float64)))
        if pri is not None:
            out = add_prior(out, *pri, en.cfg.mixtures, integer=True)
    assert inp.is_contiguous(memory_format=torch.channels_last) and not inp.contiguous().is_contiguous(
        memory_format=torch.channels_last)
    assert torch.equal(out[..., :v.shape[2], :v.shape[3]], fast)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_integrality_probe_catches_fractions(layout):
    acc = torch.randint(-1000, 1000, (2, 8, 16, 16)).float().contiguous(memory_format=layout)
    exact.probe_integral("c", acc)
    with pytest.raises(RuntimeError, match="convolution c returned non-integers"):
        exact.probe_integral("c", acc + 0.25)


def test_bound_is_checked_when_a_model_loads(exact_model, tmp_path, monkeypatch):
    """A model whose partial sums could leave float32's exact range is refused."""
    e = list_models()[exact_model.id]
    blob = torch.load(registry.models_dir() / e["file"], weights_only=True)
    name = next(iter(blob["exact"]["layers"]))
    layer = blob["exact"]["layers"][name]
    layer["bias"] = layer["bias"].clone()
    layer["bias"][0] = 2 ** 24
    with pytest.raises(ValueError, match=f"layer {name}: partial sums"):
        exact.ExactNet(exact_model.cfg, blob["exact"])
    torch.save(blob, tmp_path / "bad.pt")
    manifest = registry.manifest()
    manifest["models"] = {"bad": {**e, "file": "bad.pt",
                                  "sha256": hashlib.sha256((tmp_path / "bad.pt").read_bytes()).hexdigest()}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("ARDMZIP_MODELS", str(tmp_path))
    registry.load_model.cache_clear()
    try:
        with pytest.raises(ModelError, match="not exact"):
            load_model("bad")
    finally:
        monkeypatch.delenv("ARDMZIP_MODELS")
        registry.load_model.cache_clear()


def _run(args, env_extra, check=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env_extra}
    r = subprocess.run(PROBE + [str(a) for a in args], capture_output=True, text=True, env=env, cwd=ROOT)
    if check:
        assert r.returncode == 0, r.stderr[-2000:]
    return r


def test_positive_control_float_outputs_differ():
    """The settings below are able to change a float net's outputs, so the exact tests can see a difference."""
    model = FLOAT_IDS[0]
    a = _run(["probe", model, 1], SLOW_CPU).stdout
    b = _run(["probe", model, 2], {}).stdout
    assert a != b


@pytest.mark.parametrize("model", EXACT_IDS)
def test_exact_outputs_agree_across_settings(model):
    assert _run(["probe", model, 1], SLOW_CPU).stdout == _run(["probe", model, 2], {}).stdout


# Across processes for the default models in every run; for the older ones only with the slow tests (their
# outputs are pinned across settings by the probe above and their files by the golden files below).
DEFAULT_IDS = set(registry.manifest()["defaults"].values())
ACROSS = [m if m in DEFAULT_IDS else pytest.param(m, marks=pytest.mark.slow) for m in EXACT_IDS]


@pytest.mark.parametrize("model", ACROSS)
@pytest.mark.parametrize("direction", ["slow-to-default", "default-to-slow"])
def test_round_trip_across_processes_and_cpu_settings(model, direction, photo64, speech8k, tmp_path):
    """Compress in one process and decompress in another with different instruction sets and threads
    (audio: a 2-channel clip, so both stages and the channel conditioning are exercised)."""
    if load_model(model).media == "audio":
        a = np.ascontiguousarray(np.concatenate([speech8k[2000:6000], speech8k[4000:8000] // 3], axis=1))
    else:
        a = photo64[:48, :40]
    np.save(tmp_path / "a.npy", a)
    enc, dec = ((SLOW_CPU, 1), ({}, 2)) if direction == "slow-to-default" else (({}, 2), (SLOW_CPU, 1))
    _run(["compress", model, enc[1], tmp_path / "a.npy", tmp_path / "a.ardm"], enc[0])
    assert api.read_info((tmp_path / "a.ardm").read_bytes()).arithmetic == "int-exact"
    r = _run(["decompress", model, dec[1], tmp_path / "a.ardm", tmp_path / "a.npy"], dec[0])
    assert r.stdout.strip() == "equal"


GOLDEN = Path(__file__).parent / "data" / "golden"


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.ardm")), ids=lambda p: p.name)
def test_golden_files_decode(path):
    """Files written by released versions: every format version and model id must keep decoding. A float32
    model's file decodes only where the float kernels match the writer's (img1's were written on an Intel
    Xeon; an AMD EPYC gets other sums): there the decoder must refuse it, never return other pixels."""
    expected = np.load(path.with_suffix(".npy"))
    blob = path.read_bytes()
    if api.read_info(blob).arithmetic == "float32":
        try:
            out = api.decompress_array(blob)
        except (ChecksumMismatchError, CorruptError):
            return
        assert np.array_equal(out, expected)
        return
    assert np.array_equal(api.decompress_array(blob), expected)


def test_every_released_model_has_a_golden_file():
    ids = {api.read_info(p.read_bytes()).model_id for p in GOLDEN.glob("*.ardm")}
    assert set(list_models()) <= ids
