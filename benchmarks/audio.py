"""The audio benchmark (issue 6): ardmzip's audio model against FLAC and WavPack on the evaluation clips.

    python benchmarks/audio.py                                  # the full run (~30-45 min, see below)
    python benchmarks/audio.py --quick --out /tmp/abench        # smoke test (< 1 min): budgets 1 and 10
    python benchmarks/audio.py --sets codec2 --budgets 10,default   # a part of it
    python benchmarks/audio.py --clips a.wav b.flac             # given files, whole
    python benchmarks/audio.py --roundtrip-all                  # every evaluation clip, whole, default budget
    python benchmarks/audio.py --roundtrip-all --sets hydrogen --shard 0/2   # half of a set (run 1/2 beside it),
    python benchmarks/audio.py --roundtrip-all --cached-only --out benchmarks/results/audio   # then put together
    python benchmarks/audio.py --roundtrip-all --restore benchmarks/results/audio/roundtrip.json  # a new machine

Evaluation clips: ~/.cache/ardmzip/data/audio_eval/ (`python -m ardmzip.data audio`; DATA.md; never trained
on), four sets: codec2 (speech, 8 kHz and one 16 kHz clip), ktuberling (French words, speech, 8-44.1 kHz),
hydrogen (drum hits, music, 44.1/48 kHz, 8/16/24-bit, mono and stereo) and moh (music, 8 kHz), 114 M
samples in all: far more than the network can code at several budgets, so each set is measured on a
deterministic subset of at most --samples-per-set samples (frames x channels; default 64 000):
  1. codec2/wia_16kHz.wav (1.0 s of 16 kHz mono speech) always, whole: it gives the seconds per second of
     16 kHz mono audio;
  2. the other clips are grouped by (bits, channels); every group gets one item, and the items that are
     left go to the groups in proportion to their share of the set's samples (largest remainder first);
  3. within a group, clips are taken in the order of SHA-256("SEED:name") (--seed), and a clip longer than
     --item-samples (default 16 000) is cut to an excerpt of that many samples that starts at a frame
     drawn from the same hash; item length = min(--item-samples, samples left // groups).
So with the defaults: codec2 = wia + 3 other clips or 2 s excerpts, ktuberling 4 words (excerpts of up to
16 000 samples; 8, 22 and 44.1 kHz), hydrogen 5 items of up to 12 800 samples, one of each of 8-bit mono,
16-bit mono and stereo (44.1 kHz), 24-bit mono and stereo (48 kHz), moh 4 excerpts of 2 s: 17 items,
233 k samples, 18 s of audio, 8-, 16- and 24-bit, mono and stereo, 8 to 48 kHz. The chosen items (clip,
first frame, frames, SHA-256 of the samples) are in results.json ("subset") and results.md. Every codec
codes the same sample arrays: ardmzip through api.compress_audio on audio.audio_from_array(samples, rate)
(a WAV's meta), the classical codecs on the WAV file of the same samples.

For every item and budget, ardmzip's own code (api.compress_audio(fallback=False): the model-coded .ardm
file, whole, header included; `ardmzip compress` would store a clip raw or deflated where that is smaller),
bits per sample = 8·bytes / samples, the bits the step schedule predicts (for 8- and 16-bit clips: the
24-bit low byte is coded by an adaptive count model that the schedule does not predict), the model's ideal
code length (Report.model_bits), network calls, encode and decode seconds, and whether decoding gave back
exactly the original samples (a mismatch or an error is recorded, printed, listed in results.md and makes
the script exit with status 1). Budget B = network calls per net-coded stage (2 for 16- and 24-bit, 1 for
8-bit) per segment of 2^15 frames. Classical codecs on the same samples, whole files, each decoded back
and compared: FLAC via the Debian `flac` binary at its strongest preset (`flac -8 --no-padding`: without
--no-padding flac reserves 8 KiB for tags, more than a 1 s clip's audio), WavPack `-hh` (`wavpack`,
decoded with `wvunpack`) and FLAC through soundfile (libsndfile, compression_level=1.0; always there).
A binary that is not installed makes its codec "unavailable" (recorded), not a failure.

Budgets: 10, the model's default, 50, 100, 200 (--quick: 1, 10). Results are cached per (model SHA-256,
.ardm format version, set, item + its samples' hash, budget) under benchmarks/cache/audio/, so an
interrupted run resumes; failures are never cached. Delete that folder (or pass --no-cache) after changing
the codec without changing the model or the format version. The cache does not outlive the machine; the
committed results.json and roundtrip.json do: --restore FILE puts their exact ardmzip results (same model,
each row's format version still the codec's) back into the cache, so a new machine measures only what is
missing and a round-trip run of many sessions adds up.

Outputs in --out (default: benchmarks/results/audio/ for a run of the default sets, budgets and subset, a
temporary folder for --quick and partial runs): results.json, results.csv (per item, per set and per kind
as Σ bits / Σ samples, with the environment), bps_vs_calls.png, seconds_vs_budget.png and results.md
(bits per sample per set and kind next to FLAC and WavPack, ardmzip(default)/FLAC, the seconds per second
of 16 kHz mono audio, the schedule check: predicted vs actual, gaps over 3 % flagged, and the subset).
results.md goes into README.md between the audio-results markers when --out is benchmarks/results/audio
and the run is not --quick or --clips. --roundtrip-all writes roundtrip.json and roundtrip.md instead.

Run time, one torch thread (--threads 1, the default), on the 2-core Intel Xeon VM this was written on with
BOTH cores busy (a training and another benchmark; load average 3.5-6), model aud-dev (0.69 M parameters,
a smoke model; the time per call does not depend on training). Per sample and direction (encode or decode)
of 16-bit audio ≈ 20-27 µs (the distributions, ~13 µs per sample and stage) + 5-8 µs per network call
(B calls per stage, 2 stages), whatever the sample rate, channels or clip length (a call runs the net over
the whole segment):
  codec2/wia_16kHz.wav (1 s of 16 kHz mono), seconds per second of audio, measured: B=1 0.4-0.6 s each way,
                           B=10 2.5-3.3 s, B=30 6.5 s, B=50 13.6 s; ESTIMATE B=100 ~27 s, B=200 ~55 s.
  --sets codec2 --budgets 10,50 (5 items, 74 k samples): measured 141 s (B=10: 26 s, B=50: 117 s).
  --quick                  measured: 14 s with the evaluation data (wia + 5 small hydrogen items, 24 k
                           samples), 10 s on the synthesised clips; ~4 s of it are imports and warm-up.
  full run (17 items, 233 k samples, budgets 10, default, 50, 100, 200): ESTIMATE ≈ 233 k x (5 x 40 µs +
                           (20-31 µs) x (360 + default budget)) ≈ 30-45 min; a rerun with everything cached
                           takes seconds. FLAC and WavPack take under a second in all.
  --roundtrip-all          ESTIMATE ≈ 114 M samples x 2 x (20 + (10-15 µs)·B): ~2 h at B=1, 8-11 h at B=10,
                           14-21 h at B=20 (hydrogen is 82 % of it; cached per clip, so it can run in pieces
                           with --sets and resume).
The estimates come from the measured timings above, not from a full run.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.util
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))  # benchmark the checkout this script lives in, installed or not

from ardmzip import api, audio, audio_codec  # noqa: E402
from ardmzip.audio_model import AudioModel  # noqa: E402
from ardmzip.container import FLAG_CHANNELS, FLAG_LOW, FLAG_OFFSETS, version_for  # noqa: E402
from ardmzip.data import CACHE  # noqa: E402
from ardmzip.registry import default_model_id, load_model  # noqa: E402


def _run_module():
    """benchmarks/run.py (the image benchmark) as a module: its caching, summaries and output helpers."""
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = mod
    spec.loader.exec_module(mod)
    return mod


run = _run_module()
_log, _fmt, _table = run._log, run._fmt, run._table


def format_version(channels: int, depth: int) -> int:
    """The cache key of an ardmzip result: the format version the codec writes a clip of `channels` and
    `depth` bits as (version 3's channel transform changed multi-channel files only, version 4's low-byte
    models 24-bit ones only)."""
    return version_for(FLAG_OFFSETS | (FLAG_CHANNELS if channels > 1 else 0) | (FLAG_LOW if depth == 24 else 0))


EVAL_DIR = CACHE / "data" / "audio_eval"
SETS = ("codec2", "ktuberling", "hydrogen", "moh")
REQUIRED = ("codec2/wia_16kHz.wav",)      # always measured, whole: the 16 kHz mono speech clip
BUDGETS = ("10", "default", "50", "100", "200")
QUICK_BUDGETS = ("1", "10")
SAMPLES_PER_SET, ITEM_SAMPLES, SEED = 64_000, 16_000, 20240611
QUICK_SETS, QUICK_SAMPLES_PER_SET, QUICK_ITEM_SAMPLES = ("codec2", "hydrogen"), 8_000, 2_000
SPEECH_TARGET, MUSIC_TARGET = 0.85, 1.0   # issue 6: ardmzip(default) / FLAC on speech ≤ 0.85, music < 1
RESULTS = BENCH / "results" / "audio"
README_BEGIN = "<!-- audio-results:begin (written by benchmarks/audio.py) -->"
README_END = "<!-- audio-results:end -->"


# ------------------------------------------------------------------------------------------ evaluation data

@dataclass
class Item:
    """One thing to compress: a whole clip or an excerpt of one. samples: (frames, channels) int8 / int16 /
    int32 (8-, 16-, 24-bit values, as ardmzip.audio holds them)."""
    dataset: str       # the set: codec2, ktuberling, hydrogen, moh; synthetic; clips
    kind: str          # speech | music | other
    clip: str          # the file (relative to the evaluation folder)
    start: int         # first frame of the excerpt
    clip_frames: int
    samples: np.ndarray
    rate: int

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def depth(self) -> int:
        """Bits per sample: 8, 16 or 24."""
        return {1: 8, 2: 16, 4: 24}[self.samples.dtype.itemsize]

    @property
    def dims(self) -> int:
        return int(self.samples.size)

    @property
    def seconds(self) -> float:
        return self.frames / self.rate

    @property
    def name(self) -> str:
        whole = self.start == 0 and self.frames == self.clip_frames
        return self.clip if whole else f"{self.clip}[{self.start}:{self.start + self.frames}]"

    @property
    def digest(self) -> str:
        """SHA-256 of rate, shape, dtype and samples: identifies exactly what is coded."""
        head = f"{self.rate} {self.samples.shape} {self.samples.dtype}".encode()
        return hashlib.sha256(head + np.ascontiguousarray(self.samples).tobytes()).hexdigest()

    def audio(self) -> audio.Audio:
        return audio.audio_from_array(self.samples, self.rate)

    def describe(self) -> dict:
        return {"dataset": self.dataset, "kind": self.kind, "item": self.name, "clip": self.clip,
                "start": self.start, "frames": self.frames, "clip_frames": self.clip_frames,
                "channels": self.channels, "rate": self.rate, "depth": self.depth,
                "seconds": round(self.seconds, 4), "dims": self.dims, "samples_sha256": self.digest}


def read_manifest(folder: Path) -> list[dict]:
    path = folder / "manifest.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: build the evaluation clips with `python -m ardmzip.data audio` "
                         "(DATA.md), pass --clips FILE..., or use --quick (synthesised clips)")
    return json.loads(path.read_text())


def read_clip(folder: Path, entry: dict) -> audio.Audio:
    """An evaluation clip, its bytes checked against the manifest's SHA-256."""
    data = (folder / entry["name"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise SystemExit(f"{folder / entry['name']}: SHA-256 differs from manifest.json: rebuild the "
                         "evaluation clips (`python -m ardmzip.data audio`)")
    return audio.read_audio(data, entry["name"])


def _rank(name: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "big")


def _group_counts(groups: dict[tuple, list[dict]], n_items: int) -> dict[tuple, int]:
    """Items per group: one each, the rest in proportion to the groups' samples (largest remainder first),
    never more than a group's clips."""
    samples = {g: sum(e["frames"] * e["channels"] for e in es) for g, es in groups.items()}
    total = sum(samples.values())
    counts = {g: 1 for g in groups}
    while sum(counts.values()) < n_items:
        open_ = [g for g in groups if counts[g] < len(groups[g])]
        if not open_:
            break
        g = max(open_, key=lambda g: (samples[g] / total * n_items - counts[g], g))
        counts[g] += 1
    return counts


def choose(entries: list[dict], samples_per_set: int, item_samples: int, seed: int) -> list[dict]:
    """One set's subset (see the docstring): [{"entry", "start", "frames"}], deterministic."""
    required = [e for e in entries if e["name"] in REQUIRED]
    chosen = [{"entry": e, "start": 0, "frames": e["frames"]} for e in required]
    left = samples_per_set - sum(e["frames"] * e["channels"] for e in required)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for e in sorted((e for e in entries if e["name"] not in REQUIRED), key=lambda e: _rank(e["name"], seed)):
        groups[(e["bits"], e["channels"])].append(e)
    if not groups or left < len(groups):
        return chosen
    length = min(item_samples, left // len(groups))
    for g, n in sorted(_group_counts(groups, max(len(groups), left // length)).items()):
        for e in groups[g][:n]:
            frames = min(e["frames"], max(1, length // e["channels"]))
            start = _rank(e["name"], seed) % (e["frames"] - frames + 1)
            chosen.append({"entry": e, "start": start, "frames": frames})
    return chosen


def eval_items(folder: Path, sets: list[str], samples_per_set: int, item_samples: int, seed: int) -> list[Item]:
    """The subset of every chosen set, in SETS order, read from the evaluation folder."""
    manifest, items = read_manifest(folder), []
    for ds in sets:
        entries = [e for e in manifest if e["set"] == ds]
        if not entries:
            raise SystemExit(f"{folder / 'manifest.json'} has no clips of set {ds!r}")
        for c in choose(entries, samples_per_set, item_samples, seed):
            e, clip = c["entry"], read_clip(folder, c["entry"])
            part = np.ascontiguousarray(clip.samples[c["start"]:c["start"] + c["frames"]])
            items.append(Item(ds, e["kind"], e["name"], c["start"], clip.frames, part, clip.samplerate))
    return items


def given_items(paths: list[Path]) -> list[Item]:
    """--clips: each file whole, set "clips"."""
    items = []
    for p in paths:
        clip = audio.read_audio(p.read_bytes(), str(p))
        items.append(Item("clips", "other", str(p), 0, clip.frames, clip.samples, clip.samplerate))
    return items


def synthetic_items(seed: int = SEED) -> list[Item]:
    """--quick without evaluation data: 0.5 s of speech-like 16 kHz mono 16-bit audio (harmonics of a
    gliding pitch under a syllable-rate envelope, a little noise) and 0.1 s of a drum-like 48 kHz stereo
    24-bit hit (a decaying noise burst and a low tone, the channels correlated)."""
    rng = np.random.default_rng(seed)
    t = np.arange(8000) / 16000
    phase = 2 * np.pi * np.cumsum(140 + 40 * np.sin(2 * np.pi * 1.5 * t)) / 16000
    voiced = sum(np.sin(k * phase) / k for k in range(1, 9))
    x = 6000 * np.sin(4 * np.pi * t) ** 2 * voiced + rng.normal(0, 30, t.size)
    speech = np.clip(np.round(x), -32768, 32767).astype(np.int16)[:, None]
    t = np.arange(4800) / 48000
    burst = rng.normal(0, 1, t.size) * np.exp(-t / 0.03)
    left = 1.2e6 * burst + 2e6 * np.sin(2 * np.pi * 90 * t) * np.exp(-t / 0.06)
    right = 0.8 * left + 2e5 * rng.normal(0, 1, t.size) * np.exp(-t / 0.03)
    hit = np.clip(np.round(np.stack([left, right], 1)), -(1 << 23), (1 << 23) - 1).astype(np.int32)
    return [Item("synthetic", "speech", "synthetic/speech-16k-mono-16bit", 0, len(speech), speech, 16000),
            Item("synthetic", "music", "synthetic/drum-48k-stereo-24bit", 0, len(hit), hit, 48000)]


# ------------------------------------------------------------------------------------------------ ardmzip

def resolve_budget(label: str, model: AudioModel) -> int:
    return model.default_budget if label == "default" else int(label)


def warm_up(model: AudioModel) -> None:
    """The first network calls of a process (and of a shape) are slow: make them before timing anything."""
    for shape, dtype in (((2048, 1), np.int16), ((1024, 2), np.int32)):
        api.compress_audio(audio.audio_from_array(np.zeros(shape, dtype), 16000), budget=2, model=model.id,
                           fallback=False)


def stage_segments(frames: int, depth: int, model: AudioModel) -> int:
    """Net-coded stages x segments of a clip: the network calls of budget 1 (the unit of "calls per stage")."""
    return len(audio_codec.segments(frames)) * audio_codec.net_stages(model, depth)


def measure_ardmzip(item: Item, budget: int, model: AudioModel) -> dict:
    """Compress and decompress one item through the public API (the model's code, no stored fallback):
    sizes, prediction, timings, exactness."""
    row = {**dict.fromkeys(run.ARDMZIP_FIELDS), "exact": False}
    try:
        t0 = time.perf_counter()
        blob, report = api.compress_audio(item.audio(), budget=budget, model=model.id, fallback=False)
        row.update(encode_s=time.perf_counter() - t0, bytes=len(blob), bits=8 * len(blob),
                   model_bits=report.model_bits, payload_bits=report.payload_bits, calls=report.steps,
                   stored_as=report.method, predicted_bits=report.predicted_bits if item.depth <= 16 else None)
        if report.file_bytes != len(blob) or report.dims != item.dims:
            raise AssertionError(f"Report says {report.file_bytes} bytes / {report.dims} samples, "
                                 f"the file has {len(blob)} bytes and the item {item.dims} samples")
        t0 = time.perf_counter()
        back = api.decompress_audio(blob).samples
        row["decode_s"] = time.perf_counter() - t0
        row["exact"] = back.dtype == item.samples.dtype and bool(np.array_equal(back, item.samples))
        if not row["exact"]:
            row["error"] = "decoded samples differ from the original"
    except Exception as e:  # recorded as a failure and reported; the run goes on with the next item
        row["error"] = f"{type(e).__name__}: {e}"
    return row


# ----------------------------------------------------------------------------------------- classical codecs

@dataclass(frozen=True)
class Classical:
    """A classical lossless audio codec: a WAV file of the samples -> its file; its file -> samples."""
    name: str
    label: str
    version: str                               # "not installed" when its program is missing
    settings: str
    encode: Callable[[bytes, Path], bytes]     # (WAV bytes, temp folder) -> file bytes
    decode: Callable[[bytes, Path], bytes]     # (file bytes, temp folder) -> audio file bytes

    @property
    def available(self) -> bool:
        return self.version != "not installed"


def _tool_version(program: str) -> str:
    """`program --version`'s first line ("flac 1.4.2"), or "not installed"."""
    if shutil.which(program) is None:
        return "not installed"
    out = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=30)
    return (out.stdout or out.stderr).strip().splitlines()[0]


def _through_files(command: list[str], suffix_in: str, suffix_out: str) -> Callable[[bytes, Path], bytes]:
    """data -> a program reading IN and writing OUT (temp files) -> OUT's bytes."""
    def code(data: bytes, tmp: Path) -> bytes:
        src, dst = tmp / f"in{suffix_in}", tmp / f"out{suffix_out}"
        src.write_bytes(data)
        dst.unlink(missing_ok=True)
        paths = {"IN": str(src), "OUT": str(dst)}
        subprocess.run([paths.get(c, c) for c in command], check=True, capture_output=True, timeout=600)
        return dst.read_bytes()
    return code


def _sf_flac(data: bytes, tmp: Path) -> bytes:
    """FLAC through soundfile (libsndfile) at compression_level 1.0 (its strongest)."""
    clip = audio.read_audio(data)
    raw = np.ascontiguousarray(clip.samples, dtype=np.int32) << (32 - clip.bits)
    buf = io.BytesIO()
    subtype = {8: "PCM_S8", 16: "PCM_16", 24: "PCM_24"}[clip.bits]
    soundfile.write(buf, raw, clip.samplerate, subtype=subtype, format="FLAC", compression_level=1.0)
    return buf.getvalue()


def classical_codecs() -> list[Classical]:
    """FLAC -8 (flac), WavPack -hh (wavpack / wvunpack), FLAC through soundfile; single-threaded."""
    flac, wavpack = _tool_version("flac"), _tool_version("wavpack")
    return [
        Classical("flac-8", "FLAC -8", flac, "flac -8 --no-padding (decoded with flac -d)",
                  _through_files(["flac", "-8", "--no-padding", "-s", "-f", "-o", "OUT", "IN"], ".wav", ".flac"),
                  _through_files(["flac", "-d", "-s", "-f", "-o", "OUT", "IN"], ".flac", ".wav")),
        Classical("wavpack-hh", "WavPack -hh", wavpack, "wavpack -hh (decoded with wvunpack)",
                  _through_files(["wavpack", "-hh", "-q", "-y", "IN", "-o", "OUT"], ".wav", ".wv"),
                  _through_files(["wvunpack", "-q", "-y", "IN", "-o", "OUT"], ".wv", ".wav")),
        Classical("flac-sf", "FLAC (soundfile)", f"libsndfile {soundfile.__libsndfile_version__}",
                  "soundfile.write(format='FLAC', compression_level=1.0)", _sf_flac, lambda b, tmp: b),
    ]


def measure_classical(item: Item, codec: Classical) -> dict:
    """Encode the item's WAV with one codec, decode it back and compare the samples; seconds include the
    programs' start and the temp files."""
    row = {"bytes": None, "bits": None, "encode_s": None, "decode_s": None, "exact": False, "error": None}
    try:
        wav = audio.write_audio(item.audio())
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            blob = codec.encode(wav, Path(tmp))
            t1 = time.perf_counter()
            back = audio.read_audio(codec.decode(blob, Path(tmp)), f"{codec.name} output").samples
            t2 = time.perf_counter()
        exact = back.dtype == item.samples.dtype and bool(np.array_equal(back, item.samples))
        row.update(bytes=len(blob), bits=8 * len(blob), encode_s=t1 - t0, decode_s=t2 - t1, exact=exact,
                   error=None if exact else "decoded samples differ from the original")
    except Exception as e:  # a CalledProcessError names the command
        row["error"] = f"{type(e).__name__}: {e}"
    return row


# ------------------------------------------------------------------------------------------------- the run

def _per_sample(bits: float | None, dims: int) -> float | None:
    return None if bits is None else bits / dims


def _progress(r: dict) -> None:
    what = f"ardmzip B={r['budget']}" if r["method"] == "ardmzip" else r["method"]
    status = "exact" if r["exact"] else f"FAILED ({r['error']})"
    bps = _fmt(r["bpd"])
    secs = " ".join(f"{k[:3]} {r[k]:.2f}s" for k in ("encode_s", "decode_s") if r.get(k) is not None)
    extra = f" pred {_fmt(r['predicted_bpd'])} calls {r['calls']}" if r["method"] == "ardmzip" and r["calls"] else ""
    _log(f"  {r['dataset']:10} {r['item']:38} {what:16} bps {bps:>6}{extra} {secs}"
         f"{' (cached)' if r['cached'] else ''} {status}")


def run_item(item: Item, budgets: list[str], model: AudioModel, codecs: list[Classical], cache: Path,
             cached_only: bool) -> list[dict]:
    """Every ardmzip budget and every available classical codec on one item: rows of results."""
    base = item.describe()
    key = run.item_key(item.name, item.digest)
    rows = []
    for label in budgets:
        budget = resolve_budget(label, model)
        path = run.ardmzip_path(cache, model, item.dataset, key, budget, format_version(item.channels, item.depth))
        if cached_only and not path.exists():
            continue
        r = run.cached(path, lambda: measure_ardmzip(item, budget, model))
        units = stage_segments(item.frames, item.depth, model)
        rows.append({**base, "method": "ardmzip", "budget": label, "budget_calls": budget,
                     "format_version": format_version(item.channels, item.depth), **r,
                     "stage_segments": units, "calls_per_stage": None if r["calls"] is None else r["calls"] / units,
                     "bpd": _per_sample(r["bits"], item.dims), "model_bpd": _per_sample(r["model_bits"], item.dims),
                     "predicted_bpd": _per_sample(r["predicted_bits"], item.dims),
                     "payload_bpd": _per_sample(r["payload_bits"], item.dims)})
        _progress(rows[-1])
    for codec in (c for c in codecs if c.available):
        folder = cache / "classical" / f"{codec.name}-{codec.version.replace(' ', '_')}" / item.dataset
        r = run.cached(folder / f"{key}.json", lambda: measure_classical(item, codec))
        rows.append({**base, "method": codec.name, "budget": "", "budget_calls": None, **r,
                     "bpd": _per_sample(r["bits"], item.dims)})
        _progress(rows[-1])
    return rows


# ------------------------------------------------------------------------------------------ restoring the cache

ROUNDTRIP_FIELDS = ("bytes", "bits", "calls", "encode_s", "decode_s", "exact", "error")


def roundtrip_path(cache: Path, model: AudioModel, entry: dict, budget: int) -> Path:
    """The cached round trip of one evaluation clip (a manifest entry: set, name, channels, sha256)."""
    version = format_version(entry["channels"], entry["bits"])
    return (cache / "roundtrip" / model.sha256[:16] / f"format-{version}" / entry["set"]
            / f"{run.item_key(entry['name'], entry['sha256'])}-b{budget}.json")


def restorable(results: dict, cache: Path, model: AudioModel) -> list[tuple[Path, dict]]:
    """The cache entries an earlier results.json or roundtrip.json holds: its ardmzip rows of this model and
    of the format version this codec writes such a clip as (each row names the version it was measured
    with). Classical rows are not restored: they take seconds to measure again."""
    if results["environment"]["model_sha256"] != model.sha256:
        return []
    out = []
    for r in results["items"]:
        if r["method"] != "ardmzip" or r.get("format_version") != format_version(r["channels"], r["depth"]):
            continue
        if results.get("what") == "roundtrip":
            entry = {"set": r["dataset"], "name": r["item"], "channels": r["channels"], "bits": r["depth"],
                     "sha256": r["sha256"]}
            out.append((roundtrip_path(cache, model, entry, r["budget_calls"]), {k: r[k] for k in ROUNDTRIP_FIELDS}))
        else:
            key = run.item_key(r["item"], r["samples_sha256"])
            out.append((run.ardmzip_path(cache, model, r["dataset"], key, r["budget_calls"], r["format_version"]),
                        {k: r[k] for k in run.ARDMZIP_FIELDS}))
    return out


def summarize(rows: list[dict]) -> list[dict]:
    """run.summarize per set and per kind (Σ bits / Σ samples; "bpd" = bits per sample), plus the audio
    seconds, seconds per audio second and network calls per stage and segment."""
    out = []
    for group, key in (("set", "dataset"), ("kind", "kind")):
        regrouped = [{**r, "dataset": r[key]} for r in rows]
        members = defaultdict(list)
        for r in regrouped:
            members[(r["dataset"], r["method"], r["budget"])].append(r)
        for s in run.summarize(regrouped):
            rs = members[(s["dataset"], s["method"], s["budget"])]
            seconds = sum(r["seconds"] for r in rs)
            calls = None if any(r.get("calls") is None for r in rs) else sum(r["calls"] for r in rs)
            units = sum(r["stage_segments"] for r in rs) if calls else None
            out.append({"group": group, **s, "seconds": seconds,
                        "calls_per_stage": calls / units if units else None,
                        "encode_s_per_audio_s": None if s["encode_s"] is None else s["encode_s"] / seconds,
                        "decode_s_per_audio_s": None if s["decode_s"] is None else s["decode_s"] / seconds})
    return out


# ---------------------------------------------------------------------------------------------- environment

def environment(model: AudioModel, codecs: list[Classical], args: argparse.Namespace) -> dict:
    """What produced the numbers: versions, CPU, threads, commit, date, model, codecs, subset rule."""
    import torch
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": run._git_commit(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "quick": args.quick,
        "model_id": model.id, "model_sha256": model.sha256, "default_budget": model.default_budget,
        "cpu": run._cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(), "platform": platform.platform(),
        "versions": {"ardmzip": run._version("ardmzip"), "torch": torch.__version__,
                     "constriction": run._version("constriction"), "numpy": np.__version__,
                     "soundfile": soundfile.__version__, "libsndfile": soundfile.__libsndfile_version__,
                     "matplotlib": run._version("matplotlib"),
                     **{c.name: c.version for c in codecs if c.name != "flac-sf"}},
        "classical_settings": {c.name: c.settings for c in codecs},
        "unavailable": [c.name for c in codecs if not c.available],
        "subset": {"samples_per_set": args.samples_per_set, "item_samples": args.item_samples, "seed": args.seed,
                   "required": list(REQUIRED), "eval_dir": str(args.eval_dir)},
    }


# ------------------------------------------------------------------------------------------------- outputs

ROW_FIELDS = ("dataset", "kind", "item", "clip", "start", "frames", "clip_frames", "channels", "rate", "depth",
              "seconds", "dims", "samples_sha256", "method", "budget", "budget_calls", "format_version", "stored_as",
              "calls", "calls_per_stage", "bytes", "bits", "bpd", "predicted_bpd", "model_bpd", "payload_bpd",
              "encode_s", "decode_s", "exact", "error", "cached")
SUMMARY_FIELDS = ("group", "dataset", "method", "budget", "items", "failed", "dims", "seconds", "bytes", "bits",
                  "bpd", "predicted_bpd", "model_bpd", "payload_bpd", "calls_per_item", "calls_per_stage",
                  "encode_s", "decode_s", "encode_s_per_audio_s", "decode_s_per_audio_s")


def write_json(path: Path, env: dict, items: list[Item], rows: list[dict], summary: list[dict]) -> None:
    """Everything: the environment, the subset's items, the summaries, every measurement, the failures."""
    path.write_text(json.dumps({"environment": env, "subset": [i.describe() for i in items], "summary": summary,
                                "items": rows, "failures": [r for r in rows if not r["exact"]]}, indent=1) + "\n")


def write_csv(path: Path, env: dict, rows: list[dict], summary: list[dict]) -> None:
    """One table: per-set and per-kind rows (level "set" / "kind": Σ bits / Σ samples) then per-item rows;
    '#' lines: the environment. bpd = bits per sample."""
    run.write_table_csv(path, env, SUMMARY_FIELDS + ROW_FIELDS, [(r.get("group", "item"), r) for r in [*summary, *rows]])


def _sets(summary: list[dict]) -> list[str]:
    return list(dict.fromkeys(s["dataset"] for s in summary if s["group"] == "set"))


def _plot(path: Path, env: dict, summary: list[dict], codecs: list[Classical],
          draw: Callable[[object, list[dict], list[dict]], None]) -> None:
    """One subplot per set: draw(ax, ardmzip's summary rows by calls, the classical codecs' rows)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sets = _sets(summary)
    fig, axes = plt.subplots(1, len(sets), figsize=(4.5 * len(sets), 4.5), squeeze=False)
    set_rows = [s for s in summary if s["group"] == "set"]
    for ax, ds in zip(axes[0], sets):
        ardm = [s for s in run._ardm_series(set_rows, ds) if s["calls_per_stage"]]
        classical = [next((s for s in set_rows if s["dataset"] == ds and s["method"] == c.name), None) for c in codecs]
        ax.set_title(ds)
        if not ardm:  # --cached-only with nothing cached
            ax.text(0.5, 0.5, "no ardmzip results", ha="center", transform=ax.transAxes)
            continue
        draw(ax, sorted(ardm, key=lambda s: s["calls_per_stage"]), classical)
        ax.set_xscale("log")
        ax.set_xlabel("network calls per stage and 2^15-frame segment")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=8)
    run._footer(fig, env)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_bps_vs_calls(path: Path, env: dict, summary: list[dict], codecs: list[Classical]) -> None:
    """Actual, predicted and model bits per sample against network calls; classical codecs as lines."""
    def draw(ax, ardm: list[dict], classical: list[dict | None]) -> None:
        x = [s["calls_per_stage"] for s in ardm]
        ax.plot(x, [s["bpd"] for s in ardm], "o-", color="C0", label="ardmzip (file bytes)")
        if all(s["predicted_bpd"] is not None for s in ardm):  # none where 24-bit items are in the set
            ax.plot(x, [s["predicted_bpd"] for s in ardm], "x--", color="C1", label="predicted by schedule")
        ax.plot(x, [s["model_bpd"] for s in ardm], ":", color="C0", alpha=0.6, label="model −log₂p")
        for i, (c, s) in enumerate(zip(codecs, classical)):
            if s and s["bpd"] is not None:
                ax.axhline(s["bpd"], color=f"C{i + 2}", lw=1, label=c.label)
        ax.set_ylabel("bits per sample")
    _plot(path, env, summary, codecs, draw)


def plot_seconds_vs_budget(path: Path, env: dict, summary: list[dict], codecs: list[Classical]) -> None:
    """Encode and decode seconds per second of audio against network calls; classical encoders as lines."""
    def draw(ax, ardm: list[dict], classical: list[dict | None]) -> None:
        x = [s["calls_per_stage"] for s in ardm]
        ax.plot(x, [s["encode_s_per_audio_s"] for s in ardm], "o-", label="ardmzip encode")
        ax.plot(x, [s["decode_s_per_audio_s"] for s in ardm], "s--", label="ardmzip decode")
        for i, (c, s) in enumerate(zip(codecs, classical)):
            if s and s["encode_s_per_audio_s"]:
                ax.axhline(s["encode_s_per_audio_s"], color=f"C{i + 2}", lw=1, label=f"{c.label} encode")
        ax.set_yscale("log")
        ax.set_ylabel("seconds per second of audio")
    _plot(path, env, summary, codecs, draw)


def _budget_heading(label: str, env: dict) -> str:
    return f"B={env['default_budget']} (default)" if label == "default" else f"B={label}"


def table_budgets(rows: list[dict]) -> list[str]:
    """The budget labels to show, by calls; a number equal to the default budget is shown once, as the default."""
    calls = {r["budget"]: r["budget_calls"] for r in rows if r["method"] == "ardmzip"}
    if "default" in calls:
        calls = {b: c for b, c in calls.items() if b == "default" or c != calls["default"]}
    return sorted(calls, key=lambda b: (calls[b], b))


def _flac_ratio(by: dict, ds: str) -> float | None:
    """ardmzip at the default budget / the best FLAC (flac -8 or soundfile's) on a set or kind."""
    ardm = by.get((ds, "ardmzip", "default"), {}).get("bpd")
    flacs = [v for v in (by.get((ds, m, ""), {}).get("bpd") for m in ("flac-8", "flac-sf")) if v is not None]
    return ardm / min(flacs) if ardm is not None and flacs else None


def _bps_table(rows: list[dict], summary: list[dict], env: dict, codecs: list[Classical]) -> list[str]:
    """Bits per sample per set, then per kind: ardmzip at each budget, the classical codecs, the ratio."""
    budgets = table_budgets(rows)
    by = {(s["dataset"], s["method"], s["budget"]): s for s in summary}
    keys = [("ardmzip", b) for b in budgets] + [(c.name, "") for c in codecs]
    head = [*(f"ardmzip {_budget_heading(b, env)}" for b in budgets),
            *(c.label + ("" if c.available else " (not installed)") for c in codecs)]
    kinds = defaultdict(dict)
    for r in rows:
        kinds[r["dataset"]][r["kind"]] = None
    table = []
    for group in ("set", "kind"):
        for ds in dict.fromkeys(s["dataset"] for s in summary if s["group"] == group):
            mine = [s for s in summary if s["group"] == group and s["dataset"] == ds]
            name, kind = (ds, ", ".join(kinds[ds])) if group == "set" else (f"**all {ds}**", ds)
            table.append([name, kind, str(max(s["items"] for s in mine)), f"{mine[0]['seconds']:.1f}",
                          *run._bpd_cells([by.get((ds, m, b), {}).get("bpd") for m, b in keys]),
                          _fmt(_flac_ratio(by, ds))])
    lines = _table(["set", "kind", "items", "seconds", *head, "default / best FLAC"], table)
    targets = [(kind, limit, _flac_ratio(by, kind)) for kind, limit in (("speech", SPEECH_TARGET),
                                                                       ("music", MUSIC_TARGET))]
    targets = [t for t in targets if t[2] is not None]
    if targets:
        lines += ["", "Issue 6's targets at the default budget, against the best FLAC: " + "; ".join(
            f"{kind} {'≤' if kind == 'speech' else '<'} {limit:.2f}× FLAC: {ratio:.3f}, "
            f"{'met' if (ratio <= limit if kind == 'speech' else ratio < limit) else '**not met**'}"
            for kind, limit, ratio in targets) + "."]
    return lines


def speed_item(rows: list[dict]) -> dict | None:
    """The 16 kHz mono 16-bit item whose seconds per audio second the README quotes (wia_16kHz.wav)."""
    fits = [r for r in rows if r["rate"] == 16000 and r["channels"] == 1 and r["depth"] == 16]
    return min(fits, key=lambda r: (r["clip"] not in REQUIRED, r["item"]), default=None)


def _speed_table(rows: list[dict], env: dict, codecs: list[Classical]) -> list[str]:
    """Encode and decode seconds per second of 16 kHz mono audio, per budget and classical codec."""
    item = speed_item(rows)
    if item is None:
        return []
    order = {b: i for i, b in enumerate(table_budgets(rows))}
    mine = [r for r in rows if r["dataset"] == item["dataset"] and r["item"] == item["item"]
            and (r["method"] != "ardmzip" or r["budget"] in order)]
    table = []
    for r in sorted(mine, key=lambda r: (r["method"] != "ardmzip", order.get(r["budget"], 0))):
        label = (f"ardmzip {_budget_heading(r['budget'], env)}" if r["method"] == "ardmzip"
                 else next(c.label for c in codecs if c.name == r["method"]))
        per = [None if r[k] is None else r[k] / item["seconds"] for k in ("encode_s", "decode_s")]
        table.append([label, str(r.get("calls") or "—"), _fmt(per[0], 2), _fmt(per[1], 2), _fmt(r["bpd"])])
    return ["", "#### Seconds per second of 16 kHz mono audio", "",
            f"`{item['item']}` ({item['seconds']:.2f} s, 16-bit mono, set {item['dataset']}): seconds to compress "
            f"and to decompress it, divided by its length; {env['torch_threads']} torch thread(s) on "
            f"{env['cpu']}; the classical codecs' times include starting their programs.", "",
            *_table(["codec", "network calls", "compress s / audio s", "decompress s / audio s", "bits per sample"],
                    table)]


def _schedule_check(rows: list[dict], env: dict) -> tuple[list[str], list[str]]:
    """Predicted vs actual bits per sample per set and budget, on the 8- and 16-bit items: markdown lines,
    and a finding per gap over run.GAP_FLAG.

    actual − predicted = (model − predicted: the model on these clips vs its validation loss curve)
                       + (payload − model: the entropy coder's overhead) + (file − payload: the header)."""
    summary = [s for s in summarize([r for r in rows if r["method"] == "ardmzip" and r["depth"] <= 16])
               if s["group"] == "set"]
    table, findings = [], []
    for ds in _sets(summary):
        for s in sorted(run._ardm_series(summary, ds), key=lambda s: s["calls_per_stage"]):
            pred, model, payload, actual = s["predicted_bpd"], s["model_bpd"], s["payload_bpd"], s["bpd"]
            gap = (actual - pred) / pred
            flagged = abs(gap) > run.GAP_FLAG
            table.append([ds, _budget_heading(s["budget"], env), str(s["items"]), _fmt(s["calls_per_stage"], 1),
                          _fmt(pred), _fmt(model), _fmt(actual), f"{(model - pred) / pred:+.1%}",
                          f"**{gap:+.1%}**" if flagged else f"{gap:+.1%}", _fmt(payload - model),
                          _fmt(actual - payload)])
            if flagged:
                findings.append(f"{ds}, B={s['budget']}: actual {actual:.3f} bits/sample vs predicted {pred:.3f} "
                                f"({gap:+.1%}): model vs loss curve {model - pred:+.3f}, coder {payload - model:+.3f}, "
                                f"header {actual - payload:+.3f}")
    lines = ["", "#### Schedule check: predicted vs actual", "",
             "On the 8- and 16-bit items (a 24-bit clip's low byte is coded by an adaptive count model that the "
             "schedule does not predict). Predicted: the bits per sample the step schedule expects from the model's "
             "loss curves (validation clips). Model: Σ −log₂p of the coded values, the ideal code length. Actual: "
             "file bytes, which add the entropy coder's overhead (coder) and the container header (header). "
             f"Calls: network calls per stage and segment. Gaps over {run.GAP_FLAG:.0%} are in bold and listed.", "",
             *_table(["set", "budget", "items", "calls", "predicted", "model", "actual", "model vs pred.",
                      "actual vs pred.", "coder", "header"], table)]
    if findings:
        lines += ["", "Findings:", "", *(f"- {f}" for f in findings)]
    return lines, findings


def _subset_lines(rows: list[dict]) -> list[str]:
    items = list({(r["dataset"], r["item"]): r for r in rows}.values())
    table = [[r["dataset"], f"`{r['item']}`", str(r["rate"]), str(r["depth"]), str(r["channels"]),
              f"{r['seconds']:.3f}", str(r["dims"])] for r in items]
    return ["", "#### The evaluation subset", "",
            f"<details><summary>{len(items)} items, {sum(r['dims'] for r in items)} samples, "
            f"{sum(r['seconds'] for r in items):.1f} s of audio ([start:stop] frames of an excerpt)</summary>", "",
            *_table(["set", "item", "Hz", "bits", "channels", "seconds", "samples"], table), "", "</details>"]


def _how_measured(env: dict) -> str:
    v, sub = env["versions"], env["subset"]
    unavailable = f" Not installed, so not measured: {', '.join(env['unavailable'])}." if env["unavailable"] else ""
    return (f"`python benchmarks/{env['command']}` on {env['date']}, commit `{env['git_commit'][:12]}`, "
            f"{env['seconds']:.0f} s; {env['cpu']} ({env['cpu_count']} cores); torch {v['torch']} on "
            f"{env['torch_threads']} thread(s), constriction {v['constriction']}, numpy {v['numpy']}, soundfile "
            f"{v['soundfile']} (libsndfile {v['libsndfile']}), {v.get('flac-8', '')}, {v.get('wavpack-hh', '')}. "
            f"{'; '.join(f'{k}: `{s}`' for k, s in env['classical_settings'].items())}.{unavailable} Subset: at most "
            f"{sub['samples_per_set']} samples per set, items of at most {sub['item_samples']} samples, seed "
            f"{sub['seed']} (rule: `benchmarks/audio.py`'s docstring). Seconds and every other measurement per item: "
            "`results.json` / `results.csv`.")


def write_markdown(path: Path, env: dict, rows: list[dict], summary: list[dict], codecs: list[Classical]) -> list[str]:
    """results.md (included by the README). Returns the findings (schedule gaps over GAP_FLAG)."""
    lines = [f"### Bits per sample on the audio evaluation clips{' (--quick smoke run)' if env['quick'] else ''}", "",
             f"Σ file bits / Σ samples (frames × channels), whole files with their headers; lower is better; the "
             f"best of a row in bold. ardmzip model `{env['model_id']}` (SHA-256 `{env['model_sha256'][:16]}…`), "
             "its own code (no stored fallback); B is the budget of network calls per stage and 2^15-frame segment. "
             "Every file was decoded back and compared with the original samples; — marks a result missing "
             "because a round trip failed (listed at the end) or a codec that is not installed. Kind rows: all "
             "speech or all music items together; the last column is ardmzip at the default budget over the "
             "best FLAC.", ""]
    lines += _bps_table(rows, summary, env, codecs)
    lines += _speed_table(rows, env, codecs)
    check, findings = _schedule_check(rows, env)
    lines += check
    lines += _subset_lines(rows)
    failures = [r for r in rows if not r["exact"]]
    if failures:
        lines += ["", "#### FAILURES: round trips that did not give back the original", ""]
        lines += [f"- {r['dataset']} {r['item']} {r['method']} {r['budget']}: {r['error']}" for r in failures]
    lines += ["", "#### How these numbers were made", "", _how_measured(env), ""]
    path.write_text("\n".join(lines))
    return findings


def print_table(summary: list[dict]) -> None:
    """The per-set and per-kind summary on stderr."""
    _log(f"\n{'set/kind':10} {'method':10} {'budget':>7} {'calls':>6} {'bps':>7} {'pred':>7} {'model':>7} "
         f"{'enc s/s':>8} {'dec s/s':>8} {'failed':>6}")
    for s in summary:
        _log(f"{s['dataset']:10} {s['method']:10} {s['budget']:>7} {_fmt(s['calls_per_stage'], 1):>6} "
             f"{_fmt(s['bpd']):>7} {_fmt(s['predicted_bpd']):>7} {_fmt(s['model_bpd']):>7} "
             f"{_fmt(s['encode_s_per_audio_s'], 2):>8} {_fmt(s['decode_s_per_audio_s'], 2):>8} {s['failed']:>6}")


# ------------------------------------------------------------------------------------------- --roundtrip-all

def measure_roundtrip(clip: audio.Audio, budget: int, model: AudioModel) -> dict:
    """A whole evaluation clip (its own meta) through compress_audio / decompress_audio: same samples and meta?"""
    row = {**dict.fromkeys(ROUNDTRIP_FIELDS), "exact": False}
    try:
        t0 = time.perf_counter()
        blob, report = api.compress_audio(clip, budget=budget, model=model.id, fallback=False)
        t1 = time.perf_counter()
        back = api.decompress_audio(blob)
        row.update(bytes=len(blob), bits=8 * len(blob), calls=report.steps, encode_s=t1 - t0,
                   decode_s=time.perf_counter() - t1)
        same = back.samples.dtype == clip.samples.dtype and bool(np.array_equal(back.samples, clip.samples))
        row["exact"] = same and back.meta == clip.meta
        if not row["exact"]:
            row["error"] = "decoded samples differ from the original" if not same else "decoded meta differs"
    except Exception as e:
        row["error"] = f"{type(e).__name__}: {e}"
    return row


def shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N) with 0 <= K < N; SystemExit otherwise."""
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and int(k) < int(n)):
        raise SystemExit(f"--shard must be K/N with 0 <= K < N, got {text!r}")
    return int(k), int(n)


def roundtrip_all(args: argparse.Namespace, model: AudioModel, cache: Path) -> int:
    """Every evaluation clip of the chosen sets, whole, at one budget: equal / total and bits per sample."""
    label = budgets_for(args)[0] if args.budgets else "default"
    budget = resolve_budget(label, model)
    sets = chosen_sets(args)
    entries = [e for e in read_manifest(args.eval_dir) if e["set"] in sets]
    in_set = defaultdict(int)  # clips per set and per kind, measured or not: a partial run says what is left
    for e in entries:
        in_set["set", e["set"]] += 1
        in_set["kind", e["kind"]] += 1
    if args.shard:
        k, n = shard(args.shard)
        entries = entries[k::n]
    _log(f"round trips: model {model.id}, budget {budget}, {len(entries)} clips of {','.join(sets)}")
    rows, started = [], time.perf_counter()
    for e in entries:
        path = roundtrip_path(cache, model, e, budget)
        if args.cached_only and not path.exists():
            continue
        r = run.cached(path, lambda: measure_roundtrip(read_clip(args.eval_dir, e), budget, model))
        dims = e["frames"] * e["channels"]
        rows.append({"dataset": e["set"], "kind": e["kind"], "item": e["name"], "rate": e["rate"], "depth": e["bits"],
                     "channels": e["channels"], "seconds": e["seconds"], "dims": dims, "sha256": e["sha256"],
                     "budget": label, "budget_calls": budget, "format_version": format_version(e["channels"], e["bits"]),
                     "method": "ardmzip", **r, "bpd": _per_sample(r["bits"], dims),
                     "stage_segments": stage_segments(e["frames"], e["bits"], model)})
        status = "equal" if r["exact"] else f"FAILED: {r['error']}"
        _log(f"  {e['name']:50} {_fmt(rows[-1]['bpd'])} bits/sample {status}{' (cached)' if r['cached'] else ''}")
    summary = [{k: s[k] for k in ("group", "dataset", "items", "failed", "dims", "seconds", "bpd", "encode_s",
                                  "decode_s")} for s in summarize(rows)]
    env = environment(model, classical_codecs(), args)
    env["seconds"] = round(time.perf_counter() - started, 1)
    out = output_folder(args, complete=set(sets) == set(SETS) and not (args.cached_only or args.shard))
    failures = [r for r in rows if not r["exact"]]
    (out / "roundtrip.json").write_text(json.dumps({"what": "roundtrip", "environment": env, "summary": summary,
                                                    "items": rows, "failures": failures}, indent=1) + "\n")
    table = [[s["dataset"] if s["group"] == "set" else f"**all {s['dataset']}**",
              f"{s['items']} of {in_set[s['group'], s['dataset']]}",
              f"{s['items'] - s['failed']}/{s['items']}", f"{s['seconds']:.0f}", _fmt(s["bpd"]),
              _fmt(s["encode_s"], 1), _fmt(s["decode_s"], 1)] for s in summary]
    total = sum(in_set["set", s] for s in sets)
    md = [f"### Round trips of the evaluation clips: {len(rows)} of {total} (model `{model.id}`, budget {budget})", "",
          "Each clip whole, with its own format details, through api.compress_audio (the model's code, no "
          "stored fallback) and api.decompress_audio; equal = the same samples and meta; clips = measured of "
          "the clips in the set.", "",
          *_table(["set", "clips", "equal", "audio s", "bits per sample", "compress s", "decompress s"], table)]
    if untouched := [s for s in sets if not any(r["dataset"] == s for r in rows)]:
        md += ["", "Not measured yet: " + ", ".join(f"{s} (0 of {in_set['set', s]})" for s in untouched) + "."]
    md += ["", *(f"- FAILED {r['item']}: {r['error']}" for r in failures)] if failures else []
    md += ["", f"`python benchmarks/{env['command']}` on {env['date']}, commit `{env['git_commit'][:12]}`, "
               f"{env['cpu']}, {env['torch_threads']} torch thread(s).", ""]
    (out / "roundtrip.md").write_text("\n".join(md))
    _log("\n".join(md))
    _log(f"{len(rows)} clips, {len(failures)} failures; results in {out}")
    return 1 if failures else 0


# ---------------------------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: budgets 1,10 on a few small items (synthesised clips without evaluation data)")
    ap.add_argument("--sets", default=None, help=f"comma-separated subset of {','.join(SETS)}")
    ap.add_argument("--budgets", default=None,
                    help=f"comma-separated budgets: integers >= 1 or 'default' (default: {','.join(BUDGETS)}; "
                         f"--quick: {','.join(QUICK_BUDGETS)})")
    ap.add_argument("--items", default=None, help="comma-separated names: only items whose name contains one")
    ap.add_argument("--clips", type=Path, nargs="+", default=None,
                    help="measure these WAV/FLAC/AIFF files (whole) instead of the evaluation clips")
    ap.add_argument("--samples-per-set", type=int, default=None,
                    help=f"subset: samples (frames x channels) per set (default {SAMPLES_PER_SET}; --quick "
                         f"{QUICK_SAMPLES_PER_SET}; {REQUIRED[0]} is always in, whole)")
    ap.add_argument("--item-samples", type=int, default=None,
                    help=f"subset: longer clips are cut to an excerpt of this many samples (default {ITEM_SAMPLES}; "
                         f"--quick {QUICK_ITEM_SAMPLES})")
    ap.add_argument("--seed", type=int, default=SEED, help="subset: the seed of the clip order and excerpt starts")
    ap.add_argument("--eval-dir", type=Path, default=EVAL_DIR, help="the evaluation clips (with manifest.json)")
    ap.add_argument("--roundtrip-all", action="store_true",
                    help="round-trip every evaluation clip of --sets, whole, at the default budget (or the first "
                         "of --budgets); writes roundtrip.json / roundtrip.md (hours: see the docstring)")
    ap.add_argument("--shard", default=None, metavar="K/N",
                    help="--roundtrip-all: only every N-th clip, starting at clip K (0-based), so that N processes "
                         "share the clips of a run; the results of all shards come together with --cached-only")
    ap.add_argument("--model", default=None, help="model id (default: the release's default audio model)")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default: benchmarks/results/audio/ for a complete run; a new temporary "
                         "folder for --quick and partial runs, so that they never replace the README's results)")
    ap.add_argument("--cache", type=Path, default=BENCH / "cache" / "audio", help="folder of cached measurements")
    ap.add_argument("--cached-only", action="store_true",
                    help="report only ardmzip measurements already in the cache (assemble results of partial runs)")
    ap.add_argument("--no-cache", action="store_true", help="measure everything again (cache in a temp folder)")
    ap.add_argument("--restore", type=Path, action="append", default=[], metavar="JSON",
                    help="first put an earlier run's results.json or roundtrip.json (e.g. the committed ones in "
                         "benchmarks/results/audio/) into the cache: its exact ardmzip results of this model and "
                         "format version (repeatable)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: timings per core)")
    args = ap.parse_args(argv)
    args.samples_per_set = args.samples_per_set or (QUICK_SAMPLES_PER_SET if args.quick else SAMPLES_PER_SET)
    args.item_samples = args.item_samples or (QUICK_ITEM_SAMPLES if args.quick else ITEM_SAMPLES)
    return args


def budgets_for(args: argparse.Namespace) -> list[str]:
    chosen = ([b.strip() for b in args.budgets.split(",") if b.strip()] if args.budgets
              else list(QUICK_BUDGETS if args.quick else BUDGETS))
    for b in chosen:
        if b != "default" and not (b.isdigit() and int(b) >= 1):
            raise SystemExit(f"--budgets: {b!r} is not a budget; use integers >= 1 or 'default'")
    return list(dict.fromkeys(chosen))


def chosen_sets(args: argparse.Namespace) -> list[str]:
    sets = [s.strip() for s in args.sets.split(",")] if args.sets else list(QUICK_SETS if args.quick else SETS)
    if unknown := [s for s in sets if s not in SETS]:
        raise SystemExit(f"--sets: unknown {unknown}; choose from {','.join(SETS)}")
    return [s for s in SETS if s in sets]


def build_items(args: argparse.Namespace) -> list[Item]:
    """--clips; else the evaluation subset; else (--quick only) the synthesised clips. Filtered by --items."""
    if args.clips:
        items = given_items(args.clips)
    elif args.quick and not (args.eval_dir / "manifest.json").exists():
        _log(f"no evaluation clips in {args.eval_dir}: --quick runs on synthesised clips")
        items = synthetic_items()
    else:
        items = eval_items(args.eval_dir, chosen_sets(args), args.samples_per_set, args.item_samples, args.seed)
    if args.items:
        wanted = [w.strip() for w in args.items.split(",") if w.strip()]
        items = [i for i in items if any(w in i.name for w in wanted)]
        if not items:
            raise SystemExit(f"--items {args.items}: matches none of the items")
    return items


def output_folder(args: argparse.Namespace, complete: bool) -> Path:
    """--out, else benchmarks/results/audio for a complete run and a new temporary folder otherwise."""
    out = args.out or (RESULTS if complete else Path(tempfile.mkdtemp(prefix="ardmzip-audio-bench-")))
    out.mkdir(parents=True, exist_ok=True)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    model = load_model(args.model or default_model_id("audio"))
    if model.media != "audio":
        raise SystemExit(f"--model {model.id} is a model for {model.media}, not for audio")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) if args.no_cache else args.cache
        for path in args.restore:
            _log(f"restored {run.restore(restorable(json.loads(path.read_text()), cache, model))} results from {path}")
        if args.roundtrip_all:
            return roundtrip_all(args, model, cache)
        warm_up(model)
        codecs = classical_codecs()
        items, budgets = build_items(args), budgets_for(args)
        env = environment(model, codecs, args)
        _log(f"ardmzip audio benchmark: model {model.id} ({model.sha256[:12]}), {len(items)} items "
             f"({sum(i.dims for i in items)} samples), budgets {','.join(budgets)}, {env['torch_threads']} torch "
             f"thread(s); not installed: {', '.join(env['unavailable']) or 'none'}")
        started = time.perf_counter()
        rows = [r for item in items for r in run_item(item, budgets, model, codecs, cache, args.cached_only)]
    summary = summarize(rows)
    partial = (args.quick or args.clips or args.sets or args.budgets or args.items or args.model
               or args.samples_per_set != SAMPLES_PER_SET or args.item_samples != ITEM_SAMPLES or args.seed != SEED)
    out = output_folder(args, complete=not partial)
    env["seconds"] = round(time.perf_counter() - started, 1)  # with cached results: only what was measured now
    write_json(out / "results.json", env, items, rows, summary)
    write_csv(out / "results.csv", env, rows, summary)
    plot_bps_vs_calls(out / "bps_vs_calls.png", env, summary, codecs)
    plot_seconds_vs_budget(out / "seconds_vs_budget.png", env, summary, codecs)
    findings = write_markdown(out / "results.md", env, rows, summary, codecs)

    if out.resolve() == RESULTS.resolve() and not (args.quick or args.clips):
        run.update_readme((out / "results.md").read_text(), README_BEGIN, README_END)
    print_table(summary)
    return run.log_outcome(rows, findings, env, out)


if __name__ == "__main__":
    sys.exit(main())
