"""Train an audio ARDM (audio_model.py). Resumable: the checkpoint lives outside git and may vanish.

    python -m ardmzip.audio_train --run aud1 --kind speech --minutes 120 [--threads 1] [--qat]
    python -m ardmzip.audio_train --run aud1 --kind speech --curves      # measure the loss curves only
    python -m ardmzip.audio_train --run as0 --derive models/aud6.pt --order dyadic-split ...    # no training

Each example is a random segment of --segment frames (mono: one channel of any clip; stereo batches,
when the data has stereo clips: both channels of a stereo clip), random polarity, and one stage drawn
per example (stage 1: high bytes, stage 2: low bytes given every high byte). Every --eval-every
seconds: the validation bound in bits per variable of each stage on fixed validation segments, a line in
the run's log.jsonl (segments, samples and their rate, train and validation bits) and an atomic
checkpoint. `--curves` measures each stage's loss curve L_t on the validation segments (the schedule's
input) and writes curves.json next to the checkpoint. `--derive` starts a run from another run's
checkpoint or a shipped int-exact model with its weights and quantisation unchanged and the order, the
filters' coding and their longest taps of this command line (what the codec does around the net; the
net's inputs keep their shape), without training: export ships it as a new model id.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .ardm import DYADIC_FAMILIES, LOSS_GRID, group_edges
from .audio_model import (AudioModel, AudioNet, AudioNetConfig, ExactAudioNet, QuantAudioNet, calibrate, features,
                          segment_side, training_loss)
from .data import CACHE, Clip, load_clips
from . import exact
from .exact import export_int
from .registry import curve_to_ints
from .train import config_arguments, run_progress, save_atomic


@dataclass
class TrainConfig:
    run: str = "aud1"            # run name: checkpoint and log under CACHE/runs/RUN/ (resumed when there)
    kind: str = "speech"         # training clips: speech, music, or both (speech,music: equal shares)
    minutes: float = 60.0        # wall-clock length of this invocation
    steps: int = 0               # also stop after this many steps of this invocation (0: minutes only)
    batch: int = 8               # segments per step
    segment: int = 4096          # frames per training segment
    lr: float = 1e-3             # Adam learning rate (after warm-up)
    lr_final: float = 1.0        # fraction of lr reached at the end of this invocation (cosine); 1 = constant
    warmup: int = 200            # steps of linear learning-rate warm-up
    ema: float = 0.999           # decay of the weights' exponential moving average (evaluated and shipped)
    stereo_fraction: float = 0.25  # share of stereo batches, when the training clips have stereo ones
    threads: int = 1             # torch threads
    eval_every: float = 600.0    # seconds between validation, log line and checkpoint
    val_segments: int = 64       # fixed validation segments (an equal share per kind)
    seed: int = 0                # seed of the segments and masks
    qat: bool = False            # quantisation-aware training for an int-exact model
    init: str | None = None      # a run's checkpoint (its EMA weights) or a shipped model file (its integer
                                 # weights, dequantised) that starts a new run (same net shape)


class SegmentSampler:
    """Random segments of `length` frames from clips, chosen in proportion to their usable length."""

    def __init__(self, clips: list[Clip], length: int, seed: int):
        self.length = length
        self.rng = np.random.default_rng(seed)
        self.pools = {}
        for channels in (1, 2):
            pool = [c.samples for c in clips if len(c.samples) >= length and (channels == 1 or c.samples.shape[1] == 2)]
            if pool:
                w = np.array([len(a) - length + 1 for a in pool], dtype=np.float64)
                self.pools[channels] = (pool, w / w.sum())
        if 1 not in self.pools:
            raise ValueError(f"no clip has {length} frames: use a shorter --segment")

    def batch(self, n: int, channels: int = 1) -> torch.Tensor:
        """(n, channels, length) int64 values u = sample + 32768 in 0..65535."""
        pool, p = self.pools[channels]
        out = np.empty((n, channels, self.length), dtype=np.int64)
        for i, k in enumerate(self.rng.choice(len(pool), n, p=p)):
            a = pool[k]
            s = self.rng.integers(0, len(a) - self.length + 1)
            seg = a[s:s + self.length].astype(np.int64).T
            if channels == 1:
                seg = seg[self.rng.integers(a.shape[1]):][:1]
            elif self.rng.random() < 0.5:
                seg = seg[::-1]
            u = seg + 32768
            out[i] = 65535 - u if self.rng.random() < 0.5 else u  # polarity: ~x, exact on int16
        return torch.from_numpy(out)


class MixedSampler:
    """Batches from several kinds of clips (`--kind speech,music`): each batch is one kind, the kinds drawn
    in equal shares, so the ~8× more music samples do not drown the speech. Same interface as
    SegmentSampler (pools: the channel counts some kind can serve)."""

    def __init__(self, groups: dict[str, list[Clip]], length: int, seed: int):
        self.samplers = {k: SegmentSampler(c, length, seed + i) for i, (k, c) in enumerate(groups.items())}
        self.rng = np.random.default_rng(seed)
        self.pools = set().union(*(s.pools for s in self.samplers.values()))

    def batch(self, n: int, channels: int = 1) -> torch.Tensor:
        kinds = [k for k, s in self.samplers.items() if channels in s.pools]
        return self.samplers[kinds[self.rng.integers(len(kinds))]].batch(n, channels)


def kind_clips(path, kind: str) -> dict[str, list[Clip]]:
    """{kind: clips} for a comma-separated list of kinds."""
    return {k: load_clips(path, k) for k in kind.split(",")}


def make_sampler(path, kind: str, length: int, seed: int) -> SegmentSampler | MixedSampler:
    groups = kind_clips(path, kind)
    return SegmentSampler(*groups.values(), length, seed) if len(groups) == 1 else MixedSampler(groups, length, seed)


def fixed_segments(clips: list[Clip], n: int, length: int, seed: int = 1234) -> torch.Tensor:
    """The same n mono validation segments every time: (n, 1, length)."""
    return SegmentSampler(clips, length, seed).batch(n)


@torch.inference_mode()
def evaluate(net: torch.nn.Module, segs: torch.Tensor, stage: int, batch: int = 16) -> float:
    """Validation bound of one stage in bits per variable, with t and orders from a fixed generator."""
    g = torch.Generator().manual_seed(0)
    total = 0.0
    for i in range(0, len(segs), batch):
        u = segs[i:i + batch]
        loss, _, _ = training_loss(net, u, torch.full((len(u),), stage), generator=g)
        total += loss.item() * len(u)
    return total / len(segs)


@torch.inference_mode()
def loss_curve(net: torch.nn.Module, segs: torch.Tensor, stage: int, points: int = 32, batch: int = 16) -> np.ndarray:
    """L_t of one stage in bits per variable on the LOSS_GRID grid of revealed fractions (g + ½)/G:
    measured at `points` fractions on every segment, interpolated linearly in between; for a dyadic net
    at 4 fractions inside each group's grid range, interpolated within the group only (the curve jumps
    where a group ends)."""
    g = torch.Generator().manual_seed(0)
    D = segs.shape[1] * segs.shape[2]

    def mean_bits(f: float) -> float:
        lts = []
        for i in range(0, len(segs), batch):
            u = segs[i:i + batch]
            t = torch.full((len(u),), int(f * D))
            lts.append(training_loss(net, u, torch.full((len(u),), stage), generator=g, t=t)[2])
        return float(torch.cat(lts).mean()) / math.log(2)

    if net.cfg.order in DYADIC_FAMILIES:
        edges = group_edges(LOSS_GRID, split=net.cfg.split)
        spans = [(a, b, (a + (np.arange(4) + 0.5) * (b - a) / 4) / LOSS_GRID) for a, b in zip(edges[:-1], edges[1:])]
    else:
        spans = [(0, LOSS_GRID, (np.arange(points) + 0.5) / points)]
    curve = np.empty(LOSS_GRID)
    for a, b, fracs in spans:
        curve[a:b] = np.interp((np.arange(a, b) + 0.5) / LOSS_GRID, fracs, [mean_bits(f) for f in fracs])
    return curve


def calibration_inputs(sampler: SegmentSampler | MixedSampler, cfg: AudioNetConfig, n: int = 8, batch: int = 8) -> list[torch.Tensor]:
    """Feature batches with random stages and uniformly random revealed fractions, for calibrate()."""
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        u = sampler.batch(batch)
        B, C, L = u.shape
        m = torch.rand(B, C, L, generator=g) < torch.rand(B, 1, 1, generator=g)
        stage = torch.full((B,), 2) if cfg.joint else torch.randint(1, 3, (B,), generator=g)
        s1 = (stage == 1).view(B, 1, 1)
        out.append(features(u >> 8, m if cfg.joint else torch.where(s1, m, True), u & 255, torch.where(s1, False, m),
                            torch.randint(0, 256, (B,), generator=g), stage, cfg,
                            segment_side(u, cfg) if cfg.interp else None))
    return out


def _validation(cfg: TrainConfig) -> torch.Tensor:
    """Fixed mono validation segments, an equal share from each kind."""
    groups = kind_clips(CACHE / "data" / "audio_val.npz", cfg.kind)
    return torch.cat([fixed_segments(c, cfg.val_segments // len(groups), cfg.segment) for c in groups.values()])


def dequantised(blob: dict, cfg: AudioNetConfig) -> dict:
    """Float weights of a shipped int-exact model (exact.dequantised: its integers times their scales): the
    weights it codes with, as a start for a new run."""
    return exact.dequantised(ExactAudioNet(cfg, blob), AudioNet(cfg))[0].state_dict()


def init_from(net: AudioNet, weights: dict, cfg: AudioNetConfig) -> None:
    """Start `net` from another run's weights of the same topology. A net that adds the prior (cfg.prior)
    to one without it gets zero weights on its extra input rows (the last ones) and a head whose mean and
    log-scale corrections are constants: 0 for the means, spread log-scales (−0.5 … +1 around the prior's:
    a scale mixture), so it starts out as the prior. So does a net that adds stored side information
    (cfg.interp) to one without: the old corrections were learnt for the old prior's scale, which was
    too wide (measured on validation segments: aud3's weights with the stored side information 9.17 /
    10.49 bits per sample on speech / music as they are, 8.98 / 9.99 with the corrections reset)."""
    weights = dict(weights)
    if (net.cfg.prior and not cfg.prior) or (net.cfg.interp and not cfg.interp):
        if not cfg.prior:
            stem = net.stem.weight.detach().clone().zero_()
            stem[:, :weights["stem.weight"].shape[1]] = weights["stem.weight"]
            weights["stem.weight"] = stem
        k = net.cfg.mixtures
        weights["head.weight"], weights["head.bias"] = weights["head.weight"].clone(), weights["head.bias"].clone()
        weights["head.weight"][k:] = 0
        weights["head.bias"][k:2 * k] = 0
        weights["head.bias"][2 * k:] = torch.linspace(-0.5, 1.0, k)
    net.load_state_dict(weights)


def train(cfg: TrainConfig, net_cfg: AudioNetConfig) -> None:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    run_dir = CACHE / "runs" / cfg.run
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "ckpt.pt"
    state = {"step": 0, "segments": 0, "seconds": 0.0}
    ck = torch.load(ckpt_path) if ckpt_path.exists() else None
    if ck:
        net_cfg = AudioNetConfig.from_dict(ck["net_config"])
    net = AudioNet(net_cfg)
    if ck:
        net.load_state_dict(ck["net"])
        state = ck["state"]
        print(f"resumed {ckpt_path} at step {state['step']}")
    elif cfg.init and Path(cfg.init).exists():
        init = torch.load(cfg.init)
        init_cfg = AudioNetConfig.from_dict(init["net_config"])
        init_from(net, init["ema"] if "ema" in init else dequantised(init["exact"], init_cfg), init_cfg)
        print(f"initialised from {cfg.init}")
    elif cfg.init:
        print(f"{cfg.init} is gone (checkpoints live outside git): starting from scratch")
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    if ck:
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])

    sampler = make_sampler(CACHE / "data" / "audio_train.npz", cfg.kind, cfg.segment, cfg.seed + state["step"])
    scales = ck.get("scales") if ck else None
    if cfg.qat or scales:  # from here on the net trains through the integer arithmetic it will code with
        if scales is None:
            scales = calibrate(ema, calibration_inputs(sampler, net_cfg))
            print(f"calibrated {len(scales)} quantisation points")
        net, ema = QuantAudioNet(net, scales), QuantAudioNet(ema, scales)
    val = _validation(cfg)
    print(f"{sum(p.numel() for p in net.parameters())} parameters, config {net_cfg}", flush=True)

    start, last_eval = time.time(), time.time()
    window: dict[int, list[float]] = {1: [], 2: []}
    seen_at_eval = state["segments"]
    base_seconds, first_step = state["seconds"], state["step"]
    while (progress := run_progress(cfg, start, state["step"] - first_step)) < 1:
        decay = cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        lr = cfg.lr * min(1.0, (state["step"] + 1) / cfg.warmup) * decay
        for grp in opt.param_groups:
            grp["lr"] = lr
        channels = 2 if 2 in sampler.pools and sampler.rng.random() < cfg.stereo_fraction else 1
        u = sampler.batch(cfg.batch, channels)
        stage = torch.from_numpy(sampler.rng.integers(1, net_cfg.stages + 1, cfg.batch))
        loss, _, lt = training_loss(net, u, stage, penalty=True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        decay = min(cfg.ema, (1 + state["step"]) / (10 + state["step"]))  # warm-up: useful after short runs
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters()):
                pe.lerp_(p, 1 - decay)
        state["step"] += 1
        state["segments"] += cfg.batch
        for s in (1, 2):
            window[s] += (lt[stage == s] / math.log(2)).tolist()
        now = time.time()
        if now - last_eval > cfg.eval_every or run_progress(cfg, start, state["step"] - first_step) >= 1:
            rate = (state["segments"] - seen_at_eval) / (now - last_eval)
            state["seconds"] = base_seconds + now - start
            v1, v2 = evaluate(ema, val, 1), evaluate(ema, val, 2) if net_cfg.stages > 1 else 0.0
            line = {"step": state["step"], "segments": state["segments"],
                    "samples": state["segments"] * cfg.segment, "hours": state["seconds"] / 3600,
                    "segments_per_s": rate, "samples_per_s": rate * cfg.segment,
                    "train_bits_stage1": float(np.mean(window[1] or [np.nan])),
                    "train_bits_stage2": float(np.mean(window[2] or [np.nan])),
                    "val_bits_stage1": v1, "val_bits_stage2": v2, "val_bits_per_sample": v1 + v2, "lr": lr}
            print(json.dumps(line), flush=True)
            with open(run_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(line) + "\n")
            window, last_eval, seen_at_eval = {1: [], 2: []}, time.time(), state["segments"]
            inner = (lambda n: n.net) if scales else (lambda n: n)
            save_atomic({"net": inner(net).state_dict(), "ema": inner(ema).state_dict(), "opt": opt.state_dict(),
                         "state": state, "net_config": net_cfg.to_dict(), "train_config": asdict(cfg),
                         **({"scales": scales} if scales else {})}, ckpt_path)


def run_net(run: str, weights: str = "ema") -> tuple[torch.nn.Module, dict]:
    """The EMA (or, weights="net", the last) net of a run, a QuantAudioNet if it was trained with --qat,
    and its checkpoint."""
    ck = torch.load(CACHE / "runs" / run / "ckpt.pt")
    net = AudioNet(AudioNetConfig.from_dict(ck["net_config"]))
    net.load_state_dict(ck[weights])
    net.eval().requires_grad_(False)
    return (QuantAudioNet(net, ck["scales"]) if "scales" in ck else net), ck


def measure_curves(cfg: TrainConfig, weights: str = "ema") -> dict:
    """Per-stage loss curves of a run's EMA net on the validation segments -> curves.json (millibits on
    LOSS_GRID points, as the manifest stores them) and the bound they imply, in bits per sample."""
    torch.set_num_threads(cfg.threads)
    net, _ = run_net(cfg.run, weights)
    val = _validation(cfg)
    curves = [loss_curve(net, val, s) for s in range(1, net.cfg.stages + 1)]
    out = {"loss_curves": [curve_to_ints(c) for c in curves],
           "bound_bits_per_sample": float(sum(c.mean() for c in curves)),
           "bound_bits_stage": [float(c.mean()) for c in curves], "val_segments": cfg.val_segments,
           "segment": cfg.segment, "kind": cfg.kind}
    (CACHE / "runs" / cfg.run / "curves.json").write_text(json.dumps(out) + "\n")
    return out


def run_model(run: str, exact: bool | None = None, weights: str = "ema") -> AudioModel:
    """An AudioModel from a run's checkpoint and curves.json: int-exact if the run used --qat (or if
    exact=True: then a float run is calibrated on its validation segments, without fine-tuning)."""
    net, ck = run_net(run, weights)
    cfg = AudioNetConfig.from_dict(ck["net_config"])
    curves = json.loads((CACHE / "runs" / run / "curves.json").read_text())["loss_curves"]
    curves = tuple(tuple(int(v) for v in c) for c in curves)
    if exact is None:
        exact = isinstance(net, QuantAudioNet)
    if not exact:
        return AudioModel(cfg, curves, net=net.net if isinstance(net, QuantAudioNet) else net, id=run)
    if not isinstance(net, QuantAudioNet):
        tc = TrainConfig(**ck["train_config"])
        sampler = make_sampler(CACHE / "data" / "audio_val.npz", tc.kind, tc.segment, 0)
        net = QuantAudioNet(net, calibrate(net, calibration_inputs(sampler, cfg)))
    return AudioModel(cfg, curves, exact=ExactAudioNet(cfg, export_int(net)), id=run)


def derive(cfg: TrainConfig, source: str, net_cfg: AudioNetConfig) -> None:
    """A new run (cfg.run) from `source` (a run's name or a shipped model file) with net_cfg's order,
    coefs and max_taps, nothing trained: its checkpoint, and its log (the source's, or the model's
    training log in models/logs/, plus a line that records the change)."""
    run_dir = CACHE / "runs" / cfg.run
    if (run_dir / "ckpt.pt").exists():
        raise SystemExit(f"{run_dir / 'ckpt.pt'} exists: --derive starts a new run")
    path = Path(source)
    if path.suffix == ".pt":
        blob = torch.load(path)
        old = AudioNetConfig.from_dict(blob["net_config"])
        weights = dequantised(blob["exact"], old)
        ck = {"net": weights, "ema": weights, "scales": blob["exact"]["scales"], "state": {"step": 0, "segments": 0, "seconds": 0.0}}
        log = path.parent / "logs" / f"{path.stem}.jsonl"
    else:
        ck = torch.load(CACHE / "runs" / source / "ckpt.pt")
        old = AudioNetConfig.from_dict(ck["net_config"])
        log = CACHE / "runs" / source / "log.jsonl"
    new = AudioNetConfig.from_dict({**old.to_dict(), "order": net_cfg.order, "coefs": net_cfg.coefs,
                                    "max_taps": net_cfg.max_taps})
    lines = log.read_text().splitlines()
    changes = {k: v for k, v in new.to_dict().items() if v != old.to_dict()[k]}
    last = json.loads(lines[-1])
    lines.append(json.dumps({**{k: last[k] for k in ("step", "segments", "samples", "hours")},
                             "phase": "derived", "from": source, "net_config_changes": changes}))
    run_dir.mkdir(parents=True, exist_ok=True)
    save_atomic({**ck, "net_config": new.to_dict(), "train_config": asdict(cfg)}, run_dir / "ckpt.pt")
    (run_dir / "log.jsonl").write_text("\n".join(lines) + "\n")
    print(f"{cfg.run}: {source} with {changes}, no training")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    config_arguments(ap, TrainConfig())
    ap.add_argument("--widths", type=str, default="32,64,96,128", help="channels per U-Net level (full rate, 1/2, ...)")
    ap.add_argument("--blocks", type=str, default="1,1,2,2", help="residual blocks per level")
    ap.add_argument("--kernel", type=int, default=5, help="convolution kernel length")
    ap.add_argument("--mixtures", type=int, default=4, help="logistic mixture components per variable")
    ap.add_argument("--neighbours", type=int, default=2, help="nearest known samples per side as exact features")
    ap.add_argument("--order", choices=["uniform", *DYADIC_FAMILIES], default="dyadic", help="order family of the stages")
    ap.add_argument("--prior", action="store_true", help="the head corrects an exact interpolation prior")
    ap.add_argument("--interp", action="store_true",
                    help="the prior's mean from filters fitted to each segment and stored (interp.py; needs --prior)")
    ap.add_argument("--coefs", choices=["bytes", "sizes", "symmetric"], default="bytes",
                    help="how the codec stores the fitted filters' coefficients (--interp; training is the same)")
    ap.add_argument("--max-taps", type=int, choices=[16, 64], default=16,
                    help="the most taps per side of a fitted filter (64: needs --coefs sizes or symmetric)")
    ap.add_argument("--joint", action="store_true",
                    help="one stage over whole 16-bit values, the two bytes only split its code (needs --prior)")
    ap.add_argument("--curves", action="store_true", help="measure the run's loss curves instead of training")
    ap.add_argument("--weights", choices=["ema", "net"], default="ema", help="--curves: which weights")
    ap.add_argument("--derive", metavar="RUN_OR_MODEL_FILE", default=None,
                    help="start this run from another run or a shipped model with this command line's --order, "
                         "--coefs and --max-taps, without training (module docstring)")
    a = vars(ap.parse_args())
    net_cfg = AudioNetConfig(widths=tuple(int(v) for v in a.pop("widths").split(",")),
                             blocks=tuple(int(v) for v in a.pop("blocks").split(",")),
                             kernel=a.pop("kernel"), mixtures=a.pop("mixtures"), neighbours=a.pop("neighbours"),
                             order=a.pop("order"), prior=a.pop("prior"), interp=a.pop("interp"), joint=a.pop("joint"),
                             coefs=a.pop("coefs"), max_taps=a.pop("max_taps"))
    curves, weights, source = a.pop("curves"), a.pop("weights"), a.pop("derive")
    cfg = TrainConfig(**a)
    if source:
        derive(cfg, source, net_cfg)
    elif curves:
        print(json.dumps({k: v for k, v in measure_curves(cfg, weights).items() if k != "loss_curves"}))
    else:
        train(cfg, net_cfg)


if __name__ == "__main__":
    main()
