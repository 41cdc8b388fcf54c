"""Audio models on validation clips, as files: the measurement that decides which audio model ships.

    python benchmarks/audio_validation.py --models aud3,run:aud4q --out benchmarks/results/aud4/validation.json

The validation split of the training audio (`python -m ardmzip.data audio`, data/splits/audio_val.txt:
whole sources, never trained on), not the evaluation clips. Per kind (speech, music), clips are taken in
the order of SHA-256("SEED:name"); a clip longer than --frames is cut to an excerpt of that many frames
that starts at a frame drawn from the same hash; clips are added until --samples samples (frames ×
channels) per kind. Each model codes every excerpt whole (audio_codec.compress_samples: the payload of
an .ardm file, side information, scale offsets and the channel transform included; the header is the
same for every model and left out) at its default budget or --budget, and every --check-th excerpt is
decoded back and compared. Bits per sample = 32·payload words / samples. FLAC (soundfile,
compression_level 1.0, whole file) codes the same excerpts beside them. A model is a shipped id or
run:NAME, an audio_train run's checkpoint (int-exact if it was trained with --qat).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ardmzip import audio_codec, registry  # noqa: E402
from ardmzip.data import CACHE, load_clips  # noqa: E402

SEED = 20261201


def excerpts(kind: str, samples: int, frames: int) -> list[tuple[str, int, np.ndarray]]:
    """(name, first frame, (frames, channels) int16) validation excerpts of one kind (module docstring)."""
    clips = load_clips(CACHE / "data" / "audio_val.npz", kind)
    key = {c.name: hashlib.sha256(f"{SEED}:{c.name}".encode()).digest() for c in clips}
    out, total = [], 0
    for c in sorted(clips, key=lambda c: key[c.name]):
        n = len(c.samples)
        start = int.from_bytes(key[c.name][:8], "big") % (n - frames + 1) if n > frames else 0
        a = np.ascontiguousarray(c.samples[start:start + frames])
        out.append((c.name, start, a))
        total += a.size
        if total >= samples:
            break
    return out


def load_model(spec: str):
    """A shipped id or run:NAME, then optional suffixes (the net unchanged: what a new id with that
    config would ship): +tapsN codes with fitted filters of up to N taps per side, +split (+split2,
    +split3) in the dyadic-split (…2, …3) order (ardm.py), +sym with symmetric filters (coefs "symmetric")."""
    spec, *mods = spec.split("+")
    if spec.startswith("run:"):
        from ardmzip.audio_train import run_model
        m = run_model(spec[4:])
    else:
        m = registry.load_model(spec)
    for mod in mods:
        if mod.startswith("taps"):
            m = dataclasses.replace(m, cfg=dataclasses.replace(m.cfg, max_taps=int(mod[4:])))
        elif mod in ("split", "split2", "split3"):
            m = dataclasses.replace(m, cfg=dataclasses.replace(m.cfg, order="dyadic-" + mod))
        elif mod == "sym":
            m = dataclasses.replace(m, cfg=dataclasses.replace(m.cfg, coefs="symmetric"))
        else:
            raise SystemExit(f"{spec}+{mod}: unknown suffix (+tapsN, +split, +split2, +split3, +sym)")
    return m


def flac_bits(a: np.ndarray) -> int:
    buf = io.BytesIO()
    sf.write(buf, a, 16000, format="FLAC", subtype="PCM_16", compression_level=1.0)
    return 8 * len(buf.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", required=True, help="comma-separated shipped ids or run:NAME, each optionally +tapsN, +split (+split2, +split3), +sym")
    ap.add_argument("--samples", type=int, default=300_000, help="samples per kind")
    ap.add_argument("--frames", type=int, default=1 << 14, help="frames per excerpt at most")
    ap.add_argument("--budget", type=int, default=None, help="network calls per stage (default: each model's)")
    ap.add_argument("--check", type=int, default=4, help="decode every N-th excerpt and compare")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    specs = a.models.split(",")
    models = {s: load_model(s) for s in specs}
    result = {"command": " ".join(sys.argv), "seed": SEED, "kinds": {}}
    for kind in ("speech", "music"):
        items = excerpts(kind, a.samples, a.frames)
        n = sum(x.size for _, _, x in items)
        row = {"items": len(items), "samples": n, "flac": sum(flac_bits(x) for _, _, x in items) / n}
        for s, m in models.items():
            budget = a.budget or m.default_budget
            bits, seconds, checked = 0, 0.0, 0
            for i, (name, start, x) in enumerate(items):
                t = time.time()
                words, _ = audio_codec.compress_samples(m, x, 16, budget, offsets=m.exact is not None,
                                                        channel_transform=x.shape[1] > 1)
                seconds += time.time() - t
                bits += 32 * len(words)
                if i % a.check == 0:
                    back = audio_codec.decompress_samples(m, words, len(x), x.shape[1], 16, budget,
                                                          offsets=m.exact is not None,
                                                          channel_transform=x.shape[1] > 1)
                    if not np.array_equal(back, x):
                        raise SystemExit(f"{s}: {name}[{start}:] did not decode to the original samples")
                    checked += 1
            row[s] = {"bits_per_sample": bits / n, "budget": budget, "encode_seconds": round(seconds, 1),
                      "decoded_and_compared": checked}
            print(f"{kind}: {s} {bits / n:.4f} bits/sample at budget {budget} ({len(items)} excerpts, "
                  f"{n} samples; FLAC {row['flac']:.4f}; {checked} decoded, equal)", flush=True)
        result["kinds"][kind] = row
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
