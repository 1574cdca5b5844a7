"""python -m testbed.lab.hosttools TOOL ARGS...: run one host tool (bin/hosttool calls this)."""

from __future__ import annotations

import sys

from testbed.lab.hosttools import aws_cli, cfn_init, cfn_signal, simple


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m testbed.lab.hosttools TOOL [ARGS...]", file=sys.stderr)
        return 2
    tool, args = argv[0], argv[1:]
    if tool == "cfn-signal":
        return cfn_signal.main(args)
    if tool == "cfn-init":
        return cfn_init.main(args)
    if tool == "cfn-get-metadata":
        return simple.get_metadata(args)
    if tool == "cfn-hup":
        return simple.hup(args)
    if tool == "aws":
        return aws_cli.main(args)
    return simple.shim(tool)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
