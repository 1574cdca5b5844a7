"""Built-in programs a lab host can run (its "role"), chosen in the template's Metadata.Lab.Role.

Each role is a module in this package with `argv(host, args) -> list[str]` giving the command
that the lab starts in the host's namespace (recorded and ended by PID).
"""

from __future__ import annotations

# Role name -> module under testbed.roles. "none" starts nothing.
ROLE_MODULES: dict[str, str | None] = {
    "none": None,
    "http-backend": "testbed.roles.http_backend",
    "load-client": "testbed.roles.load_client",
}

ROLE_NAMES = tuple(sorted(ROLE_MODULES))


def role_argv(host, host_dir) -> list[str]:
    """Command that starts `host`'s role (a HostPlan) in its namespace; [] for 'none'."""
    import importlib

    module = ROLE_MODULES.get(host.role or "none")
    if module is None:
        return []
    return importlib.import_module(module).argv(host, dict(host.role_args), host_dir)
