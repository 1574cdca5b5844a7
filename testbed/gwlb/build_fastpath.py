"""Build the appliance's compiled data path (fastpath/appliance_fastpath.c) with gcc.

The binary is named after the source's digest, in a folder of this Python environment
(<sys.prefix>/lib/elb-testbed, or $TESTBED_FASTPATH_DIR): each checkout or virtual
environment has its own, and an appliance never runs a binary built from other source (it
falls back to the Python data path and says so). scripts/provision runs this; running it
again does nothing when the binary is there (--force rebuilds).

    python -m testbed.gwlb.build_fastpath          # prints the binary's path
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "fastpath" / "appliance_fastpath.c"
BINARY_STEM = "appliance-fastpath"
DIR_ENV = "TESTBED_FASTPATH_DIR"
CFLAGS = ("-O2", "-Wall", "-Wextra", "-std=gnu11")


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


def build(force: bool = False) -> Path:
    """Build the binary unless it is there; remove binaries of other sources in the folder."""
    path = binary_path()
    if force or not os.access(path, os.X_OK):
        path.parent.mkdir(parents=True, exist_ok=True)
        # Compile aside and rename: an appliance starting meanwhile sees all or nothing.
        fd, tmp = tempfile.mkstemp(prefix=f".{BINARY_STEM}-", dir=path.parent)
        os.close(fd)
        try:
            compile_to(Path(tmp))
            os.chmod(tmp, 0o755)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    for old in path.parent.glob(f"{BINARY_STEM}-*"):
        if old != path and not old.name.startswith("."):
            old.unlink(missing_ok=True)
    return path


def main(argv: list[str] | None = None) -> int:
    """Build (if needed) and print the binary's path."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--force", action="store_true", help="rebuild even if it is there")
    a = ap.parse_args(argv)
    try:
        print(build(a.force))
    except (RuntimeError, OSError) as exc:
        print(f"build_fastpath: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
