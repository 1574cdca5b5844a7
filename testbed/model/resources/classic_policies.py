"""A Classic Load Balancer's policies and what they do to its listeners.

Three properties make policies: LBCookieStickinessPolicy (the AWSELB cookie),
AppCookieStickinessPolicy (follows the application's cookie) and Policies (any policy type).
A listener uses a stickiness policy its PolicyNames names, or one whose LoadBalancerPorts
lists its port; a ProxyProtocolPolicyType policy applies to the instance ports it lists
(InstancePorts) and makes the TCP listeners sending to them start each connection with a
PROXY protocol v1 header. TLS policy types are accepted and have no effect until the lab has
HTTPS/SSL listeners (the TLS issue, 16).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from testbed.errors import BadInput
from testbed.model.resources.base import Prop, ResourceContext, prop
from testbed.model.resources.elbv2.common import items, nested
from testbed.model.resources.scaling_common import Problems, ignore, whole
from testbed.template.intrinsics import as_text
from testbed.template.nodes import describe, did_you_mean, line_of

LB_COOKIE_TYPE = "LBCookieStickinessPolicyType"
APP_COOKIE_TYPE = "AppCookieStickinessPolicyType"
PROXY_TYPE = "ProxyProtocolPolicyType"
TLS_TYPES = (
    "SSLNegotiationPolicyType",
    "BackendServerAuthenticationPolicyType",
    "PublicKeyPolicyType",
)
STICKY = {LB_COOKIE_TYPE: "lb_cookie", APP_COOKIE_TYPE: "app_cookie"}
POLICY_TYPES = (LB_COOKIE_TYPE, APP_COOKIE_TYPE, PROXY_TYPE, *TLS_TYPES)
# The attributes the lab reads, per type (TLS types: any, they are not read).
TYPE_ATTRIBUTES = {
    LB_COOKIE_TYPE: ("CookieExpirationPeriod",),
    APP_COOKIE_TYPE: ("CookieName",),
    PROXY_TYPE: ("ProxyProtocol",),
}
# Backend policies apply to instance ports; the others to listeners (load balancer ports).
BACKEND_TYPES = (PROXY_TYPE, "BackendServerAuthenticationPolicyType")
COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$")  # an HTTP token
TLS_LATER = "a TLS policy: it takes effect with HTTPS/SSL listeners, which arrive with issue 16"

LB_COOKIE_PROPERTIES = {"PolicyName": Prop("string", True), "CookieExpirationPeriod": prop("any")}
APP_COOKIE_PROPERTIES = {"PolicyName": Prop("string", True), "CookieName": Prop("string", True)}
POLICY_PROPERTIES = {
    "PolicyName": Prop("string", True),
    "PolicyType": Prop("string", True),
    "Attributes": Prop("list", True),
    "InstancePorts": prop("list"),
    "LoadBalancerPorts": prop("list"),
}
ATTRIBUTE_PROPERTIES = {"Name": Prop("string", True), "Value": Prop("any", True)}


@dataclass(frozen=True)
class ListenerItem:
    """One Listeners item, read and checked."""

    where: str  # Listeners[0]
    line: int | None
    port: int
    protocol: str  # HTTP | TCP
    instance_port: int
    instance_protocol: str  # HTTP | TCP
    policy_names: tuple[tuple[str, int | None], ...]  # (name, its line)


@dataclass(frozen=True)
class Policy:
    """One policy of the load balancer, from whichever property made it."""

    name: str
    type: str
    where: str  # LBCookieStickinessPolicy[0], Policies[2], ...
    line: int | None
    cookie: str | None = None  # app_cookie: the application's cookie
    expiration_s: int | None = None  # lb_cookie: None = a session cookie
    proxy: bool = False  # ProxyProtocol=true
    instance_ports: tuple[tuple[int, int | None], ...] = ()  # (port, line)
    lb_ports: tuple[tuple[int, int | None], ...] = ()


@dataclass(frozen=True)
class ListenerPolicies:
    """What its policies make of one listener."""

    sticky: str | None = None  # lb_cookie | app_cookie
    sticky_cookie: str | None = None
    sticky_expiration_s: int | None = None
    proxy_protocol: bool = False


def _expiration(problems: Problems, value: Any, where: str, line: int | None) -> int | None:
    """CookieExpirationPeriod in seconds; 0 (AWS's default) is a session cookie: None."""
    found = whole(problems, value, where, line, low=0)
    return found or None


def _cookie_name(problems: Problems, name: str, where: str, line: int | None) -> str | None:
    if COOKIE_NAME.match(name):
        return name
    problems.add(
        f"{where} {name!r} is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)", line
    )
    return None


def _ports(
    problems: Problems, value: list[Any], where: str, line: int | None
) -> tuple[tuple[int, int | None], ...]:
    found = []
    for index, item in enumerate(value):
        at = line_of(value, index, line)
        port = whole(problems, item, f"{where}[{index}]", at, low=1, high=65535)
        if port is not None:
            found.append((port, at))
    return tuple(found)


class _Reader:
    """Reads the three policy properties into Policy objects, each name once."""

    def __init__(self, ctx: ResourceContext, problems: Problems) -> None:
        self.ctx, self.problems = ctx, problems
        self.found: dict[str, Policy] = {}

    def add(self, policy: Policy, name_line: int | None) -> None:
        if policy.name in self.found:
            first = self.found[policy.name]
            self.problems.add(
                f"{policy.where}: policy name {policy.name!r} is already used by {first.where}; "
                "a load balancer's policy names are unique",
                name_line,
            )
            return
        self.found[policy.name] = policy

    def each(
        self, key: str, properties: dict[str, Prop]
    ) -> list[tuple[dict, dict, str, int | None]]:
        if key not in self.ctx.props:
            return []
        out = []
        for item, line, where in items(self.ctx, key):
            try:
                values, lines = nested(self.ctx, item, where, line, properties)
            except BadInput as err:
                self.problems.add_error(err, line)
                continue
            out.append((values, lines, where, line))
        return out

    def cookies(self) -> None:
        problems = self.problems
        for values, lines, where, line in self.each(
            "LBCookieStickinessPolicy", LB_COOKIE_PROPERTIES
        ):
            expiration = None
            if "CookieExpirationPeriod" in values:
                at = lines.get("CookieExpirationPeriod", line)
                expiration = _expiration(
                    problems,
                    values["CookieExpirationPeriod"],
                    f"{where}.CookieExpirationPeriod",
                    at,
                )
            policy = Policy(
                values["PolicyName"], LB_COOKIE_TYPE, where, line, expiration_s=expiration
            )
            self.add(policy, lines.get("PolicyName", line))
        for values, lines, where, line in self.each(
            "AppCookieStickinessPolicy", APP_COOKIE_PROPERTIES
        ):
            cookie = _cookie_name(
                problems, values["CookieName"], f"{where}.CookieName", lines.get("CookieName", line)
            )
            policy = Policy(values["PolicyName"], APP_COOKIE_TYPE, where, line, cookie=cookie)
            self.add(policy, lines.get("PolicyName", line))

    def policies(self) -> None:
        for values, lines, where, line in self.each("Policies", POLICY_PROPERTIES):
            self.add(self._policy(values, lines, where, line), lines.get("PolicyName", line))

    def _attributes(
        self, values: dict, lines: dict, where: str, line: int | None, kind: str
    ) -> dict[str, tuple[str, int | None]]:
        problems = self.problems
        found: dict[str, tuple[str, int | None]] = {}
        listed = values["Attributes"]
        at = lines.get("Attributes", line)
        for index, item in enumerate(listed):
            item_where, item_line = f"{where}.Attributes[{index}]", line_of(listed, index, at)
            try:
                entry, entry_lines = nested(
                    self.ctx, item, item_where, item_line, ATTRIBUTE_PROPERTIES
                )
            except BadInput as err:
                problems.add_error(err, item_line)
                continue
            name, value = entry["Name"], as_text(entry["Value"])
            name_line = entry_lines.get("Name", item_line)
            if value is None:
                problems.add(
                    f"{item_where}.Value must be text, not {describe(entry['Value'])}",
                    entry_lines.get("Value", item_line),
                )
                continue
            known = TYPE_ATTRIBUTES.get(kind)
            if known is not None and name not in known:
                problems.add(
                    f"{item_where}: a {kind} policy has no attribute {name!r}",
                    name_line,
                    did_you_mean(name, known) or f"its attribute is {', '.join(known)}",
                )
                continue
            found[name] = (value, entry_lines.get("Value", item_line))
        return found

    def _policy(self, values: dict, lines: dict, where: str, line: int | None) -> Policy:
        problems = self.problems
        kind = values["PolicyType"]
        type_line = lines.get("PolicyType", line)
        if kind not in POLICY_TYPES:
            problems.add(
                f"{where}.PolicyType {kind!r} is not a classic load balancer policy type",
                type_line,
                did_you_mean(kind, POLICY_TYPES) or f"the types are: {', '.join(POLICY_TYPES)}",
            )
            return Policy(values["PolicyName"], kind, where, line)  # its name stays known
        before = len(problems.found)
        attributes = self._attributes(values, lines, where, line, kind)
        instance_ports = _ports(
            problems,
            values.get("InstancePorts", []),
            f"{where}.InstancePorts",
            lines.get("InstancePorts", line),
        )
        lb_ports = _ports(
            problems,
            values.get("LoadBalancerPorts", []),
            f"{where}.LoadBalancerPorts",
            lines.get("LoadBalancerPorts", line),
        )
        if kind in BACKEND_TYPES and "LoadBalancerPorts" in values:
            problems.add(
                f"{where}: a {kind} policy applies to instance ports: use InstancePorts, not "
                "LoadBalancerPorts",
                lines.get("LoadBalancerPorts", line),
            )
        if kind not in BACKEND_TYPES and "InstancePorts" in values:
            problems.add(
                f"{where}: a {kind} policy applies to listeners: use LoadBalancerPorts (or the "
                "listeners' PolicyNames), not InstancePorts",
                lines.get("InstancePorts", line),
            )
        policy = Policy(
            values["PolicyName"],
            kind,
            where,
            line,
            instance_ports=instance_ports,
            lb_ports=lb_ports,
        )
        if len(problems.found) > before:
            return policy  # a wrong attribute or port: what the type needs is not checked
        if kind in TLS_TYPES:
            ignore(self.ctx, f"{where} ({kind})", TLS_LATER)
        elif kind == PROXY_TYPE:
            policy = self._proxy(policy, attributes, where, line)
        elif kind == LB_COOKIE_TYPE and "CookieExpirationPeriod" in attributes:
            text, at = attributes["CookieExpirationPeriod"]
            expiration = _expiration(problems, text, f"{where} CookieExpirationPeriod", at)
            policy = Policy(**{**policy.__dict__, "expiration_s": expiration})
        elif kind == APP_COOKIE_TYPE:
            if "CookieName" not in attributes:
                problems.add(f"{where}: an {kind} policy needs the attribute CookieName", line)
            else:
                text, at = attributes["CookieName"]
                cookie = _cookie_name(problems, text, f"{where} CookieName", at)
                policy = Policy(**{**policy.__dict__, "cookie": cookie})
        return policy

    def _proxy(self, policy: Policy, attributes: dict, where: str, line: int | None) -> Policy:
        if "ProxyProtocol" not in attributes:
            self.problems.add(
                f"{where}: a {PROXY_TYPE} policy needs the attribute ProxyProtocol (true)", line
            )
            return policy
        text, at = attributes["ProxyProtocol"]
        if text.strip().lower() not in ("true", "false"):
            self.problems.add(f"{where} ProxyProtocol must be true or false, not {text!r}", at)
            return policy
        if not policy.instance_ports:
            ignore(
                self.ctx,
                f"{where}",
                "a ProxyProtocolPolicyType policy without InstancePorts applies to no instance",
            )
        return Policy(**{**policy.__dict__, "proxy": text.strip().lower() == "true"})


def read_policies(
    ctx: ResourceContext, problems: Problems, listeners: list[ListenerItem]
) -> dict[int, ListenerPolicies]:
    """What the policies do to each listener, keyed by LoadBalancerPort; problems added."""
    reader = _Reader(ctx, problems)
    reader.cookies()
    reader.policies()
    policies = reader.found
    by_port = {item.port: item for item in listeners}
    bound: dict[int, list[tuple[Policy, int | None, str]]] = {port: [] for port in by_port}
    for item in listeners:
        for name, line in item.policy_names:
            if name not in policies:
                problems.add(
                    f"{item.where}.PolicyNames: {name!r} is not a policy of this load balancer",
                    line,
                    did_you_mean(name, policies)
                    or "name a policy of LBCookieStickinessPolicy, AppCookieStickinessPolicy or "
                    "Policies",
                )
                continue
            bound[item.port].append((policies[name], line, f"{item.where}.PolicyNames"))
    for policy in policies.values():
        for port, line in policy.lb_ports:
            if port not in by_port:
                problems.add(
                    f"{policy.where}.LoadBalancerPorts: the load balancer has no listener on "
                    f"port {port}",
                    line,
                    "its listeners' ports are " + ", ".join(str(p) for p in sorted(by_port)),
                )
                continue
            bound[port].append((policy, line, f"{policy.where}.LoadBalancerPorts"))
    result = {port: _listener(ctx, problems, by_port[port], bound[port]) for port in by_port}
    _proxy_ports(ctx, policies, listeners, result)
    return result


def _listener(
    ctx: ResourceContext,
    problems: Problems,
    item: ListenerItem,
    bound: list[tuple[Policy, int | None, str]],
) -> ListenerPolicies:
    found = ListenerPolicies()
    sticky_from: Policy | None = None
    for policy, line, where in bound:
        if policy.type not in POLICY_TYPES:
            continue  # its type is reported where it is made
        if policy.type in BACKEND_TYPES:
            problems.add(
                f"{where}: {policy.name!r} is a {policy.type} policy, which applies to instance "
                f"ports ({policy.where}.InstancePorts), not to a listener",
                line,
            )
        elif policy.type in TLS_TYPES:
            problems.add(
                f"{where}: {policy.name!r} is a {policy.type} policy, for HTTPS and SSL "
                f"listeners only, and {item.where} is {item.protocol}",
                line,
            )
        elif item.protocol != "HTTP":
            problems.add(
                f"{where}: {policy.name!r} is a stickiness policy, for HTTP (and HTTPS) "
                f"listeners only, and {item.where} is {item.protocol}",
                line,
                "a TCP listener does not see cookies",
            )
        elif sticky_from is not None and sticky_from.name != policy.name:
            problems.add(
                f"{where}: {item.where} already uses stickiness policy {sticky_from.name!r}; a "
                "listener takes one",
                line,
            )
        else:
            sticky_from = policy
            found = ListenerPolicies(
                STICKY[policy.type], policy.cookie, policy.expiration_s, found.proxy_protocol
            )
    return found


def _proxy_ports(
    ctx: ResourceContext,
    policies: dict[str, Policy],
    listeners: list[ListenerItem],
    result: dict[int, ListenerPolicies],
) -> None:
    """PROXY protocol on the TCP listeners whose instance port a ProxyProtocol policy lists."""
    for policy in policies.values():
        if not policy.proxy:
            continue
        for port, _line in policy.instance_ports:
            users = [item for item in listeners if item.instance_port == port]
            if not users:
                ignore(
                    ctx, f"{policy.where}.InstancePorts {port}", "no listener sends to that port"
                )
            for item in users:
                if item.protocol == "TCP":
                    now = result[item.port]
                    result[item.port] = ListenerPolicies(
                        now.sticky, now.sticky_cookie, now.sticky_expiration_s, True
                    )
                else:
                    ignore(
                        ctx,
                        f"{policy.where} ProxyProtocol on instance port {port} for {item.where}",
                        f"{item.where} is {item.protocol}: AWS sends PROXY headers on TCP and SSL "
                        "listeners only",
                    )
