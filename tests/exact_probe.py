"""Run by tests/test_exact.py in subprocesses with different CPU settings (instruction set, threads).

    python tests/exact_probe.py probe MODEL THREADS          -> sha256 of the head outputs of a fixed input
    python tests/exact_probe.py compress MODEL THREADS IN.npy OUT.ardm
    python tests/exact_probe.py decompress MODEL THREADS IN.ardm EXPECTED.npy   (prints equal / DIFFERENT)

Image models code an (H, W, C) uint8 array; audio models a clip's samples: IN.npy holds (frames, channels)
int16, coded as a 16 kHz WAV file.
"""
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

from ardmzip import api
from ardmzip.registry import load_model


def probe(model_id: str) -> str:
    m = load_model(model_id)
    return probe_audio(m) if m.media == "audio" else probe_image(m)


def probe_audio(m) -> str:
    """The audio net's head outputs on fixed stage-1 and stage-2 states of 3 rows (2 channels + 1), as a hash."""
    from ardmzip.audio_model import features, segment_side
    g = torch.Generator().manual_seed(7)
    hi, lo = torch.randint(0, 256, (2, 1, 2, 4096), generator=g)
    known = torch.rand(1, 2, 4096, generator=g) < 0.4
    side = segment_side(256 * hi + lo, m.cfg) if m.cfg.interp else None  # the stored filters and scales
    outs = []
    for stage, mh, ml in ((1, known, torch.zeros_like(known)), (2, torch.ones_like(known), known)):
        inp = features(hi, mh, lo, ml, torch.tensor([102]), torch.tensor([stage]), m.cfg, side)
        outs.append(m.params(inp).to(torch.int64) if m.exact is not None else m.params(inp))
    return hashlib.sha256(b"".join(o.contiguous().numpy().tobytes() for o in outs)).hexdigest()


def probe_image(m) -> str:
    """Head outputs of the model on a fixed 64×64 state, as a hash: the float net's raw outputs, or the
    exact net's integers (a batch of 3, to also vary the batch composition)."""
    g = torch.Generator().manual_seed(7)
    v = torch.randint(0, 256, (3, 3, 64, 64), generator=g).float()
    known = (torch.rand(3, 3, 64, 64, generator=g) < 0.4).float()
    with torch.inference_mode():
        if m.exact is not None:
            out = m.exact(v, known, torch.tensor([102.0, 102.0, 102.0])).to(torch.int64)
        else:
            out = m.net((v / 127.5 - 1) * known, known, torch.full((3,), 0.4))
    return hashlib.sha256(out.contiguous().numpy().tobytes()).hexdigest()


def main() -> int:
    mode, model_id, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(threads)
    if mode == "probe":
        print(probe(model_id))
    elif mode == "compress":
        a = np.load(sys.argv[4])
        data = a if a.dtype == np.uint8 else api.audio.write_audio(api.audio.audio_from_array(a, 16000))
        Path(sys.argv[5]).write_bytes(api.compress(data, model=model_id, fallback=False))
    elif mode == "decompress":
        same = np.array_equal(api.decompress_array(Path(sys.argv[4]).read_bytes()), np.load(sys.argv[5]))
        print("equal" if same else "DIFFERENT")
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
