"""Do a TLS listener's certificates cover the names its clients use?

AWS accepts a listener whose certificate is for other names: its clients then fail to verify
it. The lab refuses what is surely a mistake and warns about what may be one, without
refusing templates that work on AWS:

- The names a listener's clients use are the Route53 records of the stack that lead to its
  load balancer (an alias or a CNAME, followed through chains: route53.names_leading_to, the
  same names the lab issues an inferred certificate for).
- A listener with such names whose certificates (the default one and its
  ListenerCertificates; CLB: SSLCertificateId) cover none of them: an error.
- Some of them and not all: a warning (testbed validate and testbed up show it).
- A load balancer no record leads to: nothing to check (clients use its DNS name, which
  only a certificate the lab infers covers).
- A certificate known only by its ARN (a parameter, an IAM server certificate): the lab
  issues it for those names (testbed.plan.certificates): the listener is not checked.

A name is covered as TLS clients match it (RFC 6125): the same name in any case, or a
wildcard "*.example.com" for exactly one leftmost label (a.example.com, not example.com nor
a.b.example.com).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from testbed.errors import BadInput
from testbed.model.elb_defaults import CLASSIC
from testbed.model.elbv2_types import Listener, LoadBalancer, elbv2_sections
from testbed.model.resources.acm import Certificate, certificates
from testbed.model.resources.route53 import names_leading_to


def covers(pattern: str, name: str) -> bool:
    """Whether a certificate name (`pattern`, "*.x" a wildcard) matches the host name
    `name` as a TLS client checks it (case-insensitive, no trailing dot)."""
    pattern = pattern.rstrip(".").lower()
    name = name.rstrip(".").lower()
    if pattern == name:
        return True
    if not pattern.startswith("*."):
        return False
    first, dot, rest = name.partition(".")
    return bool(first) and bool(dot) and rest == pattern[2:]


def covered_by(certs: tuple[Certificate, ...], name: str) -> bool:
    return any(covers(pattern, name) for c in certs for pattern in c.names)


@dataclass(frozen=True)
class NameGap:
    """A TLS listener whose certificates miss names its clients use.

    names: the names that lead to its load balancer (Route53 records), in the order found;
    missing: those its certificates do not cover (all of them: an error; some: a warning)."""

    listener: Listener
    lb: LoadBalancer
    certificates: tuple[Certificate, ...]
    names: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def none_covered(self) -> bool:
        return len(self.missing) == len(self.names)

    @property
    def resource(self) -> str:
        """The resource to name: the listener, or a CLB's load balancer (its listeners are
        items of its Listeners list)."""
        return self.lb.logical_id if self.lb.type == CLASSIC else self.listener.logical_id

    def _listener_words(self, located: bool) -> str:
        """The listener, where the resource named beside the message does not say it: a
        CLB's listener always, an ELBv2 listener when `located` (with its file:line)."""
        source = self.listener.source
        where = ""
        if located and source is not None and source.line is not None:
            where = f" ({source.file}:{source.line})"
        if self.lb.type == CLASSIC:
            return f"the {self.listener.protocol} listener on port {self.listener.port}{where}: "
        return f"listener {self.listener.logical_id}{where}: " if located else ""

    def message(self, located: bool = False) -> str:
        """What is wrong; located: with the listener's name and file:line (an error has
        them beside it)."""
        words = [f"{c.logical_id} ({', '.join(c.names)})" for c in self.certificates]
        one = len(words) == 1
        certs = ("certificate " if one else "certificates ") + ", ".join(words)
        if self.none_covered:
            return (
                f"{self._listener_words(located)}{certs} {'covers' if one else 'cover'} none "
                f"of the names that lead to load balancer {self.lb.logical_id} "
                f"({', '.join(self.names)}): clients that use them fail to verify it"
            )
        single = len(self.missing) == 1
        return (
            f"{self._listener_words(located)}{certs} {'does' if one else 'do'} not cover "
            f"{', '.join(self.missing)}, which {'leads' if single else 'lead'} to load balancer "
            f"{self.lb.logical_id}: clients that use {'it' if single else 'them'} fail to "
            "verify it"
        )

    def hint(self) -> str:
        return (
            "give the listener a certificate for those names (DomainName or "
            "SubjectAlternativeNames, e.g. *.example.com), or add one with "
            "AWS::ElasticLoadBalancingV2::ListenerCertificate"
            if self.lb.type != CLASSIC
            else "give SSLCertificateId a certificate for those names (DomainName or "
            "SubjectAlternativeNames, e.g. *.example.com)"
        )


def name_gaps(model: Any) -> list[NameGap]:
    """Every TLS listener of `model` (a StackModel or the BuildState it is built from) whose
    template certificates miss names that lead to its load balancer, in listener order."""
    sections = elbv2_sections(model)
    lbs = sections["load_balancers"]
    by_arn = {c.arn: c for c in certificates(model).values()}
    records = tuple(getattr(model, "dns_records", ()))
    gaps: list[NameGap] = []
    for listener in sections["listeners"].values():
        lb = lbs.get(listener.lb_id)
        if not listener.certificates or lb is None:
            continue
        if any(arn not in by_arn for arn in listener.certificates):
            continue  # issued by the lab for the names that lead to its load balancer
        names = tuple(names_leading_to(records, (lb.dns_name.lower(),)))
        if not names:
            continue
        certs = tuple(by_arn[arn] for arn in listener.certificates)
        missing = tuple(n for n in names if not covered_by(certs, n))
        if missing:
            gaps.append(NameGap(listener, lb, certs, names, missing))
    return gaps


def name_errors(model: Any) -> list[BadInput]:
    """The listeners whose certificates cover none of the names of their load balancer."""
    return [
        BadInput(
            gap.message(),
            line=gap.listener.source.line if gap.listener.source else None,
            logical_id=gap.resource,
            hint=gap.hint(),
        )
        for gap in name_gaps(model)
        if gap.none_covered
    ]


def name_warnings(model: Any) -> list[tuple[str, str]]:
    """(resource, text) of each listener whose certificates cover some of the names of its
    load balancer and not all."""
    return [
        (gap.resource, f"warning: {gap.message(located=True)}")
        for gap in name_gaps(model)
        if not gap.none_covered
    ]
