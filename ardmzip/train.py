"""Train an image ARDM. Resumable: the checkpoint lives outside git and may vanish, in which case a run
starts from the shipped weights given by --init (or from scratch).

    python -m ardmzip.train --run img1 --minutes 120 [--init MODEL-ID | --init RUN/ckpt.pt] [--threads 1]

Every --eval-every seconds: validation bpd on fixed crops of the validation photos, a line in the run's
log.jsonl (images seen, wall time, train and validation bpd) and an atomic checkpoint. The per-step
loss curve L_t that the schedule needs is measured on validation crops by `ardmzip.export`.

**On a lent GPU** (no internet, no Debian packages, 64 MiB carried in): `--write-pack FILE` writes, here,
a compact training file (TrainConfig.data): regions of the training photos and the validation crops
that the run evaluates on, the same ones a run from the photos uses. There:

    python3 -m ardmzip.train --run img8 --data pack.npz --device cuda --workers 12 --batch 256 --minutes 8

(ARDMZIP_CACHE=$OUT puts the run's checkpoint and log where they come back). Checkpoints always hold CPU
tensors, so a run resumes, and exports, on either machine. The crops are cut on --workers processes.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import inspect
import io
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .ardm import training_loss
from .data import CACHE, load_images
from .exact import QuantNet, calibrate, dequantised
from .nets import ARDMNet, NetConfig


@dataclass
class TrainConfig:
    run: str = "img1"           # run name: checkpoint and log under CACHE/runs/RUN/ (resumed when there)
    minutes: float = 60.0       # wall-clock length of this invocation
    steps: int = 0              # also stop after this many steps of this invocation (0: minutes only)
    batch: int = 32             # crops per step
    crop: int = 32              # crop side in pixels
    lr: float = 1e-3            # Adam learning rate (after warm-up)
    lr_final: float = 1.0       # fraction of lr reached at the end of this invocation (cosine); 1 = constant
    warmup: int = 300           # steps of linear learning-rate warm-up
    ema: float = 0.999          # decay of the weights' exponential moving average (evaluated and shipped)
    grey_fraction: float = 0.15  # share of crops turned grey (R = G = B), as greyscale photos are coded
    threads: int = 1            # torch threads
    eval_every: float = 600.0   # seconds between validation, log line and checkpoint
    init: str | None = None     # start from a shipped model id or another run's ckpt.pt (EMA weights)
    seed: int = 0               # seed of the crops and masks
    qat: bool = False           # quantisation-aware training for an int-exact model (exact.py)
    scale_fraction: float = 0.0  # share of crops upscaled by a random factor (SCALE_RANGE): smoother content
    data: str = ""              # a training pack (--write-pack) instead of the photos under CACHE/data
    device: str = "cpu"         # where the net trains: "cpu", "cuda"
    workers: int = 0            # processes cutting crops (0: in the training loop)


SCALE_RANGE = (1.0, 3.0)  # upscaling factors of scale augmentation, drawn log-uniformly
RESAMPLERS = (Image.BILINEAR, Image.BICUBIC, Image.LANCZOS)


class CropSampler:
    """Random crops from whole photos (chosen by area), with flips, 90° rotations, grey versions and,
    for a share `scale_fraction` of them, upscaling by a random factor.

    The training photos are downscaled 2× (data.py) to remove codec artefacts, which makes them sharper
    per pixel than photos at their native resolution; upscaled crops show the net smoother content.
    """

    def __init__(self, images: list[np.ndarray], crop: int, grey_fraction: float, seed: int,
                 scale_fraction: float = 0.0):
        self.images = [a for a in images if min(a.shape[:2]) >= crop]
        area = np.array([a.shape[0] * a.shape[1] for a in self.images], dtype=np.float64)
        self.p = area / area.sum()
        self.crop, self.grey_fraction, self.scale_fraction = crop, grey_fraction, scale_fraction
        self.rng = np.random.default_rng(seed)

    def _cut(self, a: np.ndarray) -> np.ndarray:
        """One crop×crop×3 patch of a, upscaled from a smaller region with probability scale_fraction."""
        c = self.crop
        if self.scale_fraction and self.rng.random() < self.scale_fraction:
            f = math.exp(self.rng.uniform(*np.log(SCALE_RANGE)))
            s = max(2, round(c / f))
            y, x = self.rng.integers(0, a.shape[0] - s + 1), self.rng.integers(0, a.shape[1] - s + 1)
            resample = RESAMPLERS[self.rng.integers(len(RESAMPLERS))]
            return np.asarray(Image.fromarray(a[y:y + s, x:x + s]).resize((c, c), resample))
        y, x = self.rng.integers(0, a.shape[0] - c + 1), self.rng.integers(0, a.shape[1] - c + 1)
        return a[y:y + c, x:x + c]

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 3, crop, crop) uint8-valued int64 tensor and (n,) bool grey flags."""
        c, out = self.crop, np.empty((n, 3, self.crop, self.crop), dtype=np.uint8)
        grey = self.rng.random(n) < self.grey_fraction
        for i, k in enumerate(self.rng.choice(len(self.images), n, p=self.p)):
            patch = np.rot90(self._cut(self.images[k]), self.rng.integers(4)).astype(np.int32)
            if self.rng.random() < 0.5:
                patch = patch[:, ::-1]
            if grey[i]:  # ITU-R 601 luma, the same as PIL's convert("L")
                lum = (patch[..., 0] * 299 + patch[..., 1] * 587 + patch[..., 2] * 114 + 500) // 1000
                patch = np.repeat(lum[..., None], 3, axis=2)
            out[i] = patch.transpose(2, 0, 1)
        return torch.from_numpy(out).long(), torch.from_numpy(grey)


class _Batches(torch.utils.data.IterableDataset):
    """An endless stream of sampler batches, one independent sampler (seeded by worker) per process."""

    def __init__(self, sampler: CropSampler, batch: int, seed: int):
        self.sampler, self.batch, self.seed = sampler, batch, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        sampler = copy.copy(self.sampler)
        sampler.rng = np.random.default_rng([self.seed, 1 + (info.id if info else 0)])  # not the main stream
        while True:
            yield sampler.batch(self.batch)


def batches(sampler: CropSampler, batch: int, workers: int, seed: int):
    """Training batches (x, grey) on the CPU: from the sampler itself, or cut on `workers` processes."""
    if not workers:
        while True:
            yield sampler.batch(batch)
    yield from torch.utils.data.DataLoader(_Batches(sampler, batch, seed), batch_size=None, num_workers=workers,
                                           pin_memory=torch.cuda.is_available(), prefetch_factor=4)


PACK_REGION = 64     # side of the photo regions a pack holds (crops and their scale augmentation fit in)


def write_pack(path: Path, crop: int = 32, mib: float = 36.0, seed: int = 0, region: int = PACK_REGION) -> None:
    """The training photos as a compact file for a machine that cannot build them: regions of region²
    drawn by area (as many as fit in `mib` MiB compressed), and the validation crops a run from the
    photos evaluates on at this crop size (`val`, `val_scaled`), so logs stay comparable."""
    if crop > region:
        raise ValueError(f"crops of {crop} do not fit in regions of {region}")
    photos, val, val_scaled = (a.to(torch.uint8).numpy() if torch.is_tensor(a) else a
                               for a in load_training_data(TrainConfig(crop=crop)))
    fixed = len(_npz(val=val, val_scaled=val_scaled))
    n = 8192
    while n >= 1 and fixed < mib * 2 ** 20:
        regions = CropSampler(photos, region, 0.0, seed).batch(n)[0].to(torch.uint8).numpy()
        blob = _npz(regions=regions.transpose(0, 2, 3, 1), val=val, val_scaled=val_scaled, crop=np.int64(crop))
        if len(blob) <= mib * 2 ** 20:
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(blob)
            os.replace(tmp, path)
            print(f"{n} regions of {region}x{region} and {len(val)} + {len(val_scaled)} validation crops of "
                  f"{crop}x{crop}: {len(blob) / 2 ** 20:.1f} MiB -> {path}")
            return
        n = min(n - 1, int(n * (mib * 2 ** 20 - fixed) / max(len(blob) - fixed, 1) * 0.98))
    raise ValueError(f"{mib} MiB cannot hold the validation crops ({fixed / 2 ** 20:.2f} MiB) and any region")


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def load_training_data(cfg: TrainConfig) -> tuple[list[np.ndarray], torch.Tensor, torch.Tensor]:
    """(training photos or regions, validation crops, scaled validation crops) from cfg.data's pack or
    from the photos under CACHE/data."""
    if cfg.data:
        with np.load(cfg.data) as z:
            if int(z["crop"]) != cfg.crop:
                raise SystemExit(f"{cfg.data} holds validation crops of {int(z['crop'])}, not --crop {cfg.crop}")
            return list(z["regions"]), torch.from_numpy(z["val"]).long(), torch.from_numpy(z["val_scaled"]).long()
    data_dir = CACHE / "data"
    val_images = load_images(data_dir / "images_val.npz")
    return (load_images(data_dir / "images_train.npz"), fixed_crops(val_images, 512, cfg.crop),
            fixed_crops(val_images, 256, cfg.crop, scaled=True))


def calibration_batches(sampler: CropSampler, n: int = 8, batch: int = 16, stages: int = 1):
    """(v, known, t-fraction) batches with uniformly random revealed fractions, for exact.calibrate; for a
    depth-upscaling net (stages 2) with a random stage each: (v, known, t-fraction, stage)."""
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        x, _ = sampler.batch(batch)
        known = (torch.rand(x.shape, generator=g) < torch.rand(len(x), 1, 1, 1, generator=g)).float()
        out.append((x.float(), known, torch.randint(0, 256, (len(x),), generator=g))
                   + ((torch.randint(1, stages + 1, (len(x),), generator=g),) if stages > 1 else ()))
    return out


def fixed_crops(images: list[np.ndarray], n: int, crop: int, seed: int = 1234, scaled: bool = False) -> torch.Tensor:
    """The same n validation crops every time: (n, 3, crop, crop); scaled: all upscaled (SCALE_RANGE)."""
    return CropSampler(images, crop, 0.0, seed, scale_fraction=1.0 if scaled else 0.0).batch(n)[0]


@torch.inference_mode()
def evaluate(net: ARDMNet, crops: torch.Tensor, batch: int = 64) -> float:
    """Validation bound in bpd on fixed crops with a fixed generator (t and orders reproducible on one
    device; a GPU draws other masks than the CPU, so its numbers differ within noise)."""
    g = torch.Generator(device=crops.device).manual_seed(0)
    stages = net.cfg.stages
    total = 0.0
    for i in range(0, len(crops), batch):
        x = crops[i:i + batch]
        grey = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for s in range(1, stages + 1):  # every stage of a depth-upscaling net on every crop
            stage = torch.full((len(x),), s, device=x.device) if stages > 1 else None
            loss, _, _ = training_loss(net, x, grey, generator=g, stage=stage)
            total += loss.item() * len(x) / stages
    return total / len(crops)


def to_cpu(obj):
    """Tensors (in dicts, lists, tuples) moved to the CPU: checkpoints load on any machine."""
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):  # state dicts keep their type and _metadata (module versions)
        out = type(obj)((k, to_cpu(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(to_cpu(obj), tmp)
    os.replace(tmp, path)


def init_from(net: ARDMNet, weights: dict, cfg: NetConfig) -> None:
    """Start `net` from another run's weights (config cfg) of the same topology. A net that adds the prior
    (prior.py) to one without it gets zero weights on its extra input rows (the last ones) and a head
    whose mean and log-scale corrections are constants: 0 for the means, log-scales spread around the
    prior's (a scale mixture), so it starts out as the prior. A depth-upscaling net (cfg.stages 2) from a
    one-stage one gets a zero weight on its stage input (ardm.stage_inputs are values on the same scale)."""
    weights = dict(weights)
    if net.cfg.stages > 1 and cfg.stages == 1:
        old = weights["stem.weight"]
        at = NetConfig(channels=cfg.channels).in_features  # the stage follows the normalised convolutions
        stem = net.stem.weight.detach().clone().zero_()
        stem[:, :at], stem[:, at + 1:] = old[:, :at], old[:, at:]
        weights["stem.weight"] = stem
    if net.cfg.prior and not cfg.prior:
        stem = net.stem.weight.detach().clone().zero_()
        stem[:, :weights["stem.weight"].shape[1]] = weights["stem.weight"]
        weights["stem.weight"] = stem
        k, c = net.cfg.mixtures, net.cfg.channels
        w = weights["head.weight"].clone().view(c, 3 * k, -1, 1, 1)
        b = weights["head.bias"].clone().view(c, 3 * k)
        w[:, k:] = 0
        b[:, k:2 * k] = 0
        b[:, 2 * k:] = torch.linspace(-0.7, 0.7, k)
        weights["head.weight"], weights["head.bias"] = w.view(c * 3 * k, -1, 1, 1), b.reshape(-1)
    net.load_state_dict(weights)


def run_progress(cfg, start: float, steps_done: int) -> float:
    """How far this invocation is, 0 to 1: by wall time, or by steps where `cfg.steps` is set and further
    (a run stopped by steps is reproducible; one stopped by time depends on the machine's speed)."""
    by_time = (time.time() - start) / (cfg.minutes * 60)
    return max(by_time, steps_done / cfg.steps) if cfg.steps else by_time


def train(cfg: TrainConfig, net_cfg: NetConfig, init_order: bool = False) -> None:
    """Train (or resume) run cfg.run. net_cfg: the net from scratch; with cfg.init its topology comes
    from the init model, and its order family too where init_order (else net_cfg.order)."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    dev = torch.device(cfg.device)
    run_dir = CACHE / "runs" / cfg.run
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "ckpt.pt"

    net = ARDMNet(net_cfg)
    state = {"step": 0, "images": 0, "seconds": 0.0}
    init_scales = None
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu")
        net_cfg = NetConfig.from_dict(ck["net_config"])
        net = ARDMNet(net_cfg)
        net.load_state_dict(ck["net"])
        state = ck["state"]
        print(f"resumed {ckpt_path} at step {state['step']}")
    elif cfg.init and cfg.init.endswith(".pt"):  # another run's checkpoint: its EMA weights
        ck_init = torch.load(cfg.init)
        init_cfg = NetConfig.from_dict(ck_init["net_config"])
        net = ARDMNet(dataclasses.replace(init_cfg, order=init_cfg.order if init_order else net_cfg.order,
                                          prior=net_cfg.prior or init_cfg.prior,
                                          stages=max(net_cfg.stages, init_cfg.stages)))
        init_from(net, ck_init["ema"], init_cfg)
        net_cfg = net.cfg
        print(f"initialised from the EMA weights of {cfg.init}")
    elif cfg.init:
        from .registry import load_model
        shipped = load_model(cfg.init)
        if shipped.exact is not None:  # an int-exact model: its dequantised weights, trained on as QAT
            net, init_scales = dequantised(shipped.exact)
        else:
            net = copy.deepcopy(shipped.net)
        if net_cfg.stages > net.cfg.stages:  # a depth-upscaling net from a one-stage model: new quantisation
            staged = ARDMNet(dataclasses.replace(net.cfg, stages=net_cfg.stages))
            init_from(staged, net.state_dict(), net.cfg)
            net, init_scales = staged, None
        net_cfg = net.cfg = dataclasses.replace(net.cfg, order=net.cfg.order if init_order else net_cfg.order)
        print(f"initialised from shipped model {cfg.init}")
    net.to(dev)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    if ckpt_path.exists():
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])  # moves the moments to the parameters' device

    photos, val, val_scaled = load_training_data(cfg)
    val, val_scaled = val.to(dev), val_scaled.to(dev)
    sampler = CropSampler(photos, cfg.crop, cfg.grey_fraction, cfg.seed + state["step"], cfg.scale_fraction)
    scales = ck.get("scales") if ckpt_path.exists() else init_scales
    if cfg.qat or scales:  # from here on the net trains through the integer arithmetic it will code with
        if scales is None:
            scales = calibrate(ema, [tuple(t.to(dev) for t in b)
                                     for b in calibration_batches(sampler, stages=net_cfg.stages)])
            print(f"calibrated {len(scales)} quantisation points")
        net, ema = QuantNet(net, scales), QuantNet(ema, scales)
    if dev.type == "cuda":  # TF32 convolutions would blur the fake quantisation's rounding points
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = not scales
    print(f"{sum(p.numel() for p in net.parameters())} parameters, config {net_cfg}, on {dev}")
    stream = batches(sampler, cfg.batch, cfg.workers, cfg.seed + state["step"])

    start, last_eval, window = time.time(), time.time(), []
    base_seconds, first_step = state["seconds"], state["step"]
    while (progress := run_progress(cfg, start, state["step"] - first_step)) < 1:
        decay = cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        lr = cfg.lr * min(1.0, (state["step"] + 1) / cfg.warmup) * decay
        for grp in opt.param_groups:
            grp["lr"] = lr
        x, grey = (t.to(dev, non_blocking=True) for t in next(stream))
        loss, _, _ = training_loss(net, x, grey)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(list(ema.parameters()), list(net.parameters()), 1 - cfg.ema)
        state["step"] += 1
        state["images"] += cfg.batch
        window.append(loss.detach())  # no device sync per step
        now = time.time()
        if now - last_eval > cfg.eval_every or run_progress(cfg, start, state["step"] - first_step) >= 1:
            state["seconds"] = base_seconds + now - start
            val_bpd = evaluate(ema, val)
            line = {"step": state["step"], "images": state["images"], "hours": state["seconds"] / 3600,
                    "train_bpd": float(torch.stack(window).double().mean()), "val_bpd": val_bpd,
                    "val_scaled_bpd": evaluate(ema, val_scaled), "lr": lr}
            print(json.dumps(line), flush=True)
            with open(run_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(line) + "\n")
            window, last_eval = [], time.time()
            inner = (lambda n: n.net) if scales else (lambda n: n)
            save_atomic({"net": inner(net).state_dict(), "ema": inner(ema).state_dict(), "opt": opt.state_dict(),
                         "state": state, "net_config": net_cfg.to_dict(), "train_config": asdict(cfg),
                         **({"scales": scales} if scales else {})}, ckpt_path)


def config_arguments(ap: argparse.ArgumentParser, defaults) -> None:
    """An option --field-name for every field of a config dataclass (booleans as flags), its help the
    field's comment in the class's source (one place to read and to change)."""
    comments = dict(re.findall(r"^\s+(\w+): [^=\n]+=[^#\n]*#\s*(.+)$", inspect.getsource(type(defaults)), re.M))
    for f, v in asdict(defaults).items():
        name, what = "--" + f.replace("_", "-"), comments.get(f, "")
        if isinstance(v, bool):
            ap.add_argument(name, action="store_true", help=what)
        else:
            ap.add_argument(name, type=type(v) if v is not None else str, default=v,
                            help=f"{what} (default: {v!r})" if what else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    config_arguments(ap, TrainConfig())
    ap.add_argument("--write-pack", action="store_true",
                    help="write the training pack --data FILE (validation crops at --crop) from the photos and exit")
    ap.add_argument("--widths", type=str, default="32,64,128", help="channels per U-Net level (full, 1/2, 1/4 resolution)")
    ap.add_argument("--blocks", type=str, default="2,2,3", help="residual blocks per level")
    ap.add_argument("--mixtures", type=int, default=6, help="logistic mixture components per subpixel")
    ap.add_argument("--stages", type=int, choices=[1, 2], default=1,
                    help="2: depth upscaling, two base-16 digits per subpixel (coded in integer arithmetic "
                         "only: finish with --qat); with --init, the one-stage model's weights and a new stage input")
    ap.add_argument("--order", choices=["uniform", "quincunx", "quincunx-grb"], default=None,
                    help="order family (default: the --init model's; from scratch: uniform)")
    ap.add_argument("--prior", type=int, nargs="?", const=1, default=0,
                    help="the head corrects an exact neighbour prediction: prior.py's version (1 ring means, "
                         "2 line interpolation, 3 also blue from red's miss; bare --prior: 1)")
    a = vars(ap.parse_args())
    net_cfg = NetConfig(widths=tuple(int(v) for v in a.pop("widths").split(",")),
                        blocks=tuple(int(v) for v in a.pop("blocks").split(",")), mixtures=a.pop("mixtures"),
                        order=a["order"] or "uniform", prior=a.pop("prior"), stages=a.pop("stages"))
    init_order = a.pop("order") is None
    if a.pop("write_pack"):
        if not a["data"]:
            raise SystemExit("--write-pack needs --data FILE: where to write the pack")
        write_pack(Path(a["data"]), a["crop"])
        return
    train(TrainConfig(**a), net_cfg, init_order)


if __name__ == "__main__":
    main()
