"""`--servers us-east-1a=HOST,us-east-1b=HOST`: which server carries which availability zone.

HOST is what ssh takes: a host name, an address or a Host alias of the ssh config, with an
optional ``user@``. Pure parsing: nothing is contacted here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from testbed.errors import BadInput

ZONE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
# No leading '-' (it would be read as an ssh option), no spaces or shell characters.
HOST_RE = re.compile(r"^(?:[A-Za-z0-9_][A-Za-z0-9._-]*@)?[A-Za-z0-9_\[][A-Za-z0-9._:%\]-]*$")
HINT = "write --servers ZONE=HOST[,ZONE=HOST...], e.g. --servers us-east-1a=srv1,us-east-1b=srv2"


@dataclass(frozen=True)
class ServerSpec:
    zone: str  # availability zone placed on this server
    host: str  # ssh destination ([user@]host or an ssh config alias)

    @property
    def user(self) -> str | None:
        return self.host.split("@", 1)[0] if "@" in self.host else None


def parse_servers(text: str) -> list[ServerSpec]:
    """ServerSpecs of a --servers value, in the order given; BadInput says what is wrong."""
    if not text or not text.strip():
        raise BadInput("--servers is empty", hint=HINT)
    specs: list[ServerSpec] = []
    zones: set[str] = set()
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise BadInput(f"--servers {text!r}: an empty entry (two commas?)", hint=HINT)
        zone, sep, host = item.partition("=")
        zone, host = zone.strip(), host.strip()
        if not sep:
            raise BadInput(f"--servers: {item!r} has no '=' (ZONE=HOST)", hint=HINT)
        if not zone or not host:
            raise BadInput(f"--servers: {item!r} needs a zone and a host (ZONE=HOST)", hint=HINT)
        if not ZONE_RE.match(zone):
            raise BadInput(
                f"--servers: bad availability zone {zone!r}: use lowercase letters, digits and"
                " hyphens (e.g. us-east-1a)",
                hint=HINT,
            )
        if not HOST_RE.match(host):
            raise BadInput(
                f"--servers: bad host {host!r} for {zone}: a host name, address or ssh config"
                " alias, optionally user@, not starting with '-'",
                hint=HINT,
            )
        if zone in zones:
            raise BadInput(f"--servers: zone {zone} is given twice", hint=HINT)
        zones.add(zone)
        specs.append(ServerSpec(zone, host))
    return specs
