"""Build the appliance's compiled data paths: the TC-BPF one (fastpath/appliance_bpf.c with
clang into a BPF object, and its loader fastpath/appliance_bpf_loader.c with gcc and libbpf)
and the userspace one (fastpath/appliance_fastpath.c with gcc).

Each file is named after the digest of its sources (and flags), in a folder of this Python
environment (<sys.prefix>/lib/elb-testbed, or $TESTBED_FASTPATH_DIR): each checkout or
virtual environment has its own, and an appliance never runs a binary built from other
source (it falls back to the next data path and says so). scripts/provision runs this;
running it again does nothing when the files are there (--force rebuilds). Without clang or
libbpf's headers only the userspace one is built (and said so): appliances then run it.

    python -m testbed.gwlb.build_fastpath          # prints the files' paths
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from pathlib import Path

FASTPATH = Path(__file__).resolve().parent / "fastpath"
SOURCE = FASTPATH / "appliance_fastpath.c"
BINARY_STEM = "appliance-fastpath"
DIR_ENV = "TESTBED_FASTPATH_DIR"
CFLAGS = ("-O2", "-Wall", "-Wextra", "-std=gnu11")
# The TC-BPF data path: the programs, their loader and the header both include.
BPF_PROGRAM = FASTPATH / "appliance_bpf.c"
BPF_LOADER = FASTPATH / "appliance_bpf_loader.c"
BPF_SOURCES = (BPF_PROGRAM, BPF_LOADER, FASTPATH / "appliance_bpf.h")
BPF_STEM = "appliance-bpf"
CLANGS = ("clang", "clang-14")  # Debian 12 installs clang-14 without the plain name
BPF_CFLAGS = ("-O2", "-g", "-target", "bpf", "-Wall")
LOADER_LIBS = ("-lbpf",)
LIBBPF_HEADER = Path("/usr/include/bpf/libbpf.h")


def source_digest(source: Path = SOURCE) -> str:
    """The first 16 hex digits of the source's SHA-256 (and of the compiler flags)."""
    h = hashlib.sha256(source.read_bytes())
    h.update(" ".join(CFLAGS).encode())
    return h.hexdigest()[:16]


def binary_dir() -> Path:
    """Where binaries are built and looked for."""
    return Path(os.environ.get(DIR_ENV) or Path(sys.prefix) / "lib" / "elb-testbed")


def binary_path(source: Path = SOURCE) -> Path:
    """The binary built from this source."""
    return binary_dir() / f"{BINARY_STEM}-{source_digest(source)}"


def find() -> Path | None:
    """The binary for the installed source, if it was built; else None."""
    path = binary_path()
    return path if os.access(path, os.X_OK) else None


def compile_to(
    out: Path, source: Path = SOURCE, extra: tuple[str, ...] = (), cc: str = "gcc"
) -> None:
    """Compile `source` into `out` (RuntimeError with the compiler's words if it fails)."""
    if shutil.which(cc) is None:
        raise RuntimeError(f"{cc} not found: install gcc and libc6-dev (scripts/provision)")
    proc = subprocess.run(
        [cc, *CFLAGS, *extra, "-o", str(out), str(source)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{cc} failed on {source}:\n{proc.stderr.strip()}")


def _replace(path: Path, make: Callable[[Path], object], mode: int) -> None:
    """Make `path` aside and rename it: an appliance starting meanwhile sees all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        make(Path(tmp))
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def bpf_digest() -> str:
    """The first 16 hex digits of the SHA-256 of the BPF data path's sources and flags."""
    h = hashlib.sha256()
    for source in BPF_SOURCES:
        h.update(source.read_bytes())
    h.update(" ".join((*BPF_CFLAGS, *CFLAGS, *LOADER_LIBS)).encode())
    return h.hexdigest()[:16]


def bpf_paths() -> tuple[Path, Path]:
    """The BPF object and the loader built from the installed sources."""
    digest = bpf_digest()
    return (
        binary_dir() / f"{BPF_STEM}-{digest}.o",
        binary_dir() / f"{BPF_STEM}-loader-{digest}",
    )


def find_bpf() -> tuple[Path, Path] | None:
    """The BPF object and its loader for the installed sources, if both were built."""
    obj, loader = bpf_paths()
    return (obj, loader) if obj.is_file() and os.access(loader, os.X_OK) else None


def bpf_tools() -> tuple[str | None, str]:
    """The clang to build BPF with, or None and what is missing."""
    clang = next((c for c in CLANGS if shutil.which(c)), None)
    if clang is None:
        return None, "no clang (install clang-14: scripts/provision)"
    if not LIBBPF_HEADER.exists():
        return None, f"no {LIBBPF_HEADER} (install libbpf-dev: scripts/provision)"
    if shutil.which("gcc") is None:
        return None, "no gcc (scripts/provision)"
    return clang, ""


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed on {what}:\n{proc.stderr.strip()}")


def compile_bpf(obj: Path, loader: Path, clang: str) -> None:
    """Compile the programs into `obj` and the loader into `loader` (RuntimeError with the
    compiler's words if either fails)."""
    # clang's BPF target has no multiarch include path of its own: <asm/types.h> is there.
    multiarch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
    _run(
        [clang, *BPF_CFLAGS, f"-I/usr/include/{multiarch}", "-c", str(BPF_PROGRAM), "-o", str(obj)],
        str(BPF_PROGRAM),
    )
    _run(["gcc", *CFLAGS, "-o", str(loader), str(BPF_LOADER), *LOADER_LIBS], str(BPF_LOADER))


def build_bpf(force: bool = False) -> tuple[Path, Path]:
    """Build the BPF object and loader unless they are there (RuntimeError if the tools are
    missing or a compiler fails); remove those of other sources in the folder."""
    obj, loader = bpf_paths()
    if force or find_bpf() is None:
        clang, missing = bpf_tools()
        if clang is None:
            raise RuntimeError(f"the BPF data path cannot be built: {missing}")
        with tempfile.TemporaryDirectory() as tmp:
            built_obj, built_loader = Path(tmp) / "obj.o", Path(tmp) / "loader"
            compile_bpf(built_obj, built_loader, clang)
            _replace(obj, lambda p: shutil.copyfile(built_obj, p), 0o644)
            _replace(loader, lambda p: shutil.copyfile(built_loader, p), 0o755)
    for old in obj.parent.glob(f"{BPF_STEM}-*"):
        if old not in (obj, loader) and not old.name.startswith("."):
            old.unlink(missing_ok=True)
    return obj, loader


def build(force: bool = False) -> Path:
    """Build the binary unless it is there; remove binaries of other sources in the folder."""
    path = binary_path()
    if force or not os.access(path, os.X_OK):
        _replace(path, compile_to, 0o755)
    for old in path.parent.glob(f"{BINARY_STEM}-*"):
        if old != path and not old.name.startswith("."):
            old.unlink(missing_ok=True)
    return path


def main(argv: list[str] | None = None) -> int:
    """Build (if needed) and print the files' paths. Exit status 1 if a compiler failed;
    missing BPF tools are only said (the userspace data path then serves)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--force", action="store_true", help="rebuild even if it is there")
    a = ap.parse_args(argv)
    try:
        print(build(a.force))
    except (RuntimeError, OSError) as exc:
        print(f"build_fastpath: {exc}", file=sys.stderr)
        return 1
    if bpf_tools()[0] is None and find_bpf() is None:
        print(f"build_fastpath: BPF data path not built: {bpf_tools()[1]}", file=sys.stderr)
        return 0
    try:
        print(*build_bpf(a.force))
    except (RuntimeError, OSError) as exc:
        print(f"build_fastpath: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
