"""Argument helpers and output formatting shared by the CLI commands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from testbed.paths import embedded_templates, resolve_template


def param(text: str) -> tuple[str, str]:
    """argparse type for --param KEY=VALUE."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def add_template(
    p: argparse.ArgumentParser, help: str = "template file (YAML or JSON)", flag: str | None = None
) -> None:
    """The template argument: a file, or the name of a template shipped with the package."""
    names = ", ".join(embedded_templates())
    text = f"{help}, or an embedded template: {names}"
    if flag:
        p.add_argument(flag, type=resolve_template, help=text)
    else:
        p.add_argument("template", type=resolve_template, help=text)


def add_params(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--param",
        "-p",
        dest="params",
        action="append",
        type=param,
        default=[],
        metavar="KEY=VALUE",
        help="set a template parameter (repeatable)",
    )


def params_dict(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    return dict(pairs)


def subcommand(
    sub: Any, name: str, func: Any, help: str, description: str = "", epilog: str = ""
) -> argparse.ArgumentParser:
    """Add a sub-command whose --help shows the description and examples as written."""
    p = sub.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=func)
    return p


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain-text table with left-aligned columns."""
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for row in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def host_kind(h: dict[str, Any]) -> str:
    """A host's kind as status shows it: instance, client, lb-node, dns (the resolver),
    natgw; "client (lab-made)" for a host the lab added to the template."""
    kind = h.get("kind") or "-"
    return f"{kind} (lab-made)" if h.get("lab_made") else kind


def hosts_table(hosts: Sequence[dict[str, Any]]) -> str:
    """One row per host, then one per extra interface ("HOST/eth1") under its host."""
    rows: list[tuple[str, ...]] = []
    servers = any(h.get("server") for h in hosts)  # a lab across servers (issue 18)
    for h in hosts:
        # Lab machinery without a role says what it is (a NAT gateway).
        role = h.get("role") or ("nat-gateway" if h.get("kind") == "natgw" else "none")
        if h.get("default_role"):
            role += " (default)"
        rows.append(
            (
                h["name"],
                h["ip"],
                h.get("public_ip") or "-",
                h.get("az") or "-",
                h.get("subnet") or "internet",
                host_kind(h),
                role,
                *([h.get("server") or "-"] if servers else []),
            )
        )
        for i in h.get("interfaces") or ():
            rows.append(
                (
                    f"{h['name']}/{i['name']}",
                    i["ip"],
                    i.get("public_ip") or "-",
                    i.get("az") or "-",
                    i.get("subnet") or "-",
                    "",
                    "",
                    *([h.get("server") or "-"] if servers else []),
                )
            )
    head = ["HOST", "IP", "PUBLIC IP", "AZ", "SUBNET", "KIND", "ROLE"]
    return table(rows, head + (["SERVER"] if servers else []))


def host_notes(hosts: Sequence[dict[str, Any]]) -> list[str]:
    """Why the lab added a host or chose its role, one line each."""
    notes = []
    for h in hosts:
        if h.get("lab_made"):
            notes.append(f"{h['name']}: added by the lab: {h['lab_made']}")
        if h.get("default_role"):
            notes.append(f"{h['name']}: role {h.get('role')} by default: {h['default_role']}")
    return notes
