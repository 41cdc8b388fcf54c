"""The only module that imports constriction: an ANS stack over categorical distributions.

A codec here is a pair of inverse operations on a stack (craystack style): `push` a step's symbols
with their distributions, `pop` them back in reverse order. The traps of constriction 0.5 are handled
once, here: probabilities must be C-contiguous float64 (float32 or Fortran order silently give other
streams), symbols int32, `perfect=False` explicit, and a stream's emptiness checked after decoding.
"""
from __future__ import annotations

import constriction
import numpy as np

from .errors import CorruptError

_FAMILY = constriction.stream.model.Categorical(perfect=False)


def _probs(p: np.ndarray) -> np.ndarray:
    p = np.ascontiguousarray(p, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be (n, K), got shape {p.shape}")
    return p


class Encoder:
    """Push steps last to first; `words()` gives the compressed uint32 stream."""

    def __init__(self) -> None:
        self._ans = constriction.stream.stack.AnsCoder()

    def push(self, symbols: np.ndarray, probs: np.ndarray) -> None:
        """symbols: (n,) ints in [0, K); probs: (n, K) distributions, one row per symbol."""
        if len(symbols):
            self._ans.encode_reverse(np.ascontiguousarray(symbols, dtype=np.int32), _FAMILY, _probs(probs))

    def words(self) -> np.ndarray:
        return np.asarray(self._ans.get_compressed(), dtype=np.uint32)


class Decoder:
    """Pop steps first to last from a uint32 stream; `finish()` checks that nothing is left over."""

    def __init__(self, words: np.ndarray) -> None:
        try:
            self._ans = constriction.stream.stack.AnsCoder(np.ascontiguousarray(words, dtype=np.uint32))
        except ValueError as e:
            raise CorruptError(f"file is corrupt: the payload is not a valid ANS stream ({e})") from None

    def pop(self, probs: np.ndarray) -> np.ndarray:
        """probs: (n, K). Returns (n,) int64 symbols."""
        if len(probs) == 0:
            return np.zeros(0, dtype=np.int64)
        try:
            return np.asarray(self._ans.decode(_FAMILY, _probs(probs)), dtype=np.int64)
        except ValueError as e:  # constriction refuses a stream that no encoder wrote
            raise CorruptError(f"file is corrupt: the payload is not a valid ANS stream ({e})") from None

    def finish(self) -> None:
        if not self._ans.is_empty():
            raise CorruptError("payload has data left over after the last step: the file is corrupt "
                               "or was written by a different model")
