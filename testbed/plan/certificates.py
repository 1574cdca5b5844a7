"""The certificates a lab issues: one per certificate ARN its listeners use, and one per
AWS::CertificateManager::Certificate of the template.

- "template": an AWS::CertificateManager::Certificate; its names are its DomainName and
  SubjectAlternativeNames.
- "inferred": an ARN given as a string (a parameter, as real templates pass an existing ACM or
  IAM certificate): the lab cannot know the names it was issued for, so it issues one for the
  names it can infer: the DNS name of each load balancer whose listeners use it and the Route53
  records of the stack that point at those (a CNAME or an alias, followed through chains).
  Reported (testbed plan, testbed cert) so the user knows which names a client can verify.

The lab layer (testbed.lab.certs) issues them from the lab's CA.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from testbed.model.elbv2_types import elbv2_sections
from testbed.model.resources.acm import DEFAULT_KEY_ALGORITHM, certificates
from testbed.model.resources.route53 import names_leading_to

TEMPLATE = "template"
INFERRED = "inferred"


@dataclass(frozen=True)
class CertificatePlan:
    """One certificate the lab issues.

    arn: what listeners name it by. names: DNS names of the certificate (the first is its
    subject's common name; "*.x" wildcards as given). source: TEMPLATE or INFERRED.
    logical_id: the AWS::CertificateManager::Certificate, None for an inferred one.
    used_by: the listeners (logical ids) that use it, in template order."""

    arn: str
    names: tuple[str, ...]
    source: str
    logical_id: str | None = None
    key_algorithm: str = DEFAULT_KEY_ALGORITHM
    used_by: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CertificatePlan:
        return cls(
            **{**d, "names": tuple(d.get("names", ())), "used_by": tuple(d.get("used_by", ()))}
        )


def build_certificates(model: Any) -> tuple[CertificatePlan, ...]:
    """Every certificate of the stack: the template's (creation order), then the ARNs its
    listeners use that are none of them (inferred, in order of first use)."""
    sections = elbv2_sections(model)
    lbs = sections["load_balancers"]
    declared = certificates(model)
    by_arn = {c.arn: c for c in declared.values()}
    users: dict[str, list[str]] = {}
    lb_names: dict[str, list[str]] = {}
    for listener in sections["listeners"].values():
        for arn in getattr(listener, "certificates", ()):
            users.setdefault(arn, []).append(listener.logical_id)
            lb = lbs.get(listener.lb_id)
            if lb is None:
                continue
            names = lb_names.setdefault(arn, [])
            if lb.dns_name.lower() not in names:
                names.append(lb.dns_name.lower())
    order = {lid: i for i, lid in enumerate(getattr(model, "creation_order", ()))}
    out = [
        CertificatePlan(
            c.arn,
            c.names,
            TEMPLATE,
            c.logical_id,
            c.key_algorithm,
            tuple(users.get(c.arn, ())),
        )
        for c in sorted(declared.values(), key=lambda c: (order.get(c.logical_id, 0), c.logical_id))
    ]
    for arn, listeners in users.items():
        if arn in by_arn:
            continue
        dns = lb_names.get(arn, [])
        records = getattr(model, "dns_records", ())
        names = [*dns, *(n for n in names_leading_to(records, dns) if n not in dns)]
        out.append(CertificatePlan(arn, tuple(names), INFERRED, used_by=tuple(listeners)))
    return tuple(out)


def certificate(plan_certificates: tuple[CertificatePlan, ...], arn: str) -> CertificatePlan:
    """The plan's certificate of `arn` (KeyError when the lab has none)."""
    for c in plan_certificates:
        if c.arn == arn:
            return c
    raise KeyError(arn)
