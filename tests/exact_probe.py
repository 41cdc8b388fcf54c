"""Run by tests/test_exact.py in subprocesses with different CPU settings (instruction set, threads).

    python tests/exact_probe.py probe MODEL THREADS          -> sha256 of the head outputs of a fixed input
    python tests/exact_probe.py compress MODEL THREADS IN.npy OUT.ardm
    python tests/exact_probe.py decompress MODEL THREADS IN.ardm EXPECTED.npy   (exit 0 iff equal)
"""
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

from ardmzip import api
from ardmzip.registry import load_model


def probe(model_id: str) -> str:
    """Head outputs of the model on a fixed 64×64 state, as a hash: the float net's raw outputs, or the
    exact net's integers (a batch of 3, to also vary the batch composition)."""
    m = load_model(model_id)
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
        Path(sys.argv[5]).write_bytes(api.compress(np.load(sys.argv[4]), model=model_id, fallback=False))
    elif mode == "decompress":
        same = np.array_equal(api.decompress_array(Path(sys.argv[4]).read_bytes()), np.load(sys.argv[5]))
        print("equal" if same else "DIFFERENT")
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
