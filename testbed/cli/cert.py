"""testbed cert: the certificates a lab's CA issued, and the CA itself (to trust it)."""

from __future__ import annotations

import json
from typing import Any

from testbed.cli.common import subcommand
from testbed.errors import BadInput
from testbed.lab import certs
from testbed.lab.api import Lab
from testbed.plan.certificates import INFERRED, CertificatePlan

INFERRED_NOTE = (
    "names inferred: the template names this certificate by ARN only, so the lab issued it "
    "for its load balancers' DNS names and the Route53 records pointing at them"
)


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "cert",
        run,
        "the certificates of a lab (subject, names, issuer, validity) and its CA",
        epilog="examples:\n"
        "  testbed cert default                       every certificate of the lab\n"
        "  testbed cert default arn:aws:acm:us-east-1:123456789012:certificate/…\n"
        "  testbed cert default SiteCert              by logical id, or the ARN's last part\n"
        "  testbed cert default --ca > lab-ca.pem     the lab's CA, to trust it:\n"
        "      curl --cacert lab-ca.pem https://…     (hosts of the lab trust it already)\n"
        "  testbed cert default --json\n\n"
        "Each lab has its own certificate authority, kept in the lab's folder (never in the\n"
        "machine's trust store). It issues a certificate for every\n"
        "AWS::CertificateManager::Certificate of the template and for every certificate ARN\n"
        "a listener names (names inferred from the load balancer's DNS name and the Route53\n"
        "records pointing at it). Programs in lab hosts trust it through SSL_CERT_FILE,\n"
        "CURL_CA_BUNDLE and REQUESTS_CA_BUNDLE.",
    )
    p.add_argument("name", help="lab name")
    p.add_argument(
        "arn", nargs="?", help="one certificate: its ARN, logical id, or the ARN's last part"
    )
    p.add_argument("--ca", action="store_true", help="print the lab CA's certificate (PEM)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _pick(found: tuple[CertificatePlan, ...], wanted: str, lab: str) -> CertificatePlan:
    for c in found:
        if wanted in (c.arn, c.logical_id) or c.arn.rsplit("/", 1)[-1] == wanted:
            return c
    known = ", ".join(c.logical_id or c.arn for c in found) or "none"
    raise BadInput(
        f"lab {lab} has no certificate {wanted!r} (its certificates: {known})",
        hint=f"testbed cert {lab} lists them",
    )


def _entry(lab: Lab, c: CertificatePlan) -> dict[str, Any]:
    path = certs.pem_path(lab.dir, c.arn)
    if not path.is_file():
        raise BadInput(
            f"lab {lab.name} has no issued file for {c.arn}",
            hint="the lab was built before it had certificates: bring it up again",
        )
    out: dict[str, Any] = {
        "arn": c.arn,
        "logical_id": c.logical_id,
        "source": c.source,
        "used_by": list(c.used_by),
        "file": str(path),
        **certs.read(path).to_dict(),
    }
    if c.source == INFERRED:
        out["note"] = INFERRED_NOTE
    return out


def _text(entry: dict[str, Any]) -> str:
    title = entry["logical_id"] or entry["arn"]
    lines = [
        f"{title} ({entry['source']})",
        f"  arn      {entry['arn']}",
        f"  subject  {entry['subject']}",
        f"  names    {', '.join(entry['names'])}",
        f"  issuer   {entry['issuer']}",
        f"  valid    {entry['not_before']} .. {entry['not_after']}",
        f"  key      {entry['key']}, sha256 {entry['sha256']}",
        f"  used by  {', '.join(entry['used_by']) or '(no listener)'}",
        f"  file     {entry['file']}",
    ]
    if "note" in entry:
        lines.append(f"  note     {entry['note']}")
    return "\n".join(lines)


def run(args: Any) -> int:
    lab = Lab.attach(args.name)
    ca = certs.ca_path(lab.dir)
    if not ca.is_file():
        raise BadInput(
            f"lab {args.name} has no certificate authority",
            hint="the lab was built before it had one: bring it up again",
        )
    if args.ca:
        if args.json:
            info = certs.read(ca).to_dict()
            print(json.dumps({"file": str(ca), "pem": ca.read_text(), **info}, indent=1))
        else:
            print(ca.read_text(), end="")
        return 0
    found = lab.plan.certificates
    chosen = (_pick(found, args.arn, args.name),) if args.arn else found
    entries = [_entry(lab, c) for c in chosen]
    if args.json:
        print(json.dumps({"ca": str(ca), "certificates": entries}, indent=1))
        return 0
    for entry in entries:
        print(_text(entry))
    if not entries:
        print(f"lab {args.name} has no certificates (no HTTPS, TLS or SSL listener names one)")
    root = certs.read(ca)
    print(f"CA  {root.subject}, valid until {root.not_after:%Y-%m-%d}: {ca}")
    print(f"    trust it outside the lab: testbed cert {args.name} --ca > lab-ca.pem")
    return 0
