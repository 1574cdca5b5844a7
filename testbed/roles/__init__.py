"""Built-in programs a lab host can run (its "role").

Templates choose a role in Metadata.Lab.Role (TEMPLATE_ROLES); load balancer nodes get an
internal role from the lab (NODE_ROLES). Each role is a module in this package with
`argv(host, args, host_dir) -> list[str]`, the command the lab starts in the host's namespace
(recorded and ended by PID), and optionally `tcp_ports(args)`, the ports it listens on once
ready.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Role name -> module under testbed.roles. "none" starts nothing.
TEMPLATE_ROLES: dict[str, str | None] = {
    "none": None,
    "http-backend": "testbed.roles.http_backend",
    "load-client": "testbed.roles.load_client",
    "appliance": "testbed.roles.appliance",
}
# The programs of load balancer nodes ("<lb type>-node"), never named in templates.
NODE_ROLES: dict[str, str | None] = {
    "network-node": "testbed.roles.network_node",
    "application-node": "testbed.roles.application_node",
    "gateway-node": "testbed.roles.gateway_node",
}
ROLE_MODULES: dict[str, str | None] = {**TEMPLATE_ROLES, **NODE_ROLES}

ROLE_NAMES = tuple(sorted(TEMPLATE_ROLES))


def role_argv(host: Any, host_dir: Path) -> list[str]:
    """Command that starts `host`'s role (a HostPlan) in its namespace; [] for 'none'."""
    import importlib

    module = ROLE_MODULES.get(host.role or "none")
    if module is None:
        return []
    return importlib.import_module(module).argv(host, dict(host.role_args), host_dir)
