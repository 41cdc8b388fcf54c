"""Write golden .ardm files for a released model (run once per new model id; never rewrite old ones).

    python tests/make_golden.py MODEL_ID
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ardmzip import api, container

HERE = Path(__file__).parent
GOLDEN = HERE / "data" / "golden"


def main(model_id: str) -> None:
    photo = np.asarray(Image.open(HERE / "data" / "crop64.png").convert("RGB"))
    grey = np.asarray(Image.fromarray(photo[20:36, 8:24]).convert("L"))
    for kind, a in (("rgb", photo[5:29, 11:31]), ("grey", grey)):
        stem = GOLDEN / f"{model_id}-v{container.VERSION}-{kind}"
        if stem.with_suffix(".ardm").exists():
            raise SystemExit(f"{stem}.ardm exists: golden files are never rewritten")
        blob = api.compress(a, model=model_id, fallback=False)
        assert np.array_equal(api.decompress_array(blob), a)
        np.save(stem.with_suffix(".npy"), a)
        stem.with_suffix(".ardm").write_bytes(blob)
        print(f"wrote {stem}.ardm ({len(blob)} bytes)")


if __name__ == "__main__":
    main(sys.argv[1])
