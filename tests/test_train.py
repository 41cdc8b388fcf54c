"""The training entry point runs, checkpoints and resumes (on tiny synthetic photos)."""
import json

import numpy as np
import torch

from ardmzip import train as train_mod
from ardmzip.nets import NetConfig


def test_train_checkpoints_and_resumes(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "val"):
        np.savez(data / f"images_{split}.npz", **{f"p{i}": rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
                                                  for i in range(3)})
    monkeypatch.setattr(train_mod, "CACHE", tmp_path)
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
