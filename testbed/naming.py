"""Names of everything a lab creates, so that cleanup can find exactly its own resources.

Every namespace, link and bridge of lab NAME starts with ``tb-NAME-``; its files live under
``state_root()/NAME``. Lab names are short because Linux interface names are limited to
15 characters: ``tb-`` + 7 + ``-v123`` fits.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from testbed.errors import BadInput

NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,6}$")
# Files of a lab directory that several processes share.
PLAN_FILE = "plan.json"  # the network plan (testbed.plan.network.NetworkPlan)
REQUEST_FILE = "request.json"  # what `testbed up` asked the holder to build
HOLDER_SOCK = "holder.sock"  # the holder's requests (testbed.rpc)
CONTROLLER_SOCK = "controller.sock"  # the controller's requests
STANDBY_SOCK = "controller-standby.sock"  # a standby controller's, until it takes over
NLB_COUNTERS_FILE = "nlb-counters.json"  # the controller's NLB counters (kept over restarts)
SERVERS_FILE = "servers.json"  # a lab across servers: where each node runs (issue 18)
HOSTS_DIR = "hosts"  # hosts/<host>/: logs, UserData, TMPDIR of each host
CGROUP_TOP = "elb-testbed"  # the one cgroup directory labs make at the top of cgroup v2
MAX_LINKS = 999  # tb-NAME-v999 is the longest interface name a lab makes
IFNAMSIZ = 15


def validate_lab_name(name: str) -> str:
    """Return name if it can be used as a lab name, else raise BadInput."""
    if not NAME_RE.match(name or ""):
        raise BadInput(
            f"bad lab name {name!r}: use 1-7 lowercase letters or digits, starting with a letter",
            hint="names are short because they prefix Linux interface names (15 characters max)",
        )
    return name


def name_from_template(path: str) -> str:
    """Default lab name: the template file's stem, reduced to a valid lab name."""
    stem = re.sub(r"[^a-z0-9]", "", Path(path).stem.lower())
    stem = stem.lstrip("0123456789") or "lab"
    return stem[:7]


# AWS's rule for stack names; a stack added to a lab names its hosts' netns tb-LAB-S.Lid.
STACK_NAME_RE = re.compile(r"^[A-Za-z][-A-Za-z0-9]{0,127}$")


def validate_stack_name(name: str) -> str:
    """Return name if AWS accepts it as a stack name, else raise BadInput."""
    if not STACK_NAME_RE.match(name or ""):
        raise BadInput(
            f"bad stack name {name!r}: use 1-128 letters, digits or hyphens, starting with a"
            " letter (AWS's rule for stack names)",
            hint="--stack-name names the stack added to the lab (default: the template's name)",
        )
    return name


def stack_name_from_template(path: str) -> str:
    """Default name of a stack added to a lab: the template file's stem, reduced to a valid
    stack name (no 7-character limit: a stack's name is not in any interface name)."""
    stem = re.sub(r"[^A-Za-z0-9-]", "", Path(path).stem).lstrip("-0123456789")
    return stem[:128] or "stack"


def prefix(name: str) -> str:
    """Prefix of every namespace, link and bridge of the lab."""
    return f"tb-{name}-"


def owner_of(resource_name: str) -> str | None:
    """The lab name encoded in a resource name, or None if it is not a lab resource."""
    m = re.match(r"^tb-([a-z][a-z0-9]{0,6})-", resource_name)
    return m.group(1) if m else None


def bridge_name(name: str, role: str) -> str:
    """OVS bridge of a lab: role is 'core', 'inet' or 'az1', 'az2', ..."""
    return _ifname(f"{prefix(name)}{role}")


def veth_name(name: str, index: int) -> str:
    """Switch-side end of the index-th host link."""
    return _ifname(f"{prefix(name)}v{index}")


def patch_name(name: str, index: int) -> str:
    """One end of the index-th switch-to-switch link."""
    return _ifname(f"{prefix(name)}p{index}")


def geneve_port_name(name: str, k: int) -> str:
    """OVS GENEVE port of the lab's k-th (from 0) GWLB node, when OVS steers its traffic."""
    return _ifname(f"{prefix(name)}g{k}")


def probe_bridge_name(name: str) -> str:
    """The throw-away bridge a capability probe of lab `name` makes and removes again."""
    return _ifname(f"{prefix(name)}gp")


def netns_name(name: str, host: str) -> str:
    """Named network namespace of a host (listed by `ip netns`)."""
    return f"{prefix(name)}{host}"


def _ifname(candidate: str) -> str:
    if len(candidate) > IFNAMSIZ:
        raise BadInput(f"interface name {candidate!r} is longer than {IFNAMSIZ} characters")
    return candidate


def state_root() -> Path:
    """Directory that holds one sub-directory per lab (tmpfs: labs do not survive a reboot)."""
    return Path(os.environ.get("TESTBED_STATE_DIR", "/run/elb-testbed"))


def lab_dir(name: str) -> Path:
    """Directory of one lab's files: state, events, logs, per-host files."""
    return state_root() / name
