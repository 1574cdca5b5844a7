"""The lab's certificate authority and the certificates it issues.

Each lab has its own CA, made when the lab is built and kept with the lab's files (never in the
machine's trust store): a root ("ELB Lab Root CA", exportable: `testbed cert LAB --ca`) and an
intermediate that signs the servers' certificates, as ACM's certificates come with a chain.
Every certificate of the plan (testbed.plan.certificates) is issued for its names, valid 395
days as ACM's are, with the key algorithm the template asked for.

Files, under LAB_DIR/certs:
  ca.pem                 the root certificate (what clients trust)
  ca.key, inter.pem, inter.key
  trust.pem              the machine's CAs and the lab root: every lab host's SSL_CERT_FILE,
                         CURL_CA_BUNDLE and REQUESTS_CA_BUNDLE (testbed.lab.hostexec)
  issued/NAME.pem        certificate, chain and private key in one file (mode 0600): what
                         HAProxy's `crt` takes; NAME from the ARN (pem_path)
  hosts/HOST.pem         a certificate for a lab host's own server (issue_host_cert)
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
import ssl
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from testbed.errors import LabError

CERTS_DIR = "certs"
ORGANIZATION = "ELB Lab"
ROOT_NAME = "ELB Lab Root CA"
INTERMEDIATE_NAME = "ELB Lab Server CA 1"
CA_DAYS = 3650
LEAF_DAYS = 395  # ACM's certificates are valid 13 months
# Hosts' clocks are the machine's; a little slack for a certificate used right away.
BACKDATE = datetime.timedelta(minutes=5)
SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
TRUST_VARIABLES = ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")

_PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


# --- where things are --------------------------------------------------------------------


def certs_dir(lab_dir: Path) -> Path:
    return Path(lab_dir) / CERTS_DIR


def ca_path(lab_dir: Path) -> Path:
    """The lab CA's root certificate (PEM): what a client trusts to verify the lab."""
    return certs_dir(lab_dir) / "ca.pem"


def _ca_key_path(lab_dir: Path) -> Path:
    return certs_dir(lab_dir) / "ca.key"


def _inter_path(lab_dir: Path) -> Path:
    return certs_dir(lab_dir) / "inter.pem"


def _inter_key_path(lab_dir: Path) -> Path:
    return certs_dir(lab_dir) / "inter.key"


def trust_bundle(lab_dir: Path) -> Path:
    """The machine's CAs and the lab root, one PEM file: every lab host's trust store."""
    return certs_dir(lab_dir) / "trust.pem"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60] or "cert"


def pem_path(lab_dir: Path, arn: str) -> Path:
    """Certificate + chain + private key of certificate `arn` (HAProxy's `crt`, mode 0600)."""
    tail = arn.rsplit("/", 1)[-1] if "/" in arn else arn.rsplit(":", 1)[-1]
    digest = hashlib.sha256(arn.encode()).hexdigest()[:8]
    return certs_dir(lab_dir) / "issued" / f"{_slug(tail)}-{digest}.pem"


def host_pem_path(lab_dir: Path, host: str) -> Path:
    """Certificate + chain + key for host `host`'s own server (issue_host_cert)."""
    return certs_dir(lab_dir) / "hosts" / f"{_slug(host)}.pem"


def trust_env(lab_dir: Path) -> dict[str, str]:
    """SSL_CERT_FILE, CURL_CA_BUNDLE and REQUESTS_CA_BUNDLE at the lab's trust bundle when
    the lab has one, else {}: OpenSSL (Python's ssl, curl, openssl s_client), curl and
    requests then verify the lab's certificates and the public ones."""
    bundle = trust_bundle(lab_dir)
    if not bundle.is_file():
        return {}
    return {name: str(bundle) for name in TRUST_VARIABLES}


# --- writing -------------------------------------------------------------------------------


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write atomically (a reader never sees half a file), with `mode`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _new_key(algorithm: str) -> _PrivateKey:
    if algorithm == "RSA_2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "EC_prime256v1":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EC_secp384r1":
        return ec.generate_private_key(ec.SECP384R1())
    raise LabError(f"unknown key algorithm {algorithm!r}")


def _key_pem(key: _PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common: str, lab: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION)]
    if lab:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"lab {lab}"[:64]))
    parts.append(x509.NameAttribute(NameOID.COMMON_NAME, common[:64]))
    return x509.Name(parts)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _builder(
    subject: x509.Name,
    key: _PrivateKey,
    issuer: x509.Name,
    issuer_key: _PrivateKey,
    days: int,
    *,
    ca: bool,
    path_length: int | None = None,
) -> x509.CertificateBuilder:
    """What every certificate of the lab has: names, key, validity (backdated a little for
    clocks that differ), basic constraints, key usage for a CA or a server, key ids."""
    now = _now()
    server_encipherment = not ca and isinstance(key, rsa.RSAPrivateKey)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=server_encipherment,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )


def _ca_cert(
    subject: x509.Name,
    key: _PrivateKey,
    issuer: x509.Name,
    issuer_key: _PrivateKey,
    path_length: int | None,
) -> x509.Certificate:
    builder = _builder(subject, key, issuer, issuer_key, CA_DAYS, ca=True, path_length=path_length)
    return builder.sign(issuer_key, hashes.SHA256())


def _load_key(path: Path) -> _PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey))
    return key


def ensure_ca(lab_dir: Path) -> Path:
    """The lab's CA (root and intermediate) and its trust bundle, made once per lab; the
    root certificate's path."""
    root = ca_path(lab_dir)
    paths = (root, _ca_key_path(lab_dir), _inter_path(lab_dir), _inter_key_path(lab_dir))
    made = not all(p.is_file() for p in paths)
    if made:
        lab = Path(lab_dir).name
        root_key = _new_key("RSA_2048")
        root_name = _name(ROOT_NAME, lab)
        root_cert = _ca_cert(root_name, root_key, root_name, root_key, None)
        inter_key = _new_key("RSA_2048")
        inter_cert = _ca_cert(_name(INTERMEDIATE_NAME, lab), inter_key, root_name, root_key, 0)
        _write(_ca_key_path(lab_dir), _key_pem(root_key), 0o600)
        _write(_inter_key_path(lab_dir), _key_pem(inter_key), 0o600)
        _write(_inter_path(lab_dir), _cert_pem(inter_cert))
        _write(root, _cert_pem(root_cert))
    if made or not trust_bundle(lab_dir).is_file():
        _write_trust_bundle(lab_dir)
    return root


def _system_bundle() -> bytes:
    candidates = [ssl.get_default_verify_paths().cafile, *SYSTEM_BUNDLES]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate).read_bytes()
    return b""


def _write_trust_bundle(lab_dir: Path) -> None:
    system = _system_bundle()
    if system and not system.endswith(b"\n"):
        system += b"\n"
    label = f"# {ROOT_NAME} of lab {Path(lab_dir).name}\n".encode()
    _write(trust_bundle(lab_dir), system + label + ca_path(lab_dir).read_bytes())


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _issue(lab_dir: Path, path: Path, names: Sequence[str], algorithm: str) -> Path:
    """Issue a server certificate for `names` from the lab's intermediate into `path`."""
    if not names:
        raise LabError(f"a certificate needs at least one name ({path.name})")
    ensure_ca(lab_dir)
    inter = x509.load_pem_x509_certificate(_inter_path(lab_dir).read_bytes())
    inter_key = _load_key(_inter_key_path(lab_dir))
    key = _new_key(algorithm)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])])
    cert = (
        _builder(subject, key, inter.subject, inter_key, LEAF_DAYS, ca=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(_san(names), critical=False)
        .sign(inter_key, hashes.SHA256())
    )
    _write(path, _cert_pem(cert) + _cert_pem(inter) + _key_pem(key), 0o600)
    return path


def _current(lab_dir: Path, path: Path, names: Sequence[str]) -> bool:
    """True when `path` holds a certificate for exactly `names`, from this lab's
    intermediate, valid for at least another day: kept as it is."""
    if not path.is_file() or not _inter_path(lab_dir).is_file():
        return False
    try:
        info = read(path)
        inter = x509.load_pem_x509_certificate(_inter_path(lab_dir).read_bytes())
    except (ValueError, OSError):
        return False
    return (
        list(info.names) == list(names)
        and info.issuer == inter.subject.rfc4514_string()
        and info.not_after > _now() + datetime.timedelta(days=1)
    )


def issue_all(lab_dir: Path, plan: Any) -> list[Path]:
    """The lab's CA (made once) and a certificate for every certificate of `plan`
    (NetworkPlan.certificates), each as pem_path gives; called by the lab builder before any
    load balancer starts, and again on an update (certificates already issued for the same
    names are kept). Returns the CA's path, then the certificates' ones."""
    out = [ensure_ca(lab_dir)]
    for c in getattr(plan, "certificates", ()):
        path = pem_path(lab_dir, c.arn)
        if not _current(lab_dir, path, c.names):
            _issue(lab_dir, path, c.names, c.key_algorithm)
        out.append(path)
    return out


def issue_host_cert(
    lab_dir: Path, host: str, names: Iterable[str], key_algorithm: str = "RSA_2048"
) -> Path:
    """A certificate from the lab's CA for a lab host's own TLS server (an HTTPS target):
    names are DNS names or IP addresses (the host's address). Kept when already issued for
    the same names."""
    wanted = list(dict.fromkeys(names))
    path = host_pem_path(lab_dir, host)
    if not _current(lab_dir, path, wanted):
        _issue(lab_dir, path, wanted, key_algorithm)
    return path


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateInfo:
    """What `testbed cert` shows of one certificate."""

    subject: str
    names: tuple[str, ...]  # subject alternative names, DNS names and addresses
    issuer: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    serial: str
    sha256: str
    key: str  # "RSA 2048", "EC secp384r1"

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "names": list(self.names),
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "serial": self.serial,
            "sha256": self.sha256,
            "key": self.key,
        }


def _key_text(cert: x509.Certificate) -> str:
    public = cert.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        return f"RSA {public.key_size}"
    if isinstance(public, ec.EllipticCurvePublicKey):
        return f"EC {public.curve.name}"
    return type(public).__name__


def read(path: Path) -> CertificateInfo:
    """The first certificate of PEM file `path` (a server's: the chain follows it)."""
    cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(
            [*san.get_values_for_type(x509.DNSName)]
            + [str(a) for a in san.get_values_for_type(x509.IPAddress)]
        )
    except x509.ExtensionNotFound:
        names = ()
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        names=names,
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=f"{cert.serial_number:x}",
        sha256=cert.fingerprint(hashes.SHA256()).hex(":"),
        key=_key_text(cert),
    )
