"""AWS::CertificateManager::Certificate: a certificate the lab's own CA issues.

On AWS, ACM issues a public certificate once the domain is validated (DNS or e-mail). In the
lab, validation has nothing to reach: the lab's certificate authority (testbed.lab.certs)
issues the certificate for DomainName and SubjectAlternativeNames when the lab is built, and
every lab host trusts that CA, so clients verify it without -k.

Ref (and GetAtt CertificateArn / Id) gives the ARN AWS shapes:
arn:aws:acm:REGION:ACCOUNT:certificate/UUID, the UUID derived from the stack and logical id.
The model keeps a Certificate per resource in StackModel.extras["acm"].
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from testbed.model.resources.base import ResourceContext, ResourceType, prop
from testbed.model.resources.inert import uuid_of
from testbed.model.resources.registry import register
from testbed.model.resources.route53 import HOSTED_ZONE, in_zone, zones
from testbed.model.state import BuildState
from testbed.model.types import IgnoredProperty, Source
from testbed.template.intrinsics import ACCOUNT_ID, as_text
from testbed.template.nodes import describe, line_of

CERTIFICATE = "AWS::CertificateManager::Certificate"
EXTRAS_KEY = "acm"  # StackModel.extras["acm"]: logical id -> Certificate

VALIDATION_METHODS = ("DNS", "EMAIL", "HTTP")
# KeyAlgorithm values ACM issues public certificates with (RSA_2048 is its default).
KEY_ALGORITHMS = ("RSA_2048", "EC_prime256v1", "EC_secp384r1")
DEFAULT_KEY_ALGORITHM = "RSA_2048"
# ACM: a domain name is at most 253 characters, each label at most 63.
MAX_NAME = 253
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_VALIDATION_OPTION_KEYS = ("DomainName", "ValidationDomain", "HostedZoneId")


@dataclass(frozen=True)
class Certificate:
    """One AWS::CertificateManager::Certificate of the template.

    names: DomainName first, then the SubjectAlternativeNames not already there (lower case)."""

    logical_id: str
    arn: str
    names: tuple[str, ...]
    validation_method: str = "DNS"
    key_algorithm: str = DEFAULT_KEY_ALGORITHM
    source: Source | None = None


def certificate_arn(state: BuildState, logical_id: str) -> str:
    """The ARN Ref gives: arn:aws:acm:REGION:ACCOUNT:certificate/UUID (the same UUID the
    inert model of the type gave, so a certificate's ARN did not change)."""
    return f"arn:aws:acm:{state.region}:{ACCOUNT_ID}:certificate/{uuid_of(state, logical_id)}"


# What a load balancer's listener may name: an ACM certificate or an IAM server certificate.
CERTIFICATE_ARN = re.compile(
    r"^arn:aws[a-z-]*:(acm:(?P<region>[a-z0-9-]+):\d{12}:certificate/[A-Za-z0-9-]+"
    r"|iam::\d{12}:server-certificate/\S+)$"
)


def certificate_arn_problem(arn: str, region: str) -> str | None:
    """Why a listener in `region` cannot use certificate `arn`, or None: not an ACM or IAM
    server certificate ARN, or an ACM certificate of another region (ACM certificates are
    regional: a load balancer uses those of its own region only)."""
    found = CERTIFICATE_ARN.match(arn)
    if found is None:
        return (
            f"{arn[:80]!r} is not a certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID "
            "or arn:aws:iam::ACCOUNT:server-certificate/NAME)"
        )
    other = found.group("region")
    if other is not None and other != region:
        return (
            f"{arn} is an ACM certificate of {other}; a load balancer in {region} can only use "
            f"certificates of {region}"
        )
    return None


def certificates(model: Any) -> dict[str, Certificate]:
    """The template's certificates (model.extras["acm"]): logical id -> Certificate."""
    found = (getattr(model, "extras", None) or {}).get(EXTRAS_KEY) or {}
    return dict(found)


def domain_problem(name: str) -> str | None:
    """Why `name` (lower case) cannot be a certificate's domain name, or None: a fully
    qualified name, a wildcard only as the whole leftmost label ("*.example.com")."""
    if not name:
        return "is empty"
    if len(name) > MAX_NAME:
        return f"is longer than {MAX_NAME} characters"
    labels = name.split(".")
    if len(labels) < 2:
        return "is not a fully qualified domain name"
    for i, label in enumerate(labels):
        if label == "*" and i == 0:
            continue
        if "*" in label:
            return "has a wildcard that is not the whole leftmost label (write *.example.com)"
        if not _LABEL.match(label):
            return f"has an invalid label {label!r} (letters, digits and hyphens, 1-63 long)"
    return None


def _name(ctx: ResourceContext, raw: Any, what: str, line: int | None) -> str:
    text = as_text(raw)
    if text is None:
        raise ctx.fail(f"{what} must be text, not {describe(raw)}", line=line)
    name = text.strip().rstrip(".").lower()
    problem = domain_problem(name)
    if problem is not None:
        raise ctx.fail(f"{what} {text!r} {problem}", line=line, hint="for example www.example.com")
    return name


def _build(ctx: ResourceContext) -> None:
    props, lid = ctx.props, ctx.logical_id
    names = [_name(ctx, props["DomainName"], "DomainName", ctx.line("DomainName"))]
    sans = props.get("SubjectAlternativeNames") or []
    at = ctx.line("SubjectAlternativeNames")
    for index, raw in enumerate(sans):
        name = _name(ctx, raw, f"SubjectAlternativeNames[{index}]", line_of(sans, index, at))
        if name not in names:
            names.append(name)
    method = (as_text(props.get("ValidationMethod")) or "DNS").strip()
    if method not in VALIDATION_METHODS:
        raise ctx.fail(
            f"ValidationMethod must be one of {', '.join(VALIDATION_METHODS)}, not {method!r}",
            prop="ValidationMethod",
        )
    algorithm = (as_text(props.get("KeyAlgorithm")) or DEFAULT_KEY_ALGORITHM).strip()
    if algorithm not in KEY_ALGORITHMS:
        raise ctx.fail(
            f"KeyAlgorithm must be one of {', '.join(KEY_ALGORITHMS)} (what ACM issues public "
            f"certificates with), not {algorithm!r}",
            prop="KeyAlgorithm",
        )
    _check_validation_options(ctx, names)
    if props.get("CertificateAuthorityArn"):
        _note(ctx, "CertificateAuthorityArn (the lab's CA issues every certificate)")
    if "ValidationMethod" in props:
        _note(ctx, f"ValidationMethod {method} (nothing to validate: the lab's CA issues it)")
    ctx.state.extras.setdefault(EXTRAS_KEY, {})[lid] = Certificate(
        lid,
        certificate_arn(ctx.state, lid),
        tuple(names),
        method,
        algorithm,
        ctx.source,
    )


def _check_validation_options(ctx: ResourceContext, names: list[str]) -> None:
    """DomainValidationOptions: each a map whose DomainName is one of the certificate's
    names (ACM refuses another); accepted, nothing to validate in the lab."""
    options = ctx.props.get("DomainValidationOptions")
    if options is None:
        return
    at = ctx.line("DomainValidationOptions")
    if not isinstance(options, list):
        raise ctx.fail(f"DomainValidationOptions must be a list, not {describe(options)}", line=at)
    for index, option in enumerate(options):
        line = line_of(options, index, at)
        where = f"DomainValidationOptions[{index}]"
        if not isinstance(option, dict):
            raise ctx.fail(f"{where} must be a map, not {describe(option)}", line=line)
        unknown = sorted(k for k in option if k not in _VALIDATION_OPTION_KEYS)
        if unknown:
            raise ctx.fail(
                f"{where} has unknown key {unknown[0]!r}",
                line=line,
                hint=f"keys: {', '.join(_VALIDATION_OPTION_KEYS)}",
            )
        if "DomainName" not in option:
            raise ctx.fail(f"{where}.DomainName is required", line=line)
        name = _name(ctx, option["DomainName"], f"{where}.DomainName", line)
        if name not in names:
            raise ctx.fail(
                f"{where}.DomainName {name} is not one of the certificate's names "
                f"({', '.join(names)})",
                line=line,
            )
        _check_validation_place(ctx, option, name, where, line)
    _note(ctx, "DomainValidationOptions (nothing to validate: the lab's CA issues it)")


def _check_validation_place(
    ctx: ResourceContext, option: dict[str, Any], name: str, where: str, line: int | None
) -> None:
    """Where a name is validated must hold it: ValidationDomain is the name or a domain
    above it (ACM's rule), and a hosted zone of this stack named by HostedZoneId is one the
    name is in (DNS validation writes its record there; another zone's never validates)."""
    base = name.removeprefix("*.")
    if "ValidationDomain" in option:
        domain = _name(ctx, option["ValidationDomain"], f"{where}.ValidationDomain", line)
        if not in_zone(base, domain):
            raise ctx.fail(
                f"{where}.ValidationDomain {domain} is not {base} or a domain above it",
                line=line,
                hint=f"for example {base.split('.', 1)[-1] if base.count('.') > 1 else base}",
            )
    zone_ref = as_text(option.get("HostedZoneId"))
    owner = ctx.state.physical_ids.get(zone_ref or "")
    if owner is None or ctx.state.types.get(owner) != HOSTED_ZONE:
        return  # a zone made outside the stack: its name is unknown
    zone = zones(ctx.state).get(owner)
    if zone is not None and not in_zone(base, zone):
        raise ctx.fail(
            f"{where}.HostedZoneId is {owner} ({zone}): {name} is not in that zone, so its "
            "validation record could never be written",
            line=line,
            hint=f"the hosted zone of {base}",
        )


def _note(ctx: ResourceContext, text: str) -> None:
    ctx.state.ignored.append(IgnoredProperty(ctx.logical_id, text))


def _arn(state: BuildState, lid: str) -> str:
    return certificate_arn(state, lid)


register(
    ResourceType(
        CERTIFICATE,
        _build,
        properties={
            "DomainName": prop("string", required=True),
            "SubjectAlternativeNames": prop("list"),
            "ValidationMethod": prop("string"),
            "DomainValidationOptions": prop("list"),
            "KeyAlgorithm": prop("string"),
            "CertificateAuthorityArn": prop("string"),
        },
        # Inert in the lab: nobody logs or exports certificates here.
        ignored=frozenset({"CertificateTransparencyLoggingPreference", "CertificateExport"}),
        ref_value=_arn,
        attributes={"CertificateArn": _arn, "Id": _arn},
    )
)
