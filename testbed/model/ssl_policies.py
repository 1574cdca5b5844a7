"""AWS's predefined Elastic Load Balancing security policies (SslPolicy), as protocol versions
and OpenSSL cipher names.

A policy is what a TLS listener negotiates with clients: the TLS versions it accepts and, in
its order of preference, the ciphers (TLS 1.2 and older) and ciphersuites (TLS 1.3). AWS
documents these tables for ALB, NLB and CLB (describe-ssl-policies); the names here are
OpenSSL's, which are the names AWS uses for TLS <= 1.2 ciphers.

    policy("ELBSecurityPolicy-TLS13-1-2-2021-06").min_tls   # "TLSv1.2"

ALB and NLB listeners default to ELBSecurityPolicy-2016-08 when created by CloudFormation.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

DEFAULT_POLICY = "ELBSecurityPolicy-2016-08"
TLS_VERSIONS = ("TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")

ELBV2 = frozenset({"application", "network"})
CLASSIC = frozenset({"classic"})
EVERY = ELBV2 | CLASSIC


@dataclass(frozen=True)
class SslPolicy:
    """One predefined security policy: the TLS versions and ciphers it allows."""

    name: str
    min_tls: str  # one of TLS_VERSIONS
    max_tls: str
    ciphers: tuple[str, ...]  # OpenSSL names, TLS <= 1.2, the server's order of preference
    ciphersuites: tuple[str, ...]  # TLS 1.3
    load_balancers: frozenset[str] = ELBV2  # the LB types that offer it

    def allows(self, version: str) -> bool:
        """Whether a TLS version ("TLSv1.0" ... "TLSv1.3") is within the policy."""
        index = TLS_VERSIONS.index
        return index(self.min_tls) <= index(version) <= index(self.max_tls)


TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")

# The cipher groups AWS's tables are made of, in the tables' order.
_ECDHE_GCM = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
)
_ECDHE_GCM_256 = (
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
)
_ECDHE_SHA2_128 = ("ECDHE-ECDSA-AES128-SHA256", "ECDHE-RSA-AES128-SHA256")
_ECDHE_SHA2_256 = ("ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES256-SHA384")
_ECDHE_SHA1_128 = ("ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA")
_ECDHE_SHA1_256 = ("ECDHE-RSA-AES256-SHA", "ECDHE-ECDSA-AES256-SHA")
_RSA_128 = ("AES128-GCM-SHA256", "AES128-SHA256")
_RSA_SHA1_128 = ("AES128-SHA",)
_RSA_256 = ("AES256-GCM-SHA384", "AES256-SHA256")
_RSA_SHA1_256 = ("AES256-SHA",)

# ELBSecurityPolicy-2016-08's list: every ECDHE and RSA AES cipher, SHA-1 ones included.
_ECDHE_ALL = (
    *_ECDHE_GCM,
    *_ECDHE_SHA2_128,
    *_ECDHE_SHA1_128,
    *_ECDHE_GCM_256,
    *_ECDHE_SHA2_256,
    *_ECDHE_SHA1_256,
)
_DEFAULT_CIPHERS = (
    *_ECDHE_ALL,
    *_RSA_128,
    *_RSA_SHA1_128,
    *_RSA_256,
    *_RSA_SHA1_256,
)
# TLS 1.2 without SHA-1 (ELBSecurityPolicy-TLS-1-2-2017-01).
_TLS12_CIPHERS = (
    *_ECDHE_GCM,
    *_ECDHE_SHA2_128,
    *_ECDHE_GCM_256,
    *_ECDHE_SHA2_256,
    *_RSA_128,
    *_RSA_256,
)
_FS_TLS12 = (*_ECDHE_GCM, *_ECDHE_SHA2_128, *_ECDHE_GCM_256, *_ECDHE_SHA2_256)
_FS_GCM = (*_ECDHE_GCM, *_ECDHE_GCM_256)
# ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06 (TLS 1.2 ciphers): SHA-1 ones too, in AWS's order.
_TLS13_EXT2 = (
    *_ECDHE_GCM,
    *_ECDHE_SHA2_128,
    *_ECDHE_SHA1_128,
    *_ECDHE_GCM_256,
    *_ECDHE_SHA2_256,
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    *_RSA_128,
    *_RSA_SHA1_128,
    *_RSA_256,
    *_RSA_SHA1_256,
)
# The CLB's ELBSecurityPolicy-2015-03: 2016-08's with DHE and 3DES (DES-CBC3-SHA: OpenSSL 3
# leaves it out; the list stays as AWS documents it), and 2015-02: the same without 3DES.
_CLASSIC_2015_02 = (
    *_ECDHE_GCM,
    *_ECDHE_SHA2_128,
    *_ECDHE_SHA1_128,
    "DHE-RSA-AES128-SHA",
    *_ECDHE_GCM_256,
    *_ECDHE_SHA2_256,
    *_ECDHE_SHA1_256,
    *_RSA_128,
    *_RSA_SHA1_128,
    *_RSA_256,
    *_RSA_SHA1_256,
    "DHE-DSS-AES128-SHA",
)
_CLASSIC_2015_03 = (*_CLASSIC_2015_02, "DES-CBC3-SHA")


def _p(
    name: str,
    min_tls: str,
    max_tls: str,
    ciphers: tuple[str, ...],
    lbs: frozenset[str] = ELBV2,
) -> SslPolicy:
    suites = TLS13_SUITES if max_tls == "TLSv1.3" else ()
    return SslPolicy(name, min_tls, max_tls, ciphers, suites, lbs)


_POLICIES = (
    # TLS 1.3 policies (ALB, NLB).
    _p("ELBSecurityPolicy-TLS13-1-2-2021-06", "TLSv1.2", "TLSv1.3", _FS_TLS12),
    _p("ELBSecurityPolicy-TLS13-1-2-Res-2021-06", "TLSv1.2", "TLSv1.3", _FS_GCM),
    _p("ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06", "TLSv1.2", "TLSv1.3", _TLS12_CIPHERS),
    _p("ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06", "TLSv1.2", "TLSv1.3", _TLS13_EXT2),
    _p("ELBSecurityPolicy-TLS13-1-1-2021-06", "TLSv1.1", "TLSv1.3", _DEFAULT_CIPHERS),
    _p("ELBSecurityPolicy-TLS13-1-0-2021-06", "TLSv1.0", "TLSv1.3", _DEFAULT_CIPHERS),
    _p("ELBSecurityPolicy-TLS13-1-3-2021-06", "TLSv1.3", "TLSv1.3", ()),
    # The default and the TLS-version policies.
    _p(DEFAULT_POLICY, "TLSv1.0", "TLSv1.2", _DEFAULT_CIPHERS, EVERY),
    # 2015-05: 2016-08's list for ALB and NLB; a CLB's adds DES-CBC3-SHA, which OpenSSL 3
    # leaves out anyway (one row serves both).
    _p("ELBSecurityPolicy-2015-05", "TLSv1.0", "TLSv1.2", _DEFAULT_CIPHERS, EVERY),
    _p(
        "ELBSecurityPolicy-TLS-1-0-2015-04",
        "TLSv1.0",
        "TLSv1.2",
        (*_DEFAULT_CIPHERS, "DES-CBC3-SHA"),
    ),
    _p("ELBSecurityPolicy-TLS-1-1-2017-01", "TLSv1.1", "TLSv1.2", _DEFAULT_CIPHERS, EVERY),
    _p("ELBSecurityPolicy-TLS-1-2-2017-01", "TLSv1.2", "TLSv1.2", _TLS12_CIPHERS, EVERY),
    _p(
        "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",
        "TLSv1.2",
        "TLSv1.2",
        (*_TLS12_CIPHERS, *_ECDHE_SHA1_128, *_ECDHE_SHA1_256, *_RSA_SHA1_128, *_RSA_SHA1_256),
    ),
    # Forward-secrecy policies: ECDHE only.
    _p("ELBSecurityPolicy-FS-2018-06", "TLSv1.0", "TLSv1.2", _ECDHE_ALL),
    _p("ELBSecurityPolicy-FS-1-1-2019-08", "TLSv1.1", "TLSv1.2", _ECDHE_ALL),
    _p("ELBSecurityPolicy-FS-1-2-2019-08", "TLSv1.2", "TLSv1.2", _ECDHE_ALL),
    _p("ELBSecurityPolicy-FS-1-2-Res-2019-08", "TLSv1.2", "TLSv1.2", _FS_TLS12),
    _p("ELBSecurityPolicy-FS-1-2-Res-2020-10", "TLSv1.2", "TLSv1.2", _FS_GCM),
    # Classic Load Balancer only: AWS's older predefined policies. 2015-03 and 2015-02 as AWS's
    # CLB table gives them; 2014-10, 2014-01 and 2011-08 are named by AWS but no longer in its
    # table: the oldest documented list (2015-03's) stands in, without their SSLv3 and RC4
    # (this OpenSSL has neither).
    _p("ELBSecurityPolicy-2015-03", "TLSv1.0", "TLSv1.2", _CLASSIC_2015_03, CLASSIC),
    _p("ELBSecurityPolicy-2015-02", "TLSv1.0", "TLSv1.2", _CLASSIC_2015_02, CLASSIC),
    _p("ELBSecurityPolicy-2014-10", "TLSv1.0", "TLSv1.2", _CLASSIC_2015_03, CLASSIC),
    _p("ELBSecurityPolicy-2014-01", "TLSv1.0", "TLSv1.2", _CLASSIC_2015_03, CLASSIC),
    _p("ELBSecurityPolicy-2011-08", "TLSv1.0", "TLSv1.2", _CLASSIC_2015_03, CLASSIC),
    # The CLB sample policies, each under both of AWS's names (…CipherPolicy and
    # …NegotiationPolicy); their cipher lists are not documented: the default's stands in.
    *(
        _p(f"ELBSample-{kind}Default{suffix}", "TLSv1.0", "TLSv1.2", _DEFAULT_CIPHERS, CLASSIC)
        for kind in ("ELB", "OpenSSL")
        for suffix in ("CipherPolicy", "NegotiationPolicy")
    ),
)

POLICIES: dict[str, SslPolicy] = {p.name: p for p in _POLICIES}


def policy(name: str) -> SslPolicy:
    """The predefined policy of that name; KeyError (with close names) for any other."""
    try:
        return POLICIES[name]
    except KeyError:
        raise KeyError(unknown_message(name)) from None


def close_names(name: str, lb_type: str | None = None) -> list[str]:
    """Predefined policy names like `name` (for an error's hint)."""
    names = [p.name for p in _POLICIES if lb_type is None or lb_type in p.load_balancers]
    return difflib.get_close_matches(name, names, n=3, cutoff=0.6)


def unknown_message(name: str, lb_type: str | None = None) -> str:
    """'unknown SslPolicy X; did you mean ...?' for an error message."""
    close = close_names(name, lb_type)
    hint = f"; did you mean {', '.join(close)}?" if close else f" (e.g. {DEFAULT_POLICY})"
    return f"unknown security policy {name!r}{hint}"
