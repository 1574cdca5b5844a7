"""Entry point of a lab's controller process: `python -m testbed.controllers.run --port N`.

Starts os-ken (without osken-manager, which os-ken 4.x removed) with the lab application.
The plan and control socket come from $TESTBED_PLAN and $TESTBED_CONTROL_SOCK.
"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, configure logging, run the apps until killed."""
    ap = argparse.ArgumentParser(prog="testbed.controllers.run", description=__doc__)
    ap.add_argument("--port", type=int, required=True, help="OpenFlow TCP port to listen on")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on")
    ap.add_argument(
        "--app",
        action="append",
        default=None,
        help="os-ken app module (default: testbed.controllers.lab_app)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager

    cfg.CONF(
        args=["--ofp-tcp-listen-port", str(args.port), "--ofp-listen-host", args.host],
        project="os_ken",
    )
    AppManager.run_apps(args.app or ["testbed.controllers.lab_app"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
