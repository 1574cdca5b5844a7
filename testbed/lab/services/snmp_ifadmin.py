"""IF-MIB::ifAdminStatus of a lab host, for snmpd's `pass` extension: GET, GETNEXT and SET.

net-snmp 5.9.3 accepts a SET of ifAdminStatus itself (it takes the interface down and up
with an ioctl), but Linux drops every route through an interface that goes down and does not
put them back when it comes up: the host came back without its default route. So the
agent hands the ifAdminStatus column to this program (snmpd.conf `pass`), which, before it
takes an interface down, keeps the host's routes through it in the agent's state directory
and adds them back once the interface is up again. A SET of down(2) is answered first and
carried out DOWN_DELAY later: the answer leaves through the interface that goes down.

    python snmp_ifadmin.py STATE_DIR [SINK] -g OID              GET (prints OID, type, value)
    python snmp_ifadmin.py STATE_DIR [SINK] -n OID              GETNEXT
    python snmp_ifadmin.py STATE_DIR [SINK] -s OID TYPE VALUE   SET (up(1) or down(2))

SINK, the lab's notification receiver: net-snmp drops an INFORM whose first sendto fails
(measured: "send_trap: Failure in sendto (Network is unreachable)" once the interface and
its routes are gone), so the linkDown would never arrive. While the interface is down, a
route to SINK through lo swallows the agent's sends without an error; the agent retransmits
the inform until it is acknowledged, which the first retransmission after the interface is
back up is (the lo route goes when the interface comes back).

It runs in the host's namespace (snmpd's child), imports nothing of the project (snmpd
starts it for every request) and answers as snmpd's `pass` protocol wants: nothing for no
such object, "not-writable" / "wrong-type" / "wrong-value" for a refused SET.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

COLUMN = (1, 3, 6, 1, 2, 1, 2, 2, 1, 7)  # IF-MIB::ifAdminStatus
IFF_UP = 0x1
# An interface taken down at once would drop the agent's own answer to the SET (it leaves
# through that interface): it goes down this long after the answer is out.
DOWN_DELAY = 0.2
SINK_METRIC = "4000"
UP, DOWN = 1, 2
IP = "/usr/sbin/ip"
NET = Path("/sys/class/net")


def interfaces() -> dict[int, str]:
    """ifIndex (the kernel's) -> interface name, in this namespace."""
    out = {}
    for entry in NET.iterdir():
        try:
            out[int((entry / "ifindex").read_text())] = entry.name
        except (OSError, ValueError):
            continue
    return dict(sorted(out.items()))


def admin_status(name: str) -> int:
    flags = int((NET / name / "flags").read_text(), 16)
    return UP if flags & IFF_UP else DOWN


def parse(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.strip().strip(".").split(".") if p)


def text(oid: tuple[int, ...]) -> str:
    return "." + ".".join(str(p) for p in oid)


def answer(index: int, name: str) -> str:
    return f"{text((*COLUMN, index))}\ninteger\n{admin_status(name)}"


def get(oid: tuple[int, ...]) -> str:
    ifs = interfaces()
    if len(oid) == len(COLUMN) + 1 and oid[:-1] == COLUMN and oid[-1] in ifs:
        return answer(oid[-1], ifs[oid[-1]])
    return ""


def get_next(oid: tuple[int, ...]) -> str:
    for index, name in interfaces().items():
        if (*COLUMN, index) > oid:
            return answer(index, name)
    return ""


def routes_file(state: Path, name: str) -> Path:
    return state / f"routes-{name}.json"


def ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([IP, *args], capture_output=True, text=True, check=False)


def later(delay: float, argv: list[str]) -> None:
    """Run argv `delay` seconds from now, in a child that outlives this program (and keeps
    none of snmpd's pipes open, or snmpd would wait for it)."""
    if os.fork() != 0:
        return
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    time.sleep(delay)
    subprocess.run(argv, check=False)
    os._exit(0)


def set_status(
    state: Path, oid: tuple[int, ...], kind: str, value: str, sink: str | None = None
) -> str:
    ifs = interfaces()
    if len(oid) != len(COLUMN) + 1 or oid[:-1] != COLUMN or oid[-1] not in ifs:
        return "not-writable"
    if kind != "integer":
        return "wrong-type"
    try:
        wanted = int(value)
    except ValueError:
        return "wrong-type"
    if wanted not in (UP, DOWN):  # testing(3) is not something a lab host can do
        return "wrong-value"
    name = ifs[oid[-1]]
    if name == "lo":
        return "not-writable"  # the agent itself answers over lo: keep it
    saved = routes_file(state, name)
    if wanted == DOWN:
        if admin_status(name) == UP:
            listing = ip("-j", "route", "show", "dev", name)
            routes = json.loads(listing.stdout or "[]")
            # Routes the kernel makes for the address come back by themselves.
            keep = [r for r in routes if r.get("protocol") != "kernel"]
            saved.write_text(json.dumps(keep))
        if sink:
            ip("route", "replace", f"{sink}/32", "dev", "lo", "metric", SINK_METRIC)
        later(DOWN_DELAY, [IP, "link", "set", "dev", name, "down"])
        return "DONE"
    if ip("link", "set", "dev", name, "up").returncode != 0:
        return "commit-failed"
    if sink:
        ip("route", "del", f"{sink}/32", "dev", "lo", "metric", SINK_METRIC)
    if saved.exists():
        for route in json.loads(saved.read_text()):
            args = ["route", "replace", route["dst"]]
            if route.get("gateway"):
                args += ["via", route["gateway"]]
            args += ["dev", name]
            if route.get("prefsrc"):
                args += ["src", route["prefsrc"]]
            ip(*args)
        saved.unlink()
    return "DONE"


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: ifadmin.py STATE_DIR -g|-n OID | -s OID TYPE VALUE", file=sys.stderr)
        return 2
    state, sink = Path(argv[0]), None
    if not argv[1].startswith("-"):
        sink, argv = argv[1], argv[1:]
    if len(argv) < 3:
        return 2
    flag, oid = argv[1], parse(argv[2])
    if flag == "-g":
        out = get(oid)
    elif flag == "-n":
        out = get_next(oid)
    elif flag == "-s" and len(argv) >= 5:
        out = set_status(state, oid, argv[3], argv[4], sink)
    else:
        return 2
    if out:
        print(out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
