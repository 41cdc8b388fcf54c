"""compress()/decompress() on arrays and bytes: the one pipeline that the CLI, the tests and the
benchmarks all call, for images and audio clips.

    blob = compress(png_bytes)                  # or compress(uint8 array), budget=…, model=…
    png_bytes = decompress(blob)                # the original file format, same pixels
    array = decompress_array(blob)              # (H, W) / (H, W, 3) / (H, W, 4) uint8
    blob = compress(wav_bytes)                  # WAV / FLAC / AIFF bytes: the audio model
    wav_bytes = decompress(blob)                # same container type, subtype, rate, samples
    samples = decompress_array(blob)            # (frames, channels) int8 / int16 / int32
"""
from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import soundfile

from . import audio, audio_codec, container, media
from .audio_model import AudioModel
from .codec import OFFSETS, Coding, decode_plane, encode_plane_ways, make_plan, predicted_bits
from .coder import Decoder, Encoder
from .errors import ChecksumMismatchError, CorruptError, ModelError, UnsupportedInputError
from .registry import Model, default_model_id, find_model, load_model

DEFAULT_SEED = 0
# Scale offsets cost log2 17 bits per network step; where that could pass OFFSET_TRY_BITS per dimension
# (0.1% of a 2-bpd file: a 64×64 crop at 18 calls, 256×256 at 200), compress also codes without them.
OFFSET_BITS = math.log2(len(OFFSETS))
OFFSET_TRY_BITS = 0.002
# Adapted steps (adapt.py) by default for images of at least ADAPT_MIN_DIMS subpixels where the modes'
# bits (one per call) stay below OFFSET_TRY_BITS per dimension. On validation files: 64×64 crops −0.04%
# as they are, −1.2% upscaled; whole photos −1.75%; 320×320 crops at their source resolution −2.2%
# (benchmarks/results/adapt/; per class, version 6: a further −0.1% … −3.1%). Smaller images keep one
# scale offset per step (or none).
ADAPT_MIN_DIMS = 3 * 64 * 64


@dataclass
class Report:
    """What a compression measured: sizes in bytes and bits, the model's own −log2 p, steps used."""
    file_bytes: int
    payload_bits: int
    model_bits: float      # Σ −log2 p of the coded values under the model (the ideal code length)
    predicted_bits: float  # what the schedule predicts from the model's loss curve (validation data)
    dims: int              # number of coded subpixels / samples
    steps: int             # network calls (steps of the schedule that ran the net)
    method: str = "ardm"   # what the file stores: "ardm", or the "raw"/"deflate" fallback when smaller

    @property
    def bpd(self) -> float:
        """File bits per subpixel (images) or per sample (audio); NaN for a clip of no samples."""
        return 8 * self.file_bytes / self.dims if self.dims else float("nan")


LEVEL_FACTORS = {1: (1, 25), 2: (1, 10), 3: (1, 5), 4: (2, 5), 5: (3, 5), 6: (1, 1), 7: (2, 1), 8: (4, 1), 9: (8, 1)}


def level_budget(level: int, model: str | None = None, media_kind: str = "image") -> int:
    """The step budget of compression level 1 (fastest) … 9 (smallest): a fixed fraction or multiple
    of the model's default budget d (level 6 = d), at least 1 network call."""
    if level not in LEVEL_FACTORS:
        raise UnsupportedInputError(f"compression level must be 1 … 9 (got {level})")
    num, den = LEVEL_FACTORS[level]
    return max(1, _model(model, media_kind).default_budget * num // den)


def _model(model: str | None, media_kind: str) -> Model | AudioModel:
    m = load_model(model or default_model_id(media_kind))
    if m.media != media_kind:
        raise ModelError(f"model '{m.id}' is a model for {m.media}, not for {media_kind} (see `ardmzip models`)")
    return m


def _file_model(header: container.Header) -> Model | AudioModel:
    """The model a model-coded file names: its weights, media and arithmetic must be the file's."""
    m = find_model(header.model_id, header.model_hash)
    if m.media != header.media:
        raise ModelError(f"file holds {header.media} but names model '{m.id}', a model for {m.media}")
    if m.arithmetic != header.arithmetic:
        raise CorruptError(f"file says arithmetic {header.arithmetic}, but model {m.id} is {m.arithmetic}")
    return m


def _samples(img: media.Image) -> np.ndarray:
    """All coded values of an image as one flat uint8 array (the checksum's input)."""
    return np.concatenate([p.reshape(-1) for p in img.planes]) if img.planes else np.zeros(0, np.uint8)


class _StepCounter:
    """Turns the codec's per-step ticks into progress(done, total) calls, and counts them (`done`: the
    network calls the decoder makes). `finish` completes the progress where fewer steps ran than the
    schedule's total (segments of a dyadic-split model that keep their levels whole)."""

    def __init__(self, total: int, progress: Callable[[int, int], None] | None):
        self.done, self.total, self.progress = 0, total, progress

    def __call__(self, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, self.total)

    def finish(self) -> None:
        if self.progress and self.done < self.total:
            self.progress(self.total, self.total)


def compress_image(img: media.Image, *, budget: int | None = None, model: str | None = None,
                   seed: int = DEFAULT_SEED, progress: Callable[[int, int], None] | None = None,
                   fallback: bool = True, offsets: bool | None = None, adapt: bool | None = None,
                   phases: bool | None = None) -> tuple[bytes, Report]:
    """Code the planes of an image; returns the .ardm bytes and a Report.

    With `fallback` (the default) the file stores the samples raw or deflated instead whenever that is
    smaller than the model's code. `offsets`: a scale offset per network step (codec.OFFSETS; format
    version 2). By default int-exact models use them, and where their indices could cost more than
    OFFSET_TRY_BITS per dimension (small images, many calls) the image is also coded without them and
    the smaller file kept. `adapt`: per network step a mode, one scale offset or a fitted mean correction
    and scale offsets (adapt.py; format version 5); by default for int-exact one-stage models on images
    of at least ADAPT_MIN_DIMS subpixels at no more calls than OFFSET_TRY_BITS per subpixel
    (`adapts_by_default`), where it replaces `offsets`. `phases`: adapted steps fitted per phase class
    (adapt.phase_classes; format version 6), the default wherever steps are adapted; False: one fit per
    step (version 5); True implies `adapt`.
    """
    m = _model(model, "image")
    budget = m.default_budget if budget is None else budget
    if budget < 1:
        raise UnsupportedInputError(f"budget must be at least 1 network call (got {budget})")
    plans = [make_plan(m, p.shape, budget, seed) for p in img.planes]
    calls, samples = sum(pl.calls for pl in plans), _samples(img)
    tries = _image_tries(m, offsets, adapt, phases, calls, samples.size)
    tick = _StepCounter(sum(pl.steps for pl in plans), progress)

    def push(ways: dict[Coding, Encoder]) -> dict[Coding, float]:
        bits = dict.fromkeys(ways, 0.0)
        for plane, plan in reversed(list(zip(img.planes, plans))):  # the stack: last plane pushed first
            for use, b in encode_plane_ways(m, plane, plan, ways, tick).items():
                bits[use] += b
        return bits

    use, words, model_bits = _smallest_coding(tries, push)
    shape = _shape_of(img)
    header = container.Header(media="image", method="ardm", arithmetic=m.arithmetic, model_id=m.id,
                              model_hash=m.hash_prefix, budget=budget, seed=seed,
                              shape=shape, meta=_stored_meta(img.meta, shape),
                              content_hash=container.content_hash(samples), offsets=use == Coding.OFFSET,
                              adapt=use in (Coding.ADAPT, Coding.PHASES), phases=use == Coding.PHASES)
    candidates = [("ardm", words), *(_stored_payloads(samples.tobytes()) if fallback else [])]
    blob, method, words = _pack_smallest(header, candidates)
    return blob, Report(len(blob), 32 * len(words), model_bits, _predicted_bits(m, plans), samples.size,
                        calls, method)


def _image_tries(m: Model, offsets: bool | None, adapt: bool | None, phases: bool | None, calls: int,
                 dims: int) -> list[Coding]:
    """An image's codings to try: adapted steps (per phase class unless `phases` is False) where asked,
    or by default (see compress_image), else `_offset_tries`."""
    can = m.exact is not None and m.cfg.stages == 1
    adapt = True if phases else adapt
    if adapt and not can:
        raise UnsupportedInputError(f"adapted steps need an int-exact one-stage model; {m.id} is not")
    if adapt or (adapt is None and offsets is not False and can and adapts_by_default(dims, calls)):
        return [Coding.ADAPT if phases is False else Coding.PHASES]
    return [Coding(t) for t in _offset_tries(m, offsets, calls, dims)]


def adapts_by_default(dims: int, calls: int) -> bool:
    """Whether an image of `dims` subpixels coded in `calls` network calls gets adapted steps by default
    (an int-exact one-stage model)."""
    return dims >= ADAPT_MIN_DIMS and calls <= OFFSET_TRY_BITS * dims


def _offset_tries(m: Model | AudioModel, offsets: bool | None, calls: int, dims: int) -> list[bool]:
    """The codings to try, best first: with scale offsets or not as asked; by default with them for
    int-exact models, and also without where their indices could cost more than OFFSET_TRY_BITS per
    dimension."""
    if offsets is not None:
        return [offsets]
    if m.exact is None:
        return [False]
    return [True, False] if calls * OFFSET_BITS > OFFSET_TRY_BITS * dims else [True]


def _smallest_coding(tries: list[bool], push: Callable[[dict[bool, Encoder]], dict[bool, float]]
                     ) -> tuple[bool, np.ndarray, float]:
    """(offsets, payload words, model bits) of the smallest of the codings that `push(ways)` makes, one
    per entry of `tries` (with scale offsets or not) in a single pass (the first among equals)."""
    ways = {use: Encoder() for use in tries}
    bits = push(ways)
    return min(((use, ways[use].words(), bits[use]) for use in tries), key=lambda c: len(c[1]))


def _pack_smallest(header: container.Header, candidates: list[tuple[str, np.ndarray]]
                   ) -> tuple[bytes, str, np.ndarray]:
    """The file of the candidate payload with the fewest words (the first among equals): never lose to
    the trivial, the samples stored or deflated. Returns (file, method, words)."""
    method, words = min(candidates, key=lambda c: len(c[1]))
    if method != "ardm":
        header = dataclasses.replace(header, method=method, model_id="", model_hash=bytes(4), budget=0, seed=0,
                                     offsets=False, channel_transform=False, low_modes=False, adapt=False,
                                     phases=False)
    return container.pack(header, words), method, words


def _words(data: bytes) -> np.ndarray:
    return np.frombuffer(data + bytes(-len(data) % 4), dtype="<u4").astype(np.uint32)


def _stored_payloads(raw: bytes) -> list[tuple[str, np.ndarray]]:
    return [("raw", _words(raw)), ("deflate", _words(zlib.compress(raw, 9)))]


def _unstore(method: str, words: np.ndarray, n: int) -> np.ndarray:
    """Samples (n,) uint8 of a raw or deflate payload; CorruptError unless exactly n bytes come out."""
    data = words.astype("<u4").tobytes()
    if method == "deflate":
        try:
            d = zlib.decompressobj()
            data = d.decompress(data, n + 1)
        except zlib.error as e:
            raise CorruptError(f"file is corrupt: deflate payload: {e}") from None
    if len(data) < n or (method == "deflate" and len(data) != n):
        raise CorruptError(f"file is corrupt: stored payload holds {len(data)} bytes, {n} expected")
    return np.frombuffer(data[:n], dtype=np.uint8)


def _predicted_bits(m: Model, plans: list) -> float:
    return sum(predicted_bits(m, pl) for pl in plans)


def predict_bits(img: media.Image, *, budget: int | None = None, model: str | None = None) -> float:
    """Bits the schedule predicts for an image from the model's loss curve, without running the net."""
    m = _model(model, "image")
    b = m.default_budget if budget is None else budget
    return _predicted_bits(m, [make_plan(m, p.shape, b, DEFAULT_SEED) for p in img.planes])


def _shape_of(img: media.Image) -> tuple[int, ...]:
    """(H, W) for one-plane grey/palette images, else (H, W, channels), as FORMAT.md's Dims."""
    h, w = img.planes[0].shape[:2]
    c = sum(1 if p.ndim == 2 else p.shape[2] for p in img.planes)
    return (h, w) if c == 1 else (h, w, c)


_MODE_BY_CHANNELS = {2: "LA", 3: "RGB", 4: "RGBA"}


def _implied_meta(shape: tuple[int, ...]) -> dict:
    """Meta a file need not store because Dims imply it (every byte counts on a 32×32 crop)."""
    mode = "L" if len(shape) == 2 else _MODE_BY_CHANNELS.get(shape[2], "")
    return {"mode": mode, "format": "PNG", "height": shape[0], "width": shape[1]}


def _stored_meta(meta: dict, shape: tuple[int, ...]) -> dict:
    implied = _implied_meta(shape)
    return {k: v for k, v in meta.items() if implied.get(k, object()) != v}


def _full_meta(stored: dict, shape: tuple[int, ...]) -> dict:
    return {**_implied_meta(shape), **stored}


def _check_header(header: container.Header) -> None:
    """Refuse an image header that no writer makes, before anything is allocated for it."""
    shape = header.shape
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in _MODE_BY_CHANNELS):
        raise CorruptError(f"file is corrupt: {shape} is not an image shape (H, W) or (H, W, 2/3/4)")
    if shape[0] * shape[1] > media.MAX_PIXELS:
        raise CorruptError(f"file is corrupt or too large: it declares {shape[1]}×{shape[0]} pixels, "
                           f"at most {media.MAX_PIXELS} are supported")
    if header.method == "ardm" and header.budget < 1:
        raise CorruptError(f"file is corrupt: budget {header.budget} (at least 1 network call)")
    for key, size in (("height", shape[0]), ("width", shape[1])):
        if key in header.meta and header.meta[key] != size:
            raise CorruptError(f"file is corrupt: meta {key} {header.meta[key]!r} disagrees with the shape {shape}")


def _plane_shapes(header: container.Header) -> list[tuple[int, ...]]:
    """The plane shapes media.read_image produces for the stored mode (media.PLANE_LAYOUT)."""
    h, w = header.shape[:2]
    mode = _full_meta(header.meta, header.shape)["mode"]
    if mode not in media.PLANE_LAYOUT:
        raise UnsupportedInputError(f"file stores an image of mode {mode!r}, which this release cannot decode")
    return [(h, w, 3) if kind == "rgb" else (h, w) for kind in media.PLANE_LAYOUT[mode]]


def decompress_image(blob: bytes, *, progress: Callable[[int, int], None] | None = None) -> media.Image:
    """Inverse of compress_image; verifies the content checksum."""
    header, words = container.unpack(blob)
    if header.media != "image":
        raise UnsupportedInputError(f"file holds {header.media}, not an image")
    return _decode_image(header, words, progress)


def _decode_image(header: container.Header, words: np.ndarray,
                  progress: Callable[[int, int], None] | None) -> media.Image:
    _check_header(header)
    shapes = _plane_shapes(header)
    if header.method in container.STORED_METHODS:
        sizes = [int(np.prod(s)) for s in shapes]
        planes = np.split(_unstore(header.method, words, sum(sizes)), np.cumsum(sizes)[:-1])
        return _checked(media.Image([p.reshape(s) for p, s in zip(planes, shapes)],
                                    _full_meta(header.meta, header.shape)), header)
    m = _file_model(header)
    plans = [make_plan(m, s, header.budget, header.seed, header.offsets, header.adapt, header.phases) for s in shapes]
    tick = _StepCounter(sum(pl.steps for pl in plans), progress)
    dec = Decoder(words)
    planes = [decode_plane(m, plan, dec, tick) for plan in plans]
    dec.finish()
    return _checked(media.Image(planes=planes, meta=_full_meta(header.meta, header.shape)), header)


def _checked(img: media.Image, header: container.Header) -> media.Image:
    if container.content_hash(_samples(img)) != header.content_hash:
        raise ChecksumMismatchError("decoded pixels do not match the checksum of the original: "
                                    "the file is corrupt or this machine computes the model differently")
    return img


# -------------------------------------------------------------------------------------------- audio
# Dims of an audio file: (frames, channels); a clip of no frames is (channels,), as no dimension is 0.
# Meta: audio.read_audio's, less what the shape implies (channels) and the defaults below.
AUDIO_DEFAULTS = {"format": "WAV", "subtype": "PCM_16"}
MAX_CHANNELS = 1024  # libsndfile's limit
MAX_SAMPLERATE = (1 << 31) - 1
ENDIANS = ("LITTLE", "BIG")  # meta "endian", when not the container's default


def audio_dims(shape: tuple[int, ...]) -> tuple[int, int]:
    """(frames, channels) of an audio file's Dims."""
    return (shape[0], shape[1]) if len(shape) == 2 else (0, shape[0])


def _audio_shape(samples: np.ndarray) -> tuple[int, ...]:
    frames, channels = samples.shape
    return (frames, channels) if frames else (channels,)


def _stored_audio_meta(meta: dict) -> dict:
    implied = {**AUDIO_DEFAULTS, "channels": meta["channels"]}
    return {k: v for k, v in meta.items() if implied.get(k, object()) != v}


def _audio_meta_problem(meta: dict, channels: int) -> str | None:
    """Why a complete audio meta cannot describe a clip of `channels` channels that write_audio writes
    back, or None. The writer and the reader refuse the same."""
    fmt, subtype, rate, endian = meta.get("format"), meta.get("subtype"), meta.get("samplerate"), meta.get("endian")
    tags, dropped = meta.get("tags", {}), meta.get("dropped", [])
    if not isinstance(fmt, str) or fmt not in audio.FORMATS:
        return f"format {fmt!r} is not one of {', '.join(audio.FORMATS)}"
    if not isinstance(subtype, str) or subtype not in audio.BITS:
        return f"subtype {subtype!r} is not one of {', '.join(audio.BITS)}"
    if isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= MAX_SAMPLERATE:
        return f"samplerate {rate!r} is not an integer in 1..{MAX_SAMPLERATE}"
    if type(meta.get("channels")) is not int or meta["channels"] != channels:
        return f"channels {meta.get('channels')!r} disagrees with the {channels} channels of the shape"
    if endian is not None and (not isinstance(endian, str) or endian not in ENDIANS):
        return f"endian {endian!r} is not one of {', '.join(ENDIANS)}"
    if not soundfile.check_format(fmt, subtype, endian or "FILE"):
        return f"a {fmt} file cannot hold {subtype} samples{f' ({endian} endian)' if endian else ''}"
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        return "tags must map names to text"
    if not isinstance(dropped, list) or not all(isinstance(d, str) for d in dropped):
        return "dropped must be a list of names"
    return None


def _audio_meta(header: container.Header) -> dict:
    """The complete meta of an audio header, after refusing a header that no writer makes (shape,
    limits, budget, meta), before anything is allocated for it."""
    shape = header.shape
    if len(shape) not in (1, 2):
        raise CorruptError(f"file is corrupt: {shape} is not an audio shape (frames, channels), or (channels,) "
                           "for a clip of no frames")
    frames, channels = audio_dims(shape)
    if channels > MAX_CHANNELS:
        raise CorruptError(f"file is corrupt: {channels} channels, at most {MAX_CHANNELS} are supported")
    if frames * channels > audio.MAX_SAMPLES:
        raise CorruptError(f"file is corrupt or too large: it declares {frames} frames x {channels} channels, "
                           f"at most {audio.MAX_SAMPLES} samples are supported")
    if header.method == "ardm" and header.budget < 1:
        raise CorruptError(f"file is corrupt: budget {header.budget} (at least 1 network call)")
    meta = {**AUDIO_DEFAULTS, "channels": channels, **header.meta}
    problem = _audio_meta_problem(meta, channels)
    if problem:
        raise CorruptError(f"file is corrupt: audio meta: {problem}")
    return meta


def _sample_bytes(samples: np.ndarray, bits: int) -> bytes:
    """The raw/deflate payload of a clip: samples in C order (frame by frame, channels interleaved), each
    as bits/8 bytes of little-endian two's complement."""
    b = np.ascontiguousarray(samples, dtype="<i4").reshape(-1, 1).view(np.uint8)
    return b[:, :bits // 8].tobytes()


def _samples_of_bytes(data: np.ndarray, frames: int, channels: int, bits: int) -> np.ndarray:
    """Inverse of _sample_bytes: (frames, channels) samples of audio.DTYPES[bits]."""
    b = data.reshape(-1, bits // 8).astype(np.int64)
    u = (b << (8 * np.arange(bits // 8))).sum(1)
    x = u - ((u >> (bits - 1)) << bits)  # two's complement
    return x.astype(audio.DTYPES[bits]).reshape(frames, channels)


def _check_clip(clip: audio.Audio) -> int:
    """The bits of a clip's samples; UnsupportedInputError unless samples and meta can be coded."""
    s, meta = clip.samples, clip.meta
    subtype = meta.get("subtype")
    bits = audio.BITS.get(subtype) if isinstance(subtype, str) else None
    if bits is None or not isinstance(s, np.ndarray) or s.ndim != 2 or s.dtype != audio.DTYPES[bits]:
        raise UnsupportedInputError(f"cannot code a clip of {getattr(s, 'dtype', type(s).__name__)} samples of shape "
                                    f"{getattr(s, 'shape', '?')} as subtype {meta.get('subtype')!r}; pass samples "
                                    "(frames, channels) of int8, int16 or int32 for 8-, 16- or 24-bit subtypes")
    if not 1 <= s.shape[1] <= MAX_CHANNELS or s.size > audio.MAX_SAMPLES:
        raise UnsupportedInputError(f"cannot code a clip of shape {s.shape}: 1..{MAX_CHANNELS} channels and at "
                                    f"most {audio.MAX_SAMPLES} samples")
    problem = _audio_meta_problem(meta, s.shape[1])
    if problem:
        raise UnsupportedInputError(f"cannot code this clip: {problem}")
    if bits == 24 and s.size and (s.min() < -(1 << 23) or s.max() >= 1 << 23):
        raise UnsupportedInputError("24-bit samples must lie in [-8388608, 8388607]")
    return bits


def compress_audio(clip: audio.Audio, *, budget: int | None = None, model: str | None = None,
                   seed: int = DEFAULT_SEED, progress: Callable[[int, int], None] | None = None,
                   fallback: bool = True, offsets: bool | None = None, channel_transform: bool = True
                   ) -> tuple[bytes, Report]:
    """Code a clip's samples (frames, channels) with the audio model; returns the .ardm bytes and a Report.

    `budget` is the number of network calls per net-coded stage of each segment (audio_codec.py).
    With `fallback` (the default) the file stores the samples raw or deflated instead whenever that is
    smaller than the model's code; a clip of no frames is always stored (there is nothing to code).
    `offsets`: scale offsets per network step, as for compress_image. `channel_transform`: a clip of 2
    or more channels may code channels 1.. as differences from channel 0, chosen per segment
    (audio_codec.CHANNEL_MODES; format version 3); False codes every channel as it is. A 24-bit clip's
    low bytes take, per segment, the shorter of lowbyte.LOW_MODES (format version 4).
    """
    m = _model(model, "audio")
    budget = m.default_budget if budget is None else budget
    if budget < 1:
        raise UnsupportedInputError(f"budget must be at least 1 network call (got {budget})")
    bits = _check_clip(clip)
    samples = clip.samples
    frames, channels = samples.shape
    total, predicted = audio_codec.schedule_cost(m, frames, channels, bits, budget)
    tries = _offset_tries(m, offsets, total, samples.size) if samples.size else [False]
    tick = _StepCounter(total, progress)
    transform = channel_transform and channels > 1 and frames > 0
    low = bits == 24 and frames > 0
    use, words, model_bits = _smallest_coding(
        tries, lambda ways: audio_codec.encode_audio_ways(m, samples, bits, budget, seed, ways, tick, transform, low))
    tick.finish()
    header = container.Header(media="audio", method="ardm", arithmetic=m.arithmetic, model_id=m.id,
                              model_hash=m.hash_prefix, budget=budget, seed=seed, shape=_audio_shape(samples),
                              meta=_stored_audio_meta(clip.meta), content_hash=container.content_hash(samples),
                              offsets=use, channel_transform=transform, low_modes=low)
    stored = _stored_payloads(_sample_bytes(samples, bits))
    candidates = stored[:1] if not samples.size else [("ardm", words), *(stored if fallback else [])]
    blob, method, words = _pack_smallest(header, candidates)
    # the decoder's calls: fewer than scheduled where a segment of a dyadic-split model keeps its levels whole
    return blob, Report(len(blob), 32 * len(words), model_bits, predicted, samples.size, tick.done, method)


def decompress_audio(blob: bytes, *, progress: Callable[[int, int], None] | None = None) -> audio.Audio:
    """Inverse of compress_audio: the samples and meta (audio.write_audio writes the file); verifies the
    content checksum."""
    header, words = container.unpack(blob)
    if header.media != "audio":
        raise UnsupportedInputError(f"file holds {header.media}, not audio")
    return _decode_audio(header, words, progress)


def _decode_audio(header: container.Header, words: np.ndarray,
                  progress: Callable[[int, int], None] | None) -> audio.Audio:
    meta = _audio_meta(header)
    frames, channels = audio_dims(header.shape)
    bits = audio.BITS[meta["subtype"]]
    if header.method in container.STORED_METHODS:
        data = _unstore(header.method, words, frames * channels * (bits // 8))
        samples = _samples_of_bytes(data, frames, channels, bits)
    else:
        m = _file_model(header)
        total, _ = audio_codec.schedule_cost(m, frames, channels, bits, header.budget)
        dec, tick = Decoder(words), _StepCounter(total, progress)
        samples = audio_codec.decode_audio(m, frames, channels, bits, header.budget, header.seed, dec, tick,
                                           header.offsets, header.channel_transform, header.low_modes)
        dec.finish()
        tick.finish()
    if container.content_hash(samples) != header.content_hash:
        raise ChecksumMismatchError("decoded samples do not match the checksum of the original: "
                                    "the file is corrupt or this machine computes the model differently")
    return audio.Audio(samples, meta)


def _write_audio(clip: audio.Audio) -> bytes:
    """The audio file of a decoded clip; a meta that libsndfile cannot write is a corrupt file."""
    try:
        return audio.write_audio(clip)
    except (soundfile.SoundFileError, ValueError, TypeError) as e:
        raise CorruptError(f"file is corrupt: cannot write its {clip.meta['format']} {clip.meta['subtype']} "
                           f"audio ({e})") from None


# ------------------------------------------------------------------------------- either media
def read_info(blob: bytes) -> container.Header:
    """The header of an .ardm file with its meta completed, for `ardmzip info`: for images mode,
    format and size; for audio format, subtype, samplerate and channels (checked as a decoder would)."""
    h = container.read_header(blob)
    if h.media == "audio":
        return dataclasses.replace(h, meta=_audio_meta(h))
    _check_header(h)  # as the decoder does (a 1-D "image" has no implied meta)
    return dataclasses.replace(h, meta=_full_meta(h.meta, h.shape))


def read_media(data: bytes, name: str = "<input>") -> media.Image | audio.Audio:
    """What a file's bytes hold, ready to code: an Audio for WAV/FLAC/AIFF bytes, else an Image."""
    return audio.read_audio(data, name) if audio.looks_like_audio(data) else media.read_image(data, name)


def compress_media(item: media.Image | audio.Audio, **kw) -> tuple[bytes, Report]:
    """compress_audio for an Audio, compress_image for an Image."""
    return compress_audio(item, **kw) if isinstance(item, audio.Audio) else compress_image(item, **kw)


def decode(blob: bytes, *, progress: Callable[[int, int], None] | None = None) -> media.Image | audio.Audio:
    """The Image or Audio an .ardm file holds, its content checksum verified."""
    header, words = container.unpack(blob)
    if header.media == "audio":
        return _decode_audio(header, words, progress)
    return _decode_image(header, words, progress)


def compress(data: bytes | np.ndarray, *, name: str = "<input>", **kw) -> bytes:
    """Image file bytes (PNG, BMP, TIFF, …), audio file bytes (WAV, FLAC, AIFF) or a uint8 image array
    -> .ardm bytes."""
    item = media.image_from_array(data) if isinstance(data, np.ndarray) else read_media(data, name)
    return compress_media(item, **kw)[0]


def decompress(blob: bytes, **kw) -> bytes:
    """.ardm bytes -> the file: an image in its original format (PNG where it cannot be written
    losslessly), or audio in its original container type and subtype."""
    item = decode(blob, **kw)
    return _write_audio(item) if isinstance(item, audio.Audio) else media.write_image(item)


def decompress_array(blob: bytes, **kw) -> np.ndarray:
    """An image's pixels ((H, W) / (H, W, C) uint8) or a clip's samples ((frames, channels) int8 /
    int16 / int32)."""
    item = decode(blob, **kw)
    return item.samples if isinstance(item, audio.Audio) else media.image_to_array(item)
