"""ardmzip command line: parse, call the API, report. Conventions follow zstd/gzip: inputs are kept,
outputs are never overwritten without -f, `-` is stdin, -c writes to stdout, errors are one line on
stderr, exit status 1 if any file failed (the others are still processed), 2 for usage errors.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

import click

from . import api
from .errors import ArdmError
from .registry import list_models, manifest

SUFFIX = ".ardm"


class Failed(Exception):
    """A per-file failure already worded for the user."""


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    p = Path(name)
    if p.is_dir():
        raise Failed(f"{name}: is a directory")
    try:
        return p.read_bytes()
    except OSError as e:
        raise Failed(f"{name}: {e.strerror or e}") from None


def _write_atomic(target: Path, data: bytes, force: bool) -> None:
    """Write to a temporary file in the target folder, then rename: no partial output on failure."""
    if target.exists() and not force:
        raise Failed(f"{target}: already exists; use -f to overwrite")
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise Failed(f"{target}: cannot write to {folder}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _target(src: str, out: str | None, default: str | None, stdout: bool, force: bool) -> Path | None:
    """Where the output goes (None: stdout); refuses an existing file before any work is done."""
    if stdout or (src == "-" and out is None):
        return None
    target = Path(out if out is not None else default)
    if target.exists() and not force:
        raise Failed(f"{target}: already exists; use -f to overwrite")
    return target


def _emit(data: bytes, target: Path | None, force: bool) -> str:
    if target is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return "<stdout>"
    _write_atomic(target, data, force)
    return str(target)


def _progress(label: str, quiet: bool) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A click progress bar on stderr, created on the first tick (it knows the total only then)."""
    state: dict = {}

    def tick(done: int, total: int) -> None:
        if quiet:
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


def _run_each(files: tuple[str, ...], out: str | None, work: Callable[[str], str], quiet: bool) -> None:
    if out is not None and len(files) > 1:
        raise click.UsageError("-o/--output takes a single input file")
    failed = False
    for name in files:
        try:
            msg = work(name)
            if not quiet and msg:
                click.echo(msg, err=True)
        except (Failed, ArdmError) as e:
            text = str(e) if isinstance(e, Failed) else f"{name}: {e}"
            click.echo(f"ardmzip: {text}", err=True)
            failed = True
        except KeyboardInterrupt:
            click.echo("ardmzip: interrupted; no output written", err=True)
            sys.exit(130)
    sys.exit(1 if failed else 0)


def _with_written_format(path: str, meta: dict) -> str:
    """photo.jpg -> photo.png when the original format could not be written back losslessly."""
    if "source_format" not in meta:
        return path
    p = Path(path)
    return str(p.with_suffix("." + meta["format"].lower()))


_common = [
    click.option("-o", "--output", "out", metavar="OUT", help="Output file (one input only)."),
    click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs; allow binary output to a terminal."),
    click.option("-c", "--stdout", "stdout", is_flag=True, help="Write to standard output, keep nothing on disk."),
    click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary lines."),
]


def common(f):
    for opt in reversed(_common):
        f = opt(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ardmzip")
def main() -> None:
    """Neural lossless compression of images with Autoregressive Diffusion Models.

    \b
      ardmzip compress photo.png          writes photo.png.ardm (keeps photo.png)
      ardmzip decompress photo.png.ardm   writes photo.png (refuses to overwrite without -f)
      ardmzip info photo.png.ardm         model, budget, shape, size, bits per dimension
    """


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("-b", "--budget", type=click.IntRange(min=1), default=None,
              help="Network calls per plane (steps of the schedule); more is smaller and slower. "
                   "Default: the model's, chosen on validation data.")
@click.option("-m", "--model", "model", default=None, metavar="ID",
              help="Model id (see `ardmzip models`); default: the default image model.")
@common
def compress(files, budget, model, out, force, stdout, quiet):
    """Compress image FILES (PNG, BMP, TIFF, PPM, GIF, WebP; `-` = stdin) to FILE.ardm."""

    def work(name: str) -> str:
        target = _target(name, out, name + SUFFIX, stdout, force)
        if target is None and sys.stdout.isatty() and not force:
            raise Failed("refusing to write compressed data to a terminal (use -o FILE or redirect; -f to force)")
        data = _read(name)
        tick, close = _progress(f"compress {name}", quiet or stdout)
        try:
            blob, rep = api.compress_image(api.media.read_image(data, name), budget=budget, model=model,
                                           progress=tick)
        finally:
            close()
        where = _emit(blob, target, force)
        return f"{name} -> {where}: {len(data)} -> {len(blob)} bytes, {rep.bpd:.3f} bits/dim, {rep.steps} network calls"

    _run_each(files, out, work, quiet)


@main.command()
@click.argument("files", nargs=-1, required=True)
@common
def decompress(files, out, force, stdout, quiet):
    """Decompress FILE.ardm to FILE (the original image format; PNG if that format is lossy)."""

    def work(name: str) -> str:
        if name != "-" and out is None and not stdout and not name.endswith(SUFFIX):
            raise Failed(f"{name}: unknown suffix (expected {SUFFIX}); use -o to name the output")
        blob = _read(name)
        default = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else None
        default = default and _with_written_format(default, api.read_info(blob).meta)
        target = _target(name, out, default, stdout, force)
        tick, close = _progress(f"decompress {name}", quiet or stdout)
        try:
            data = api.decompress(blob, progress=tick)
        finally:
            close()
        where = _emit(data, target, force)
        return f"{name} -> {where}"

    _run_each(files, out, work, quiet)


@main.command("test")
@click.argument("files", nargs=-1, required=True)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary lines.")
def test_(files, quiet):
    """Decode .ardm FILES and verify the pixel checksum, writing nothing."""

    def work(name: str) -> str:
        blob = _read(name)
        tick, close = _progress(f"test {name}", quiet)
        try:
            api.decompress_image(blob, progress=tick)
        finally:
            close()
        return f"{name}: OK"

    _run_each(files, None, work, quiet)


@main.command()
@click.argument("files", nargs=-1, required=True)
def info(files):
    """Show model, budget, media, shape, size and bits per dimension of .ardm FILES."""

    def work(name: str) -> str:
        blob = _read(name)
        h = api.read_info(blob)
        dims = 1
        for s in h.shape:
            dims *= s
        how = (f"model {h.model_id} [{h.model_hash.hex()}], budget {h.budget}, arithmetic {h.arithmetic}"
               if h.method == "ardm" else f"stored {h.method} (smaller than the model's code)")
        click.echo(f"{name}: {h.media} {h.meta.get('mode', '')} {'x'.join(map(str, h.shape))} "
                   f"({h.meta.get('format', '?')}), {how}, {len(blob)} bytes, {8 * len(blob) / dims:.3f} bits/dim"
                   + (f"; {note}" if (note := api.media.preserved_note(h.meta)) else ""))
        return ""

    _run_each(files, None, work, quiet=True)


@main.command()
def models():
    """List the shipped models."""
    defaults = manifest().get("defaults", {})
    for mid, e in list_models().items():
        mark = " (default)" if defaults.get(e["media"]) == mid else ""
        v = e.get("validation", {})
        click.echo(f"{mid}{mark}: {e['media']}, {e['kind']}, {e['parameters']} parameters, "
                   f"default budget {e['default_budget']}, validation bound {v.get('bound_bpd_32x32', '?')} bpd")


if __name__ == "__main__":
    main()
