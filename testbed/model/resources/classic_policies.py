"""A Classic Load Balancer's policies and what they do to its listeners.

Three properties make policies: LBCookieStickinessPolicy (the AWSELB cookie),
AppCookieStickinessPolicy (follows the application's cookie) and Policies (any policy type).
A listener uses a stickiness policy its PolicyNames names, or one whose LoadBalancerPorts
lists its port; a ProxyProtocolPolicyType policy applies to the instance ports it lists
(InstancePorts) and makes the TCP and SSL listeners sending to them in the clear start each
connection with a PROXY protocol v1 header.

An SSLNegotiationPolicyType policy sets the TLS of the HTTPS and SSL listeners it is bound to
(PolicyNames or LoadBalancerPorts): Reference-Security-Policy names one of AWS's predefined
policies (testbed.model.ssl_policies), or its attributes list the protocols
(Protocol-TLSv1, -TLSv1.1, -TLSv1.2), the ciphers (OpenSSL names, true/false) and
Server-Defined-Cipher-Order: a custom policy, kept as its text (custom_policy_text, read back
by parse_custom_policy). An HTTPS or SSL listener with none has ELBSecurityPolicy-2016-08, as
AWS gives it. BackendServerAuthenticationPolicyType and PublicKeyPolicyType are accepted and
have no effect: the lab's CLB does not verify its instances' certificates (AWS neither, without
such a policy).
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, replace
from typing import Any

from testbed.errors import BadInput
from testbed.model import ssl_policies
from testbed.model.resources.base import Prop, ResourceContext, prop
from testbed.model.resources.elbv2.common import items, nested
from testbed.model.resources.scaling_common import Problems, ignore, whole
from testbed.template.intrinsics import as_text
from testbed.template.nodes import describe, did_you_mean, line_of

LB_COOKIE_TYPE = "LBCookieStickinessPolicyType"
APP_COOKIE_TYPE = "AppCookieStickinessPolicyType"
PROXY_TYPE = "ProxyProtocolPolicyType"
SSL_TYPE = "SSLNegotiationPolicyType"
TLS_TYPES = (
    SSL_TYPE,
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
NOT_VERIFIED = (
    "the lab's classic load balancer does not verify its instances' certificates (back-end "
    "authentication is not emulated)"
)
REFERENCE = "Reference-Security-Policy"
SERVER_ORDER = "Server-Defined-Cipher-Order"
# Protocol-* attributes -> the TLS version (SSLv2/SSLv3: OpenSSL here serves neither).
TLS_VERSIONS = {
    "Protocol-TLSv1": "TLSv1.0",
    "Protocol-TLSv1.1": "TLSv1.1",
    "Protocol-TLSv1.2": "TLSv1.2",
}
OLD_PROTOCOLS = ("Protocol-SSLv2", "Protocol-SSLv3")
VERSION_ORDER = ("TLSv1.0", "TLSv1.1", "TLSv1.2")
CIPHER_NAME = re.compile(r"^[A-Z0-9][A-Z0-9-]*$")  # OpenSSL's names (ECDHE-RSA-AES128-GCM-SHA256)
CLASSIC_DEFAULT_POLICY = ssl_policies.DEFAULT_POLICY  # an HTTPS/SSL listener given none (AWS)
CUSTOM_PREFIX = "custom;"

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
    protocol: str  # HTTP | HTTPS | TCP | SSL
    instance_port: int
    instance_protocol: str  # HTTP | HTTPS | TCP | SSL
    policy_names: tuple[tuple[str, int | None], ...]  # (name, its line)
    certificates: tuple[str, ...] = ()  # SSLCertificateId (HTTPS, SSL)


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
    ssl_policy: str | None = None  # SSLNegotiationPolicyType: a name or custom_policy_text
    instance_ports: tuple[tuple[int, int | None], ...] = ()  # (port, line)
    lb_ports: tuple[tuple[int, int | None], ...] = ()


@dataclass(frozen=True)
class ListenerPolicies:
    """What its policies make of one listener."""

    sticky: str | None = None  # lb_cookie | app_cookie
    sticky_cookie: str | None = None
    sticky_expiration_s: int | None = None
    proxy_protocol: bool = False
    ssl_policy: str | None = None  # HTTPS / SSL: a predefined policy's name or a custom one


@dataclass(frozen=True)
class CustomPolicy:
    """An SSLNegotiationPolicyType policy given by its attributes, not a reference."""

    name: str
    versions: tuple[str, ...]  # of VERSION_ORDER, in that order
    ciphers: tuple[str, ...]  # OpenSSL names, in the order given
    server_order: bool  # Server-Defined-Cipher-Order

    @property
    def min_tls(self) -> str:
        return self.versions[0]

    @property
    def max_tls(self) -> str:
        return self.versions[-1]


def custom_policy_text(policy: CustomPolicy) -> str:
    """How a custom policy travels as Listener.ssl_policy / ListenerPlan.ssl_policy (one
    string, so that plans keep one field): custom;versions=..;ciphers=..;server-order=..;name=.."""
    return (
        f"{CUSTOM_PREFIX}versions={','.join(policy.versions)};ciphers={','.join(policy.ciphers)};"
        f"server-order={'true' if policy.server_order else 'false'};name={policy.name}"
    )


def parse_custom_policy(text: str) -> CustomPolicy | None:
    """custom_policy_text's policy back; None when `text` is a predefined policy's name."""
    if not text.startswith(CUSTOM_PREFIX):
        return None
    head, _, name = text[len(CUSTOM_PREFIX) :].partition(";name=")
    fields = dict(part.split("=", 1) for part in head.split(";"))
    return CustomPolicy(
        name,
        tuple(v for v in fields["versions"].split(",") if v),
        tuple(c for c in fields["ciphers"].split(",") if c),
        fields["server-order"] == "true",
    )


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
        if kind == SSL_TYPE:
            policy = self._ssl(policy, attributes, where, line)
        elif kind in TLS_TYPES:
            ignore(self.ctx, f"{where} ({kind})", NOT_VERIFIED)
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

    def _ssl(self, policy: Policy, attributes: dict, where: str, line: int | None) -> Policy:
        """Reference-Security-Policy (a predefined policy), else a custom policy of the
        Protocol-*, cipher and Server-Defined-Cipher-Order attributes."""
        if REFERENCE in attributes:
            name, at = attributes[REFERENCE]
            others = sorted(set(attributes) - {REFERENCE})
            if others:
                ignore(
                    self.ctx,
                    f"{where} attributes {', '.join(others[:4])}"
                    + (f" and {len(others) - 4} more" if len(others) > 4 else ""),
                    f"{REFERENCE} {name} sets the protocols and ciphers",
                )
            found = _reference(self.problems, name.strip(), f"{where} {REFERENCE}", at)
            return Policy(**{**policy.__dict__, "ssl_policy": found})
        custom = self._custom(policy.name, attributes, where, line)
        if custom is None:
            return policy
        return Policy(**{**policy.__dict__, "ssl_policy": custom_policy_text(custom)})

    def _custom(
        self, name: str, attributes: dict, where: str, line: int | None
    ) -> CustomPolicy | None:
        problems, before = self.problems, len(self.problems.found)
        versions: list[str] = []
        ciphers: list[str] = []
        unknown: list[str] = []
        server_order = False
        for key, (value, at) in attributes.items():
            flag = value.strip().lower()
            if flag not in ("true", "false"):
                problems.add(f"{where} attribute {key} must be true or false, not {value!r}", at)
                continue
            on = flag == "true"
            if key == SERVER_ORDER:
                server_order = on
            elif key in TLS_VERSIONS:
                if on:
                    versions.append(TLS_VERSIONS[key])
            elif key in OLD_PROTOCOLS:
                if on:
                    ignore(
                        self.ctx,
                        f"{where} {key}",
                        "SSL 2.0 and 3.0 are not served (the machine's OpenSSL has neither)",
                    )
            elif key.startswith("Protocol-"):
                problems.add(
                    f"{where}: {key!r} is not a protocol of an SSLNegotiationPolicyType policy",
                    at,
                    did_you_mean(key, (*TLS_VERSIONS, *OLD_PROTOCOLS))
                    or f"the protocols are {', '.join((*TLS_VERSIONS, *OLD_PROTOCOLS))}",
                )
            elif not CIPHER_NAME.match(key):
                problems.add(
                    f"{where}: {key!r} is not an attribute of an SSLNegotiationPolicyType "
                    f"policy ({REFERENCE}, Protocol-*, {SERVER_ORDER} or a cipher name such "
                    "as ECDHE-RSA-AES128-GCM-SHA256)",
                    at,
                    did_you_mean(key, (REFERENCE, SERVER_ORDER, *TLS_VERSIONS)),
                )
            elif on and _known_cipher(key):
                ciphers.append(key)
            elif on:
                unknown.append(key)
        if len(problems.found) > before:
            return None
        if unknown:
            ignore(
                self.ctx,
                f"{where} ciphers {', '.join(unknown)}",
                "the machine's OpenSSL does not have them",
            )
        if not versions:
            problems.add(
                f"{where}: the policy enables no protocol: set {REFERENCE} to a predefined "
                "policy, or Protocol-TLSv1.2 (and others) to true",
                line,
            )
        if not ciphers:
            problems.add(
                f"{where}: the policy enables no cipher the lab can serve: set {REFERENCE}, "
                "or cipher names such as ECDHE-RSA-AES128-GCM-SHA256 to true",
                line,
            )
        if not versions or not ciphers:
            return None
        ordered = tuple(v for v in VERSION_ORDER if v in versions)
        gap = [v for v in VERSION_ORDER if ordered[0] < v < ordered[-1] and v not in ordered]
        if gap:
            ignore(
                self.ctx,
                f"{where} {', '.join(gap)} off between {ordered[0]} and {ordered[-1]}",
                "the lab serves every version from the lowest to the highest enabled",
            )
        return CustomPolicy(name, ordered, tuple(ciphers), server_order)

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


def _reference(problems: Problems, name: str, where: str, line: int | None) -> str | None:
    """A predefined policy a classic load balancer takes (ssl_policies: load_balancers)."""
    found = ssl_policies.POLICIES.get(name)
    if found is not None and "classic" in found.load_balancers:
        return name
    classic = [p.name for p in ssl_policies.POLICIES.values() if "classic" in p.load_balancers]
    if found is not None:
        problems.add(
            f"{where} {name} is a policy of application and network load balancers, not of "
            "classic ones",
            line,
            "a classic load balancer takes " + ", ".join(classic),
        )
    else:
        problems.add(
            f"{where} {name!r} is not a predefined security policy of a classic load balancer",
            line,
            did_you_mean(name, classic) or "the policies are: " + ", ".join(classic),
        )
    return None


def _known_cipher(name: str) -> bool:
    """Whether this machine's OpenSSL has the cipher (any security level)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.set_ciphers(f"{name}:@SECLEVEL=0")
    except ssl.SSLError:
        return False
    return any(c["name"] == name for c in context.get_ciphers())


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
    ssl_from: Policy | None = None
    tls = item.protocol in ("HTTPS", "SSL")
    for policy, line, where in bound:
        if policy.type not in POLICY_TYPES:
            continue  # its type is reported where it is made
        if policy.type in BACKEND_TYPES:
            problems.add(
                f"{where}: {policy.name!r} is a {policy.type} policy, which applies to instance "
                f"ports ({policy.where}.InstancePorts), not to a listener",
                line,
            )
        elif policy.type in TLS_TYPES and not tls:
            problems.add(
                f"{where}: {policy.name!r} is a {policy.type} policy, for HTTPS and SSL "
                f"listeners only, and {item.where} is {item.protocol}",
                line,
            )
        elif policy.type != SSL_TYPE and policy.type in TLS_TYPES:
            problems.add(
                f"{where}: {policy.name!r} is a {policy.type} policy: a "
                "BackendServerAuthenticationPolicyType policy names it (PublicKeyPolicyName), "
                "a listener does not",
                line,
            )
        elif policy.type == SSL_TYPE:
            if ssl_from is not None and ssl_from.name != policy.name:
                problems.add(
                    f"{where}: {item.where} already uses SSL negotiation policy "
                    f"{ssl_from.name!r}; a listener takes one",
                    line,
                )
            else:
                ssl_from = policy
                found = replace(found, ssl_policy=policy.ssl_policy)
        elif item.protocol not in ("HTTP", "HTTPS"):
            problems.add(
                f"{where}: {policy.name!r} is a stickiness policy, for HTTP (and HTTPS) "
                f"listeners only, and {item.where} is {item.protocol}",
                line,
                f"a {item.protocol} listener does not see cookies",
            )
        elif sticky_from is not None and sticky_from.name != policy.name:
            problems.add(
                f"{where}: {item.where} already uses stickiness policy {sticky_from.name!r}; a "
                "listener takes one",
                line,
            )
        else:
            sticky_from = policy
            found = replace(
                found,
                sticky=STICKY[policy.type],
                sticky_cookie=policy.cookie,
                sticky_expiration_s=policy.expiration_s,
            )
    if tls and ssl_from is None:
        found = replace(found, ssl_policy=CLASSIC_DEFAULT_POLICY)  # AWS's, given none
    return found


def _proxy_ports(
    ctx: ResourceContext,
    policies: dict[str, Policy],
    listeners: list[ListenerItem],
    result: dict[int, ListenerPolicies],
) -> None:
    """PROXY protocol on the TCP and SSL listeners whose instance port a ProxyProtocol policy
    lists and which reach it in the clear (InstanceProtocol TCP)."""
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
                what = f"{policy.where} ProxyProtocol on instance port {port} for {item.where}"
                if item.protocol in ("TCP", "SSL") and item.instance_protocol == "TCP":
                    result[item.port] = replace(result[item.port], proxy_protocol=True)
                elif item.protocol in ("TCP", "SSL"):
                    ignore(
                        ctx,
                        what,
                        f"{item.where} reaches its instances over {item.instance_protocol}: AWS "
                        "sends no PROXY header on back-end SSL connections",
                    )
                else:
                    ignore(
                        ctx,
                        what,
                        f"{item.where} is {item.protocol}: AWS sends PROXY headers on TCP and SSL "
                        "listeners only",
                    )
