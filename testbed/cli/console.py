"""testbed console: a web page showing running labs live (or an experiment's results)."""

from __future__ import annotations

import sys
import webbrowser
from typing import Any

from testbed.cli.common import subcommand
from testbed.errors import BadInput


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "console",
        cmd_console,
        "a web page drawing a running lab's VPC, target health, events, metrics and flows live",
        epilog="examples:\n"
        "  testbed console                       every running lab, http://127.0.0.1:8480/\n"
        "  testbed console nlb --open            only lab nlb; open it in the browser\n"
        "  testbed console nlb --allow-actions   the page can inject faults, register,\n"
        "                                        deregister targets and scale groups\n"
        "  testbed console nlb --snmp            graph SNMP interface rates too\n"
        "  testbed console --results results/failover/20261206-190628\n"
        "                                        replay an experiment with a time slider\n"
        "  curl -s localhost:8480/api/labs/nlb/status   = testbed status nlb --json\n"
        "  curl -s localhost:8480/api/labs/nlb/targets  = testbed targets nlb --json\n"
        "  curl -sN localhost:8480/api/labs/nlb/stream  live events, health, metrics (SSE)\n\n"
        "Read-only unless --allow-actions: without it every request other than GET gets\n"
        "403. Listens on 127.0.0.1 only unless --listen says otherwise (there is no login:\n"
        "whoever reaches the port sees the lab, and with --allow-actions can change it).\n"
        "The page, d3 and Chart.js are served from this machine (Debian's libjs-d3 and\n"
        "libjs-chart.js): it works offline. Ctrl-C stops the server; the labs go on.",
    )
    p.add_argument(
        "name", nargs="?", metavar="LAB", help="only this lab (default: every lab of this machine)"
    )
    p.add_argument("--port", type=int, default=8480, help="TCP port (default 8480)")
    p.add_argument("--listen", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--open", action="store_true", help="open the page in a web browser")
    p.add_argument(
        "--allow-actions",
        action="store_true",
        help="let the page inject faults, register/deregister targets, scale groups",
    )
    p.add_argument("--results", metavar="DIR", help="replay results/<experiment>/<timestamp>")
    p.add_argument(
        "--snmp",
        action="store_true",
        help="graph every host's SNMP interface rates too (the lab's pollers run in its hosts "
        "while a page is open; rows arrive every 10 s)",
    )


def cmd_console(args: Any) -> int:
    from aiohttp import web

    from testbed.console.data import LiveData
    from testbed.console.replay import check_results
    from testbed.console.server import make_app
    from testbed.vendor_js import missing_message, missing_vendor_files

    if not 0 < args.port < 65536:
        raise BadInput(f"--port {args.port}: not a TCP port")
    data = LiveData(args.name)
    if args.name:
        data.check(args.name)
    results = check_results(args.results) if args.results else None
    missing = missing_vendor_files()
    if missing:
        print(f"warning: {missing_message(missing)}; the page cannot draw", file=sys.stderr)
    app = make_app(data, allow_actions=args.allow_actions, results=results, snmp=args.snmp)
    host = "localhost" if args.listen in ("127.0.0.1", "0.0.0.0", "::") else args.listen
    url = f"http://{host}:{args.port}/" + (f"#{args.name}" if args.name else "")
    mode = "read-write (--allow-actions)" if args.allow_actions else "read-only"
    print(f"console on {url} ({mode}); Ctrl-C stops it", file=sys.stderr, flush=True)
    if args.open:
        webbrowser.open(url)
    try:
        web.run_app(app, host=args.listen, port=args.port, print=None, handle_signals=True)
    except OSError as exc:
        raise BadInput(f"cannot listen on {args.listen}:{args.port}: {exc.strerror}") from None
    return 0
