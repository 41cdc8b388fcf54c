"""The training entry point runs, checkpoints and resumes (on tiny synthetic photos)."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from ardmzip import train as train_mod
from ardmzip.nets import NetConfig


def _tiny_photo_sets(tmp_path, monkeypatch, seed: int) -> None:
    """Three random 40×48 'photos' per split, and the trainer's cache pointed at them."""
    rng = np.random.default_rng(seed)
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "val"):
        np.savez(data / f"images_{split}.npz", **{f"p{i}": rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
                                                  for i in range(3)})
    monkeypatch.setattr(train_mod, "CACHE", tmp_path)


def test_train_checkpoints_and_resumes(tmp_path, monkeypatch):
    _tiny_photo_sets(tmp_path, monkeypatch, seed=0)
    threads = torch.get_num_threads()
    cfg = train_mod.TrainConfig(run="t", minutes=0.05, batch=4, crop=16, eval_every=1.0)
    net_cfg = NetConfig(widths=(8, 8, 8), blocks=(1, 1, 1), mixtures=2)
    try:
        train_mod.train(cfg, net_cfg)
        log = [json.loads(line) for line in (tmp_path / "runs/t/log.jsonl").read_text().splitlines()]
        first = log[-1]["step"]
        assert first > 0 and np.isfinite(log[-1]["val_bpd"])
        train_mod.train(cfg, net_cfg)  # resumes from the checkpoint
        log = [json.loads(line) for line in (tmp_path / "runs/t/log.jsonl").read_text().splitlines()]
        assert log[-1]["step"] > first and log[-1]["images"] == 4 * log[-1]["step"]
    finally:
        torch.set_num_threads(threads)


def test_quantisation_aware_training_exports_an_exact_net(tmp_path, monkeypatch):
    """A float run continued with --qat calibrates once, trains through the fake-quantised net, resumes
    as QAT, and its weights export to an ExactNet whose integer outputs match the fake-quantised ones."""
    from ardmzip import exact
    from ardmzip.nets import ARDMNet

    _tiny_photo_sets(tmp_path, monkeypatch, seed=1)
    threads = torch.get_num_threads()
    net_cfg = NetConfig(widths=(8, 8, 8), blocks=(1, 1, 1), mixtures=2)
    try:
        # stopped by steps, not time, so the weights (and the rounding ties checked below) are the same on
        # every run; one evaluation and checkpoint at the end of each invocation
        cfg = train_mod.TrainConfig(run="q", minutes=10.0, steps=60, batch=4, crop=16, eval_every=1e9)
        train_mod.train(cfg, net_cfg)
        train_mod.train(dataclasses.replace(cfg, qat=True), net_cfg)
        ck = torch.load(tmp_path / "runs/q/ckpt.pt")
        assert "scales" in ck and ck["scales"]["input"] == exact.INPUT_SCALE and ck["state"]["step"] == 120
        train_mod.train(cfg, net_cfg)
        ck2 = torch.load(tmp_path / "runs/q/ckpt.pt")
        assert ck2["scales"] == ck["scales"] and ck2["state"]["step"] > ck["state"]["step"]  # resumed as QAT
    finally:
        torch.set_num_threads(threads)
    net = ARDMNet(net_cfg)
    net.load_state_dict(ck2["ema"])
    q = exact.QuantNet(net.eval(), ck2["scales"])
    en = exact.ExactNet(net_cfg, exact.export_int(q))
    g = torch.Generator().manual_seed(0)
    v = torch.randint(0, 256, (2, 3, 16, 16), generator=g).float()
    known = (torch.rand(2, 3, 16, 16, generator=g) < 0.5).float()
    t, d = 300, 768
    ints = en(v, known, torch.full((2,), float(255 * t // d)))
    with torch.no_grad():
        fake = q((v / 127.5 - 1) * known, known, torch.full((2,), (255 * t // d) / 255))
    deq = exact.log_probabilities_torch(ints, 2)
    assert (deq - fake).abs().max() <= 1 / 16 + 1e-6        # at most one grid step where rounding ties differ
    assert (deq - fake).abs().gt(1e-4).float().mean() < 0.02


def test_dequantised_shipped_exact_model_reproduces_it():
    """--init from an int-exact model: re-quantising the dequantised float weights gives back the shipped
    weights (biases within a few units, of thousands, where a layer's weight scale is set by
    the 2^24 bound, which is recomputed from the dequantised weights), so QAT resumes where the shipped
    model is."""
    from ardmzip import exact
    from ardmzip.registry import list_models, load_model
    mid = next(k for k, e in list_models().items() if e.get("arithmetic") == "int-exact")
    m = load_model(mid)
    net, scales = exact.dequantised(m.exact)
    again = exact.ExactNet(m.cfg, exact.export_int(exact.QuantNet(net, scales)))
    for name, layer in m.exact.layers.items():
        assert torch.equal(again.layers[name].weight, layer.weight), name
        assert ((again.layers[name].bias - layer.bias).abs() <= 2 + 1e-3 * layer.bias.abs()).all(), name


def test_scale_augmentation_upscales_a_share_of_the_crops():
    """scale_fraction=1: every crop is a smaller region upscaled (so neighbouring pixels differ less
    than in plain crops of the same photo); 0: plain crops; both reproducible from the seed."""
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)  # white noise: plain crops are rough
    plain = train_mod.CropSampler([photo], 16, 0.0, seed=5).batch(8)[0]
    scaled = train_mod.CropSampler([photo], 16, 0.0, seed=5, scale_fraction=1.0).batch(8)[0]
    again = train_mod.CropSampler([photo], 16, 0.0, seed=5, scale_fraction=1.0).batch(8)[0]
    assert plain.shape == scaled.shape == (8, 3, 16, 16) and torch.equal(scaled, again)
    assert int(scaled.min()) >= 0 and int(scaled.max()) <= 255

    def roughness(x):
        return (x[..., 1:] - x[..., :-1]).abs().float().mean().item()

    assert roughness(scaled) < 0.8 * roughness(plain)
    vals = train_mod.fixed_crops([photo], 4, 16, scaled=True)
    assert torch.equal(vals, train_mod.fixed_crops([photo], 4, 16, scaled=True))


def test_measured_budget_takes_the_fewest_calls_within_2_percent_of_the_smallest_file():
    from ardmzip.export import measured_budget
    assert measured_budget({21: 2.856, 25: 2.894, 50: 2.914, 100: 2.901}) == 21   # img6's validation files
    assert measured_budget({21: 3.0, 25: 2.95, 50: 2.90, 100: 2.89}) == 50        # 2.89 · 1.02 = 2.948


def test_a_training_pack_trains_like_the_photos(tmp_path, monkeypatch):
    """--write-pack's file (for a lent GPU) holds the validation crops a run from the photos evaluates on,
    trains with crops cut on worker processes, and checkpoints CPU tensors."""
    _tiny_photo_sets(tmp_path, monkeypatch, seed=2)
    pack = tmp_path / "pack.npz"
    train_mod.write_pack(pack, crop=16, mib=1.0, region=24)
    photos_val = train_mod.load_training_data(train_mod.TrainConfig(crop=16))[1:]
    cfg = train_mod.TrainConfig(run="p", minutes=10.0, steps=5, batch=4, crop=16, eval_every=1e9,
                                data=str(pack), workers=2)
    pack_val = train_mod.load_training_data(cfg)
    assert all(torch.equal(a, b) for a, b in zip(photos_val, pack_val[1:]))
    assert pack_val[0][0].shape == (24, 24, 3) and pack.stat().st_size <= 2 ** 20
    threads = torch.get_num_threads()
    try:
        train_mod.train(cfg, NetConfig(widths=(8, 8, 8), blocks=(1, 1, 1), mixtures=2))
    finally:
        torch.set_num_threads(threads)
    log = [json.loads(line) for line in (tmp_path / "runs/p/log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 5 and np.isfinite(log[-1]["val_bpd"])
    ck = torch.load(tmp_path / "runs/p/ckpt.pt")
    assert all(t.device.type == "cpu" for t in ck["net"].values())


def test_a_pack_too_small_for_the_validation_crops_is_refused(tmp_path, monkeypatch):
    _tiny_photo_sets(tmp_path, monkeypatch, seed=3)
    with pytest.raises(ValueError, match="cannot hold the validation crops"):
        train_mod.write_pack(tmp_path / "pack.npz", crop=16, mib=0.01, region=24)
    assert not list(tmp_path.glob("pack*"))


def test_training_imports_without_the_coding_and_audio_packages():
    """A lent GPU machine has torch, numpy and Pillow but not soundfile, constriction or click: the image
    trainer (and the registry, for --init) must import without them."""
    import subprocess
    import sys
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] in ('soundfile', 'constriction', 'click'):\n"
            "            raise ImportError('not on this machine: ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import ardmzip.train, ardmzip.registry\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_training_option_is_explained():
    """config_arguments takes each option's help from its field's comment: a field without one fails."""
    import argparse
    from ardmzip import audio_train
    for config in (train_mod.TrainConfig(), audio_train.TrainConfig()):
        ap = argparse.ArgumentParser()
        train_mod.config_arguments(ap, config)
        options = [a for a in ap._actions if a.dest != "help"]
        assert len(options) == len(dataclasses.fields(config))
        assert all(a.help and not a.help.startswith(" (") for a in options), [a.dest for a in options if not a.help]


@pytest.mark.parametrize("order,prior", [("uniform", 0), ("quincunx-grb", 3)])
def test_a_depth_upscaling_net_trains_and_evaluates_both_stages(tmp_path, monkeypatch, order, prior):
    _tiny_photo_sets(tmp_path, monkeypatch, seed=4)
    threads = torch.get_num_threads()
    net_cfg = NetConfig(widths=(8, 8, 8), blocks=(1, 1, 1), mixtures=2, order=order, prior=prior, stages=2)
    try:
        train_mod.train(train_mod.TrainConfig(run="u", minutes=10.0, steps=5, batch=4, crop=16, eval_every=1e9),
                        net_cfg)
    finally:
        torch.set_num_threads(threads)
    log = [json.loads(line) for line in (tmp_path / "runs/u/log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 5 and 4.0 < log[-1]["val_bpd"] < 16.0  # both stages: about 8 bits of noise
