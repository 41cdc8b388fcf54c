"""Network definitions: a small fully-convolutional U-Net that maps (masked image, mask, step) to the
parameters of a discretised logistic mixture per subpixel. No I/O, no coder, no ARDM logic.

Designed for CPU throughput and later integer-exact inference: 3×3 convolutions, stride-2 downsampling,
nearest upsampling, ReLU, no normalisation layers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .prior import LOGS_MAX, add_prior, prior

NORMCONV_SCALES = (2, 4, 8, 16)  # context pooled from the known pixels at these block sizes
PAD_MULTIPLE = 16                # inputs are padded (as "unknown") to a multiple of this
DIGIT = 16                       # values per digit of a depth-upscaling net (cfg.stages = 2; ardm.py)


@dataclass
class NetConfig:
    channels: int = 3                       # subpixels per pixel the net sees (L images are replicated)
    widths: tuple[int, ...] = (48, 96, 128)  # full, 1/2 and 1/4 resolution
    blocks: tuple[int, ...] = (1, 2, 3)      # residual blocks per level
    mixtures: int = 6                       # logistic mixture components per subpixel
    order: str = "uniform"                  # order family: "uniform", "quincunx" or "quincunx-grb" (ardm.py)
    prior: int = 0                          # the head corrects an exact neighbour prediction: prior.py's version (0: none)
    stages: int = 1                         # 1: one 256-way stage; 2: depth upscaling, two base-16 digits (ardm.py)

    @property
    def in_features(self) -> int:
        # value + mask per channel, the revealed fraction, and per scale: known-mean + density per channel;
        # with the prior: its mean and log-scale per channel
        # with depth upscaling: the stage
        return (2 * self.channels + 1 + 2 * self.channels * len(NORMCONV_SCALES) + 2 * self.channels * (self.prior > 0)
                + (self.stages > 1))

    @property
    def logs_max(self) -> int:
        """The largest log-scale of the int-exact head (exact.LOGS_MAX)."""
        return LOGS_MAX

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NetConfig":
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**{**d, "prior": int(d.get("prior", 0))})  # img6's config says prior: true (version 1)


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


def normconv_features(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Mean of the known subpixels and their density in blocks of each scale, upsampled back.

    x, m: (B, C, H, W) with H, W multiples of the largest scale. Returns (B, 2·C·len(scales), H, W).
    """
    feats = []
    for s in NORMCONV_SCALES:
        num = F.avg_pool2d(x * m, s)
        den = F.avg_pool2d(m, s)
        mean = num / (den + 1e-3)
        feats += [F.interpolate(mean, scale_factor=s), F.interpolate(den, scale_factor=s)]
    return torch.cat(feats, 1)


class ARDMNet(nn.Module):
    """(x, m, frac) -> mixture parameters.

    x: (B, C, H, W) subpixels scaled to [-1, 1] and multiplied by the mask (unknown = 0, mid-grey);
    m: (B, C, H, W) 1 where known; frac: (B,) revealed fraction t/D.
    Returns (B, C, 3·K, H, W): K logit weights, K means, K log-scales per subpixel (with cfg.prior: the
    prior's mean and log-scale added to the net's corrections).
    """

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.widths
        self.stem = nn.Conv2d(cfg.in_features, w[0], 3, padding=1)
        self.down = nn.ModuleList(nn.Conv2d(w[i], w[i + 1], 3, stride=2, padding=1) for i in range(len(w) - 1))
        # each level but the lowest spends half its blocks before downsampling and half after upsampling
        self.enc = nn.ModuleList(nn.Sequential(*[ResBlock(wi) for _ in range(n // 2 if i < len(w) - 1 else n)])
                                 for i, (wi, n) in enumerate(zip(w, cfg.blocks)))
        self.up = nn.ModuleList(nn.Conv2d(w[i + 1], w[i], 1) for i in range(len(w) - 1))
        self.dec = nn.ModuleList(nn.Sequential(*[ResBlock(w[i]) for _ in range(n - n // 2)])
                                 for i, n in enumerate(cfg.blocks[:-1]))
        self.head = nn.Conv2d(w[0], cfg.channels * 3 * cfg.mixtures, 1)

    @staticmethod
    def upsample(u: torch.Tensor) -> torch.Tensor:
        """The decoder's ×2 upsampling (nearest neighbour), shared with exact.walk's arithmetics."""
        return F.interpolate(u, scale_factor=2)

    def forward(self, x: torch.Tensor, m: torch.Tensor, frac: torch.Tensor, stage: torch.Tensor | None = None
                ) -> torch.Tensor:
        """stage: (B,) 1 or 2, for a depth-upscaling net (cfg.stages = 2; ardm.training_loss says what x
        and m hold in each stage)."""
        B, C, H, W = x.shape
        ph, pw = (-H) % PAD_MULTIPLE, (-W) % PAD_MULTIPLE
        if ph or pw:  # padding counts as unknown
            x, m = F.pad(x, (0, pw, 0, ph)), F.pad(m, (0, pw, 0, ph))
        f = frac.view(B, 1, 1, 1).expand(B, 1, x.shape[2], x.shape[3])
        feats = [x, m, f, normconv_features(x, m)]
        if self.cfg.stages > 1:
            feats.append((stage - 1).to(x.dtype).view(B, 1, 1, 1).expand_as(f))
        if self.cfg.prior:
            v = torch.round((x + 1.0) * 127.5)
            if self.cfg.stages > 1:  # stage 1 knows bins: the prior sees their centres 16·(v // 16) + 8, as int_inputs
                v = torch.where((stage == 1).view(B, 1, 1, 1), v - v.remainder(DIGIT) + DIGIT // 2, v)
            mean16, logs, rows = prior(v * m, m, self.cfg.prior)
            feats.append(rows.to(x.dtype) / 255)
        h = self.stem(torch.cat(feats, 1))
        skips = []
        for i, enc in enumerate(self.enc):
            h = enc(h)
            if i < len(self.down):
                skips.append(h)
                h = self.down[i](F.relu(h))
        for i in reversed(range(len(self.dec))):
            h = skips[i] + self.upsample(self.up[i](F.relu(h)))
            h = self.dec[i](h)
        out = self.head(F.relu(h)).reshape(B, C, 3 * self.cfg.mixtures, *h.shape[2:])
        if self.cfg.prior:
            out = add_prior(out, mean16, logs, self.cfg.mixtures)
        return out[..., :H, :W]

