"""ardmzip command line: parse, call the API, report. Conventions follow zstd/gzip: inputs are kept unless
--rm, outputs are never overwritten without -f, `-` is stdin, -c writes to stdout, errors are one line on
stderr, exit status 1 if any file failed (the others are still processed), 2 for usage errors.
"""
from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import click

from .errors import ArdmError

SUFFIX = ".ardm"


def _api():
    """The API, imported on first use, so that --help and usage errors answer without loading torch."""
    from . import api
    return api


class Failed(Exception):
    """A per-file failure already worded for the user."""


_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


class _Cli(click.Group):
    """click.Group whose usage errors are one line on stderr with exit status 2, like gzip's."""

    def main(self, args=None, prog_name=None, standalone_mode=True, **extra):
        prog_name = prog_name or "ardmzip"
        if not standalone_mode:
            return super().main(args, prog_name, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, standalone_mode=False, **extra)
        except _NO_ARGS_IS_HELP as e:  # plain `ardmzip`: the help, as click shows it
            e.show()
            sys.exit(e.exit_code)
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx else prog_name
            message = e.format_message().rstrip(".")
            if message[:1].isupper() and not message[1:2].isupper():
                message = message[0].lower() + message[1:]
            click.echo(f"{where}: {message} (see '{where} --help')", err=True)
            sys.exit(2)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.Abort:
            _exit_interrupted(f"{prog_name}: interrupted")
        sys.exit(code if isinstance(code, int) else 0)


def _exit_interrupted(message: str) -> None:
    """Exit 130 after an interrupt, once the temporary files are gone.

    Not `sys.exit(130)`: run as `python -m ardmzip`, CPython (3.11) ends the process by SIGINT
    (status -2) whatever exit code was asked for when the interrupt landed inside code run from a
    source string (`exec("...")`, as some libraries do); a CI run caught it once. Output is flushed
    first; there is nothing else to finalise: the interrupted work has already removed what it wrote.
    """
    click.echo(message, err=True)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed or broken stream: nothing more can be said on it
            pass
    os._exit(130)


def _shown(name: str) -> str:
    return "<stdin>" if name == "-" else name


def _check_input(name: str) -> None:
    """Refuse a directory or a missing input before anything else is looked at."""
    if name != "-" and Path(name).is_dir():
        raise Failed(f"{name}: is a directory")
    if name != "-" and not Path(name).exists():
        raise Failed(f"{name}: No such file or directory")


def _read(name: str) -> bytes:
    _check_input(name)
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as e:
        raise Failed(f"{name}: {e.strerror or e}") from None


def _file_mode(src: str) -> tuple[int, tuple[int, int] | None]:
    """Permission bits and (atime, mtime) in ns that an output takes from its input, as gzip does; for
    stdin, the umask's default and no times."""
    if src != "-":
        st = os.stat(src)
        return st.st_mode & 0o777, (st.st_atime_ns, st.st_mtime_ns)
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask, None


def _write_atomic(target: Path, data: bytes, force: bool, src: str = "-") -> None:
    """Write to a temporary file in the target folder, flush it to disk, then rename: a failure or
    Ctrl-C leaves no partial output and any existing file untouched. The output gets the input's
    permission bits and times."""
    if target.exists() and not force:
        raise Failed(f"{target}: already exists; use -f to overwrite")
    folder = target.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise Failed(f"{target}: cannot write to {folder}: {e.strerror or e}") from None
    try:
        mode, times = _file_mode(src)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        if times:
            os.utime(tmp, ns=times)
        os.replace(tmp, target)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise Failed(f"{target}: cannot write: {e.strerror or e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _target(src: str, out: str | None, default: str | None, stdout: bool, force: bool) -> Path | None:
    """Where the output goes (None: stdout). Refuses, before any work is done, an existing file (without
    -f), a directory, a folder that cannot be written, and the input itself."""
    if stdout or (src == "-" and out is None):
        return None
    target = Path(out if out is not None else default)
    if target.is_dir():
        raise Failed(f"{target}: is a directory; name an output file with -o")
    if target.exists() and not force:
        raise Failed(f"{target}: already exists; use -f to overwrite")
    folder = target.parent
    if not folder.is_dir():
        why = "is not a folder" if folder.exists() else "does not exist"
        raise Failed(f"{target}: cannot write: {folder} {why}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise Failed(f"{target}: cannot write to {folder}: permission denied")
    if src != "-" and target.exists() and os.path.samefile(src, target):
        raise Failed(f"{target}: is the input file itself; choose another output")
    return target


def _emit(data: bytes, target: Path | None, force: bool, src: str) -> str:
    if target is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return "<stdout>"
    _write_atomic(target, data, force, src)
    return str(target)


def _remove_input(name: str) -> None:
    """--rm, once the output is complete on disk: unlink the input."""
    try:
        Path(name).unlink()
    except OSError as e:
        raise Failed(f"{name}: output written, but the input could not be removed: {e.strerror or e}") from None


def _progress(label: str, quiet: bool) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A progress bar on stderr when it is a terminal, created on the first tick (it knows the total only
    then); nothing otherwise, so that logs and pipes get only the one-line reports."""
    state: dict = {}
    show = not quiet and sys.stderr.isatty()

    def tick(done: int, total: int) -> None:
        if not show:
            return
        if "bar" not in state:
            state["bar"] = click.progressbar(length=total, label=label, file=sys.stderr,
                                             show_eta=True, show_pos=True)
            state["bar"].__enter__()
        state["bar"].update(done - state["bar"].pos)

    def close() -> None:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)

    return tick, close


def _failure(name: str, e: BaseException) -> str:
    """The one-line message of a per-file failure, naming the file once."""
    if isinstance(e, Failed):
        return str(e)
    if isinstance(e, ArdmError):
        text = str(e)
    elif isinstance(e, MemoryError):
        text = "out of memory"
    elif isinstance(e, OSError):
        text = e.strerror or str(e)
    else:  # a bug: still one line, and the other files still done
        text = f"internal error ({type(e).__name__}: {e}); please report this bug"
    text = " ".join(text.split())
    prefix = f"{_shown(name)}: "
    return text if text.startswith(prefix) else prefix + text


def _run_each(files: tuple[str, ...], work: Callable[[str], str], quiet: bool) -> None:
    failed = False
    for name in files:
        try:
            msg = work(name)
            if not quiet and msg:
                click.echo(msg, err=True)
        except KeyboardInterrupt:
            _exit_interrupted("ardmzip: interrupted; no partial output left")
        except BrokenPipeError:
            raise  # the reader of stdout went away: click exits quietly with status 1
        except Exception as e:  # one line per failed file, never a traceback; the other files go on
            click.echo(f"ardmzip: {_failure(name, e)}", err=True)
            failed = True
    sys.exit(1 if failed else 0)


def _check_usage(files: tuple[str, ...], out: str | None, stdout: bool, rm: bool, quiet: bool,
                 verbose: bool, test: bool = False) -> None:
    """Combinations of options that cannot be meant: a usage error (exit status 2) before any work."""
    problem = None
    if out is not None and len(files) > 1:
        problem = "-o/--output takes a single input file"
    elif out is not None and stdout:
        problem = "use either -o/--output or -c/--stdout"
    elif rm and stdout:
        problem = "--rm cannot be used with -c/--stdout (the input is kept when writing to standard output)"
    elif quiet and verbose:
        problem = "use either -q/--quiet or -v/--verbose"
    elif test and (out is not None or stdout or rm):
        problem = "-t/--test writes nothing: it cannot be used with -o, -c or --rm"
    if problem:
        raise click.UsageError(problem, click.get_current_context())


def _with_written_format(path: str, meta: dict) -> str:
    """photo.jpg -> photo.png when the original format could not be written back losslessly."""
    if "source_format" not in meta:
        return path
    p = Path(path)
    return str(p.with_suffix("." + meta["format"].lower()))


def _dims(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _rate(h, nbytes: int) -> str:
    """nbytes in bits per coded value: per subpixel ("bits/dim") for images, per sample for audio."""
    if h.media == "audio":
        frames, channels = _api().audio_dims(h.shape)
        n, unit = frames * channels, "bits/sample"
    else:
        n, unit = _dims(h.shape), "bits/dim"
    return f"{8 * nbytes / n:.3f} {unit}" if n else f"- {unit}"


def _same_content(a, b) -> bool:
    """Whether a decoded Image or Audio holds exactly the samples of the one that was coded."""
    if hasattr(a, "samples"):
        return (hasattr(b, "samples") and a.samples.dtype == b.samples.dtype
                and a.samples.shape == b.samples.shape and (a.samples == b.samples).all())
    return len(a.planes) == len(b.planes) and all(
        x.shape == y.shape and (x == y).all() for x, y in zip(a.planes, b.planes))


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f}%" if whole else "-"


def _how(h, detail: bool = False) -> str:
    """How a file is coded, from its header: model and budget, or the stored fallback."""
    if h.method != "ardm":
        return f"stored {h.method} (smaller than the model's code)"
    if detail:
        return (f"model {h.model_id} [{h.model_hash.hex()}], budget {h.budget}, arithmetic {h.arithmetic}"
                + (", scale offsets" if h.offsets else "")
                + (", adapted steps" if h.adapt else "") + (" per phase" if h.phases else "")
                + (", channel transform" if h.channel_transform else "")
                + (", low-byte models" if h.low_modes else ""))
    return f"model {h.model_id} budget {h.budget}"


def _rm_loses(meta: dict) -> str:
    """What deleting the input would lose beyond the pixels or samples ("" when nothing): --rm then keeps it."""
    lost = [f"the {meta['source_format']} file (decompression gives a {meta['format']} of the same pixels)"
            ] if "source_format" in meta else []
    lost += [str(d) for d in meta.get("dropped") or []]
    return ", ".join(lost)


_OPTIONS = {
    "out": click.option("-o", "--output", "out", metavar="OUT", help="Output file (one input only)."),
    "force": click.option("-f", "--force", is_flag=True,
                          help="Overwrite existing outputs; allow compressed output to a terminal."),
    "stdout": click.option("-c", "--stdout", "stdout", is_flag=True,
                           help="Write to standard output, keep nothing on disk."),
    "rm": click.option("--rm", "rm", is_flag=True,
                       help="Remove each input once its output is written (compress: and decoded back "
                            "to the same pixels or samples). Never on failure, never for stdin; not with -c."),
    "quiet": click.option("-q", "--quiet", is_flag=True, help="No progress bar, summary lines or warnings."),
    "verbose": click.option("-v", "--verbose", is_flag=True,
                            help="Per file: sizes, ratio, bits per dimension or sample, model and budget, seconds."),
}


def _options(*names: str):
    def add(f):
        for name in reversed(names):
            f = _OPTIONS[name](f)
        return f
    return add


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ardmzip")
def main() -> None:
    """Neural lossless compression of images and audio clips with Autoregressive Diffusion Models.

    \b
      ardmzip compress photo.png          writes photo.png.ardm (keeps photo.png)
      ardmzip compress clip.wav           writes clip.wav.ardm (WAV, FLAC, AIFF: 8/16/24-bit PCM)
      ardmzip decompress photo.png.ardm   writes photo.png (refuses to overwrite without -f)
      ardmzip test photo.png.ardm         decodes and verifies, writes nothing
      ardmzip info photo.png.ardm         model, budget, shape, size, bits per dimension or sample

    Exit status: 0 if every file succeeded, 1 if any failed (the others are still done), 2 for a
    usage error, 130 if interrupted (Ctrl-C or SIGTERM: no partial output is left). See
    `ardmzip COMMAND --help` for each command's options.
    """
    signal.signal(signal.SIGTERM, _terminated)


def _terminated(signum, frame) -> None:
    """SIGTERM takes the same way out as Ctrl-C: temporary files removed, existing files untouched."""
    raise KeyboardInterrupt


def _level_options(f):
    """-1 … -9: compression levels, fast to small (zstd/gzip style), mapped to step budgets."""
    for level in range(9, 0, -1):
        f = click.option(f"-{level}", "level", flag_value=level, help=LEVEL_HELP[level])(f)
    return f


# budgets of the levels for a model whose default budget is d (d = 25: 1 2 5 10 15 25 50 100 200)
LEVEL_HELP = {1: "Level 1, fastest: d/25 network calls, where d is the model's default budget.",
              2: "Level 2: d/10.", 3: "Level 3: d/5.", 4: "Level 4: 2d/5.", 5: "Level 5: 3d/5.",
              6: "Level 6: d (the same as giving no level or budget).", 7: "Level 7: 2d.", 8: "Level 8: 4d.",
              9: "Level 9, smallest and slowest: 8d."}


@main.command(short_help="Compress images and audio clips to FILE.ardm.")
@click.argument("files", nargs=-1, required=True)
@click.option("-b", "--budget", type=click.IntRange(min=1), default=None,
              help="Network calls per image plane, or per stage of each audio segment (steps of the "
                   "schedule); more is smaller and slower. Default: the model's, chosen on validation data. "
                   "Models with a coarse-to-fine order take at least one call per group of it (7; 21 for an "
                   "RGB image with quincunx-grb; 18 and 6 where the model codes the first group without the "
                   "net, `ardmzip models`: lattice).")
@_level_options
@click.option("-m", "--model", "model", default=None, metavar="ID",
              help="Model id (see `ardmzip models`); default: the default model for the input's media "
                   "(image or audio).")
@_options("out", "force", "stdout", "rm", "quiet", "verbose")
def compress(files, budget, level, model, out, force, stdout, rm, quiet, verbose):
    """Compress images and audio clips FILES (`-` = stdin) to FILE.ardm: images PNG, BMP, TIFF, PPM, GIF,
    WebP, JPEG; audio WAV, FLAC, AIFF with 8-, 16- or 24-bit PCM samples."""
    _check_usage(files, out, stdout, rm, quiet, verbose)
    if level is not None and budget is not None:
        raise click.UsageError("use either a level -1 … -9 or -b/--budget", click.get_current_context())
    api = _api()

    def work(name: str) -> str:
        t0 = time.perf_counter()
        _check_input(name)
        target = _target(name, out, name + SUFFIX, stdout, force)
        if target is None and sys.stdout.isatty() and not force:
            raise Failed(f"{_shown(name)}: refusing to write compressed data to a terminal "
                         f"(use -o FILE or redirect; -f to force)")
        data = _read(name)
        item = api.read_media(data, _shown(name))
        kind = "audio" if isinstance(item, api.audio.Audio) else "image"
        calls = budget if level is None else api.level_budget(level, model, kind)
        tick, close = _progress(f"compress {_shown(name)}", quiet or stdout)
        try:
            blob, rep = api.compress_media(item, budget=calls, model=model, progress=tick)
        finally:
            close()
        remove = rm and name != "-"
        if remove and not _same_content(api.decode(blob), item):  # decode the output first, as decompress will
            what = "samples" if kind == "audio" else "pixels"
            raise Failed(f"{name}: decoding the output does not give back the input's {what}; "
                         f"nothing written, input kept (please report this bug)")
        h = api.read_info(blob)
        kept = remove and _rm_loses(h.meta)
        where = _emit(blob, target, force, name)
        if remove and not kept:
            _remove_input(name)
        if kept and not quiet:
            click.echo(f"ardmzip: {name}: kept (--rm), as {SUFFIX} does not keep {kept}; "
                       f"delete it yourself if you do not need it", err=True)
        line = f"{_shown(name)} -> {where}: {len(data)} -> {len(blob)} bytes"
        if not verbose:
            return f"{line}, {_rate(h, len(blob))}, {rep.steps} network calls"
        return (f"{line} ({_percent(len(blob), len(data))}), {_rate(h, len(blob))}, {_how(h)}, "
                f"{rep.steps} network calls, {time.perf_counter() - t0:.2f} s"
                + (", verified, input removed" if remove and not kept else ""))

    _run_each(files, work, quiet)


def _test_one(api, name: str, quiet: bool, verbose: bool) -> str:
    """Decode one .ardm file and verify the content checksum, writing nothing."""
    t0 = time.perf_counter()
    blob = _read(name)
    tick, close = _progress(f"test {_shown(name)}", quiet)
    try:
        api.decode(blob, progress=tick)
    finally:
        close()
    if not verbose:
        return f"{_shown(name)}: OK"
    h = api.read_info(blob)
    return (f"{_shown(name)}: OK, {len(blob)} bytes, {_rate(h, len(blob))}, "
            f"{_how(h)}, {time.perf_counter() - t0:.2f} s")


@main.command(short_help="Decompress FILE.ardm to FILE.")
@click.argument("files", nargs=-1, required=True)
@click.option("-t", "--test", "test", is_flag=True,
              help="Decode and verify the content checksum, write nothing (same as `ardmzip test`).")
@_options("out", "force", "stdout", "rm", "quiet", "verbose")
def decompress(files, test, out, force, stdout, rm, quiet, verbose):
    """Decompress FILE.ardm (`-` = stdin) to FILE: the original image format, or PNG if that format is
    lossy (photo.jpg.ardm -> photo.png); audio in its original container type, subtype, sample rate
    and channels."""
    _check_usage(files, out, stdout, rm, quiet, verbose, test)
    api = _api()
    if test:
        return _run_each(files, lambda name: _test_one(api, name, quiet, verbose), quiet)

    def work(name: str) -> str:
        t0 = time.perf_counter()
        if name != "-" and out is None and not stdout and not name.endswith(SUFFIX):
            raise Failed(f"{name}: unknown suffix (expected {SUFFIX}); use -o to name the output")
        blob = _read(name)
        h = api.read_info(blob)
        default = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else None
        default = default and _with_written_format(default, h.meta)
        target = _target(name, out, default, stdout, force)
        tick, close = _progress(f"decompress {_shown(name)}", quiet or stdout)
        try:
            data = api.decompress(blob, progress=tick)
        finally:
            close()
        where = _emit(data, target, force, name)
        remove = rm and name != "-"
        if remove:
            _remove_input(name)
        if not verbose:
            return f"{_shown(name)} -> {where}"
        return (f"{_shown(name)} -> {where}: {len(blob)} -> {len(data)} bytes ({_percent(len(blob), len(data))}), "
                f"{_rate(h, len(blob))}, {_how(h)}, {time.perf_counter() - t0:.2f} s"
                + (", input removed" if remove else ""))

    _run_each(files, work, quiet)


@main.command("test", short_help="Decode .ardm files and verify them, writing nothing.")
@click.argument("files", nargs=-1, required=True)
@_options("quiet", "verbose")
def test_(files, quiet, verbose):
    """Decode .ardm FILES (`-` = stdin) and verify the content checksum, writing nothing (also
    `ardmzip decompress -t`)."""
    _check_usage(files, None, False, False, quiet, verbose)
    api = _api()
    _run_each(files, lambda name: _test_one(api, name, quiet, verbose), quiet)


@main.command(short_help="Show what .ardm files hold.")
@click.argument("files", nargs=-1, required=True)
def info(files):
    """Show model, budget, media, shape, size and bits per dimension (images) or per sample (audio:
    frames, channels, sample rate, bits) of .ardm FILES, and what of the original's metadata they do not
    keep."""
    api = _api()

    def work(name: str) -> str:
        blob = _read(name)
        h = api.read_info(blob)
        if h.media == "audio":
            frames, channels = api.audio_dims(h.shape)
            what = (f"audio {h.meta['format']} {h.meta['subtype']}, {frames} frames x {channels} channels, "
                    f"{h.meta['samplerate']} Hz, {api.audio.BITS[h.meta['subtype']]} bits")
        else:
            what = f"{h.media} {h.meta.get('mode', '')} {'x'.join(map(str, h.shape))} ({h.meta.get('format', '?')})"
        click.echo(f"{_shown(name)}: {what}, {_how(h, detail=True)}, {len(blob)} bytes, {_rate(h, len(blob))}"
                   + (f"; {note}" if (note := api.media.preserved_note(h.meta)) else ""))
        return ""

    _run_each(files, work, quiet=True)


@main.command(short_help="List the shipped models.")
def models():
    """List the shipped models, image and audio: id, media, kind, parameters, default budget, validation
    bound (bits per dimension on 32×32 crops, or bits per sample)."""
    from .registry import list_models, manifest

    defaults = manifest().get("defaults", {})
    for mid, e in list_models().items():
        mark = " (default)" if defaults.get(e["media"]) == mid else ""
        v = e.get("validation", {})
        bound = (f"{v.get('bound_bits_per_sample', '?')} bits/sample" if e["media"] == "audio"
                 else f"{v.get('bound_bpd_32x32', '?')} bpd")
        click.echo(f"{mid}{mark}: {e['media']}, {e['kind']}, {e['parameters']} parameters, "
                   f"default budget {e['default_budget']}, validation bound {bound}")


if __name__ == "__main__":
    main()
