"""An owner of a lab for test_owner.py, run as its own process:

    python owner_program.py MODE NAME READY_FILE

Brings the default template up as lab NAME (owned by this process), writes READY_FILE, then
reads one line from stdin (it blocks there until the test writes, closes stdin or signals
it) and ends as MODE says:

  hold   Lab.up; when stdin gives a line, leave the block normally
  raise  Lab.up; when stdin gives a line, raise inside the block
  exit   start_lab without a teardown; when stdin gives a line, exit 0 (the holder alone
         notices that its owner is gone)

Prints "finally" when its outermost `finally` runs (it does not on kill -9).
"""

from __future__ import annotations

import sys
from pathlib import Path

from testbed.lab.api import Lab, start_lab
from testbed.paths import TEMPLATES

DEFAULT = str(TEMPLATES / "default.yaml")


def main() -> int:
    mode, name, ready = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    try:
        if mode == "exit":
            start_lab(DEFAULT, name=name)
            ready.write_text("up")
            sys.stdin.readline()
            return 0
        with Lab.up(DEFAULT, name=name):
            ready.write_text("up")
            sys.stdin.readline()
            if mode == "raise":
                raise RuntimeError("the owner's own error")
        return 0
    finally:
        print("finally", flush=True)


if __name__ == "__main__":
    sys.exit(main())
