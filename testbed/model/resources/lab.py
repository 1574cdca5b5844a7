"""The lab's own types: Lab::Internet::Client, a host on the internet outside every VPC."""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Address
from typing import Any

from testbed.errors import BadInput
from testbed.model.resources.base import ResourceContext, ResourceType, prop, user_data_text
from testbed.model.resources.registry import register
from testbed.model.state import BuildState
from testbed.model.types import InternetClient

CLIENT = "Lab::Internet::Client"


def _build_client(ctx: ResourceContext) -> None:
    state, lid = ctx.state, ctx.logical_id
    try:
        ip = state.addresses.client(lid, ctx.props.get("IpAddress"))
    except BadInput as err:
        raise ctx.relocate(err, "IpAddress") from None
    user_data = user_data_text(ctx.props["UserData"]) if "UserData" in ctx.props else None
    state.clients[lid] = InternetClient(lid, ip, ctx.role, user_data, ctx.source)


def _set_aside_client_ip(logical_id: str, raw: Any, state: BuildState) -> None:
    # A literal IpAddress is kept from the clients that get theirs automatically.
    ip = raw.get("IpAddress") if isinstance(raw, dict) else None
    if isinstance(ip, str):
        with contextlib.suppress(ValueError):  # reported when the client is built
            state.addresses.internet.set_aside_for(IPv4Address(ip.strip()), logical_id)


register(
    ResourceType(
        CLIENT,
        _build_client,
        ref_prefix="client-",
        accepts_role=True,
        properties={"IpAddress": prop("ip"), "UserData": prop("string")},
        attributes={"IpAddress": lambda s, lid: str(s.clients[lid].ip)},
        prepare=_set_aside_client_ip,
    )
)
