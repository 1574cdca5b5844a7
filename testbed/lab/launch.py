"""What program each lab host runs (its role), and how the lab knows it is ready.

A host's role (Metadata.Lab.Role in a template, or the internal role of a load balancer node)
becomes a command line started in the host's namespace, and the TCP ports it listens on once
ready. The programs are modules of higher layers (testbed.roles.http_backend,
testbed.gwlb.node, ...): the lab starts them as processes and never imports them.

RoleArgs of each template role:
  http-backend  Port (80), TcpPort (9000), UdpPort (9000), AdminPort (8081),
                HealthPath (/health)
  load-client   Target (nothing runs without one), Proto, Requests (100), Rate, Concurrency,
                Duration, KeepAlive, StartDelay (1 s), Timeout
  lambda-runtime  (a Lambda function's host, made by the plan: function, arn, handler,
                code, timeout, memory, environment, port, groups)
  appliance     Rules (nft rules of the forward chain, one per entry), HealthPort (80, the
                GWLB default; 0: none), AdminPort (8081)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.lab import certs
from testbed.model.roles import NODE_ROLES, TEMPLATE_ROLES
from testbed.naming import HOLDER_SOCK, PLAN_FILE
from testbed.plan.network import HostPlan

HTTP_BACKEND_DEFAULTS: dict[str, Any] = {
    "Port": 80,
    "TcpPort": 9000,
    "UdpPort": 9000,
    "AdminPort": 8081,
    "HealthPath": "/health",
    "HttpsPort": 0,  # 0: no HTTPS; else TLS with a certificate of the lab's CA
}
LOAD_CLIENT_ARGS = (
    "Target",
    "Proto",
    "Requests",
    "Rate",
    "Concurrency",
    "Duration",
    "KeepAlive",
    "StartDelay",
    "Timeout",
)
APPLIANCE_DEFAULTS: dict[str, Any] = {"Rules": [], "HealthPort": 80, "AdminPort": 8081}
APPLIANCE_STATUS_FILE = "appliance-status.json"
GWLB_NODE_STATUS_FILE = "gwlb-status.json"
GWLB_NODE_ADMIN_PORT = 8081


@dataclass(frozen=True)
class Launch:
    """A role's command line and the TCP ports that listen once it is ready."""

    argv: tuple[str, ...]
    ready_ports: tuple[int, ...] = ()


def launch(host: HostPlan, host_dir: Path) -> Launch | None:
    """How `host`'s role starts; None when it runs nothing ('none', a load client without a
    Target). ValueError for RoleArgs the role does not take."""
    role = host.role or "none"
    maker = _LAUNCHERS.get(role)
    if maker is None:
        if role in TEMPLATE_ROLES or role in NODE_ROLES:
            return None
        raise ValueError(f"unknown role {role!r}")
    return maker(host, dict(host.role_args), Path(host_dir))


def _python(module: str, *args: str) -> tuple[str, ...]:
    return (sys.executable, "-m", module, *args)


def _check_keys(role: str, args: dict[str, Any], known: Sequence[str]) -> None:
    unknown = set(args) - set(known)
    if unknown:
        raise ValueError(f"unknown RoleArgs for {role}: {sorted(unknown)} (known: {sorted(known)})")


def _http_backend(host: HostPlan, args: dict[str, Any], host_dir: Path) -> Launch:
    _check_keys("http-backend", args, list(HTTP_BACKEND_DEFAULTS))
    opts = {**HTTP_BACKEND_DEFAULTS, **args}
    argv = _python(
        "testbed.roles.http_backend",
        "--id",
        host.name,
        "--ip",
        host.ip,
        "--port",
        str(opts["Port"]),
        "--tcp-port",
        str(opts["TcpPort"]),
        "--udp-port",
        str(opts["UdpPort"]),
        "--admin-port",
        str(opts["AdminPort"]),
        "--health-path",
        str(opts["HealthPath"]),
        "--access-log",
        str(host_dir / "access.log"),
    )
    if host.az:
        argv += ("--az", host.az)
    if host.subnet:
        argv += ("--subnet", host.subnet)
    if int(opts["HttpsPort"]):
        # The host's own certificate (its address and name), from the lab's CA.
        lab_dir = Path(host_dir).parent.parent
        cert = certs.issue_host_cert(lab_dir, host.name, [host.ip, host.name])
        argv += ("--https-port", str(int(opts["HttpsPort"])), "--cert", str(cert))
    ports = tuple(
        int(p)
        for p in (opts["Port"], opts["TcpPort"], opts["AdminPort"], opts["HttpsPort"])
        if int(p)
    )
    return Launch(argv, ports)


def _load_client(host: HostPlan, args: dict[str, Any], host_dir: Path) -> Launch | None:
    _check_keys("load-client", args, LOAD_CLIENT_ARGS)
    if not args.get("Target"):
        return None
    argv = _python(
        "testbed.roles.load_client",
        "--client",
        host.name,
        "--target",
        str(args["Target"]),
        "--out",
        str(host_dir / "requests.csv"),
        "-n",
        str(args.get("Requests", 100)),
        "--start-delay",
        str(args.get("StartDelay", 1.0)),
    )
    for key, flag in (
        ("Proto", "--proto"),
        ("Rate", "--rate"),
        ("Concurrency", "-c"),
        ("Duration", "--duration"),
        ("Timeout", "--timeout"),
    ):
        if key in args:
            argv += (flag, str(args[key]))
    if args.get("KeepAlive"):
        argv += ("--keepalive",)
    return Launch(argv)


def appliance_options(args: dict[str, Any]) -> dict[str, Any]:
    """The appliance role's RoleArgs with defaults; ValueError for what it cannot take."""
    _check_keys("appliance", args, list(APPLIANCE_DEFAULTS))
    opts = {**APPLIANCE_DEFAULTS, **args}
    rules = opts["Rules"]
    if isinstance(rules, str):
        rules = [rules]
    if not isinstance(rules, (list, tuple)) or not all(isinstance(r, str) for r in rules):
        raise ValueError("RoleArgs.Rules of appliance: a list of nft rules (strings)")
    check_firewall_rules(rules)  # now, at lab build, rather than a role that exits
    opts["Rules"] = list(rules)
    return opts


def check_firewall_rules(rules: Sequence[str]) -> None:
    """ValueError unless every entry is one nft rule (the appliance puts each in its chain)."""
    for rule in rules:
        if not isinstance(rule, str) or not rule.strip() or any(c in rule for c in "\n;{}"):
            raise ValueError(
                f"appliance rule {rule!r}: one nft rule per entry, without "
                "newlines, ';' or braces (e.g. \"tcp dport 23 drop\")"
            )


def _appliance(host: HostPlan, args: dict[str, Any], host_dir: Path) -> Launch:
    opts = appliance_options(args)
    argv = _python(
        "testbed.gwlb.appliance",
        "--id",
        host.name,
        "--ip",
        host.ip,
        "--health-port",
        str(int(opts["HealthPort"])),
        "--admin-port",
        str(int(opts["AdminPort"])),
        "--status",
        str(host_dir / APPLIANCE_STATUS_FILE),
    )
    for rule in opts["Rules"]:
        argv += ("--rule", rule)
    # Listening on both means the tunnel and the firewall are set up.
    ports = tuple(p for p in (int(opts["HealthPort"]), int(opts["AdminPort"])) if p)
    return Launch(argv, ports)


def _lab_dir(host_dir: Path) -> Path:
    return host_dir.parent.parent  # host folders are LAB_DIR/hosts/<host>


def _network_node(host: HostPlan, args: dict[str, Any], host_dir: Path) -> Launch:
    """An NLB node runs its health checker; the fabric's flows carry the traffic. With TLS
    listeners (role args `ports`), the node runs HAProxy for them too (testbed.alb.node, which
    runs the health checker as well): ready when it listens on every TLS port."""
    if args.get("ports"):
        return _application_node(host, args, host_dir)
    return Launch(
        _python(
            "testbed.lb.health_checker",
            "--lb",
            str(args["lb"]),
            "--az",
            str(args["az"]),
            "--source",
            host.ip,
            "--holder",
            str(_lab_dir(host_dir) / HOLDER_SOCK),
        )
    )


def _application_node(host: HostPlan, args: dict[str, Any], host_dir: Path) -> Launch:
    """An ALB node runs HAProxy and its health checker; ready when every listener listens."""
    return Launch(
        _python(
            "testbed.alb.node",
            "--lab-dir",
            str(_lab_dir(host_dir)),
            "--lb",
            str(args["lb"]),
            "--node",
            host.name,
        ),
        tuple(int(p) for p in args.get("ports", [])),
    )


def _gateway_node(host: HostPlan, args: dict[str, Any], host_dir: Path) -> Launch:
    """A GWLB node steers through appliances; its admin port listens once its sockets are
    open."""
    lab_dir = _lab_dir(host_dir)
    return Launch(
        _python(
            "testbed.gwlb.node",
            "--host",
            host.name,
            "--lb",
            str(args["lb"]),
            "--az",
            str(args["az"]),
            "--ip",
            host.ip,
            "--plan",
            str(lab_dir / PLAN_FILE),
            "--holder",
            str(lab_dir / HOLDER_SOCK),
            "--status",
            str(host_dir / GWLB_NODE_STATUS_FILE),
            "--admin-port",
            str(GWLB_NODE_ADMIN_PORT),
        ),
        (GWLB_NODE_ADMIN_PORT,),
    )


LAMBDA_CONFIG_FILE = "lambda.json"


def _lambda_runtime(host: HostPlan, args: dict[str, Any], host_dir: Path) -> Launch:
    """A Lambda function's host (kind "lambda") runs testbed.roles.lambda_runtime with the
    function and its target groups (the RoleArgs the plan gave it) as a JSON config; ready
    when it listens on its port."""
    host_dir = Path(host_dir)
    host_dir.mkdir(parents=True, exist_ok=True)
    config = host_dir / LAMBDA_CONFIG_FILE
    config.write_text(json.dumps(args, indent=1))
    argv = _python(
        "testbed.roles.lambda_runtime",
        "--config",
        str(config),
        "--ip",
        host.ip,
        "--dir",
        str(host_dir),
    )
    return Launch(argv, (int(args["port"]),))


_LAUNCHERS: dict[str, Callable[[HostPlan, dict[str, Any], Path], Launch | None]] = {
    "http-backend": _http_backend,
    "load-client": _load_client,
    "appliance": _appliance,
    "network-node": _network_node,
    "application-node": _application_node,
    "classic-node": _application_node,  # a CLB node is HAProxy too (testbed.alb.config)
    "gateway-node": _gateway_node,
    "lambda-runtime": _lambda_runtime,
}
