"""AWS's predefined security policies as TLS versions and OpenSSL ciphers."""

from __future__ import annotations

import ssl

import pytest

from testbed.model import ssl_policies
from testbed.model.ssl_policies import DEFAULT_POLICY, POLICIES, TLS13_SUITES, policy


def test_the_default_and_the_modern_policies():
    default = policy(DEFAULT_POLICY)
    assert (default.min_tls, default.max_tls, default.ciphersuites) == ("TLSv1.0", "TLSv1.2", ())
    assert default.ciphers[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert len(default.ciphers) == 18
    modern = policy("ELBSecurityPolicy-TLS13-1-2-2021-06")
    assert (modern.min_tls, modern.max_tls) == ("TLSv1.2", "TLSv1.3")
    assert modern.ciphersuites == TLS13_SUITES
    assert all(c.startswith("ECDHE-") for c in modern.ciphers)
    assert not modern.allows("TLSv1.0")
    assert modern.allows("TLSv1.3")
    assert policy("ELBSecurityPolicy-TLS13-1-3-2021-06").ciphers == ()
    assert "DES-CBC3-SHA" in policy("ELBSecurityPolicy-TLS-1-0-2015-04").ciphers
    assert policy("ELBSecurityPolicy-2015-05").ciphers == default.ciphers  # identical on AWS
    # TLS 1.2-only policies without SHA-1 ciphers; the Ext ones keep them.
    tls12 = policy("ELBSecurityPolicy-TLS-1-2-2017-01")
    assert not any(c.endswith("-SHA") for c in tls12.ciphers)
    assert "AES128-SHA" in policy("ELBSecurityPolicy-TLS-1-2-Ext-2018-06").ciphers
    assert all(c.startswith("ECDHE-") for c in policy("ELBSecurityPolicy-FS-2018-06").ciphers)


def test_every_cipher_is_known_to_openssl():
    """Every name is OpenSSL's (DES-CBC3-SHA aside: OpenSSL 3 leaves it out by default)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for p in POLICIES.values():
        names = [c for c in p.ciphers if c != "DES-CBC3-SHA"]
        if names:
            ctx.set_ciphers(":".join(names) + ":@SECLEVEL=0")
            known = {c["name"] for c in ctx.get_ciphers()}
            assert set(names) <= known, (p.name, set(names) - known)
        assert p.min_tls in ssl_policies.TLS_VERSIONS
        assert p.allows(p.max_tls)


def test_classic_only_and_unknown_names():
    assert policy("ELBSample-ELBDefaultNegotiationPolicy").load_balancers == {"classic"}
    assert "classic" in policy(DEFAULT_POLICY).load_balancers
    with pytest.raises(KeyError, match="did you mean ELBSecurityPolicy-TLS13-1-2-2021-06"):
        policy("ELBSecurityPolicy-TLS13-1-2-2021-07")
    assert "e.g. ELBSecurityPolicy-2016-08" in ssl_policies.unknown_message("Strong")


def test_tls13_policies_in_aws_order():
    """AWS's describe-ssl-policies order: Ext2 puts the SHA-1 ciphers beside their kin."""
    ext2 = policy("ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06").ciphers
    assert ext2[4:6] == ("ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA")
    assert ext2[10:12] == ("ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA")
    assert ext2[-6:] == (
        "AES128-GCM-SHA256",
        "AES128-SHA256",
        "AES128-SHA",
        "AES256-GCM-SHA384",
        "AES256-SHA256",
        "AES256-SHA",
    )
    assert len(ext2) == 18
    res = policy("ELBSecurityPolicy-TLS13-1-2-Res-2021-06").ciphers
    assert all("GCM" in c and c.startswith("ECDHE-") for c in res)
    assert len(res) == 4
    assert len(policy("ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06").ciphers) == 12
    assert policy("ELBSecurityPolicy-TLS13-1-0-2021-06").min_tls == "TLSv1.0"


def test_classic_older_and_sample_policies():
    """The CLB's older predefined policies and both names of each sample policy."""
    for name in (
        "ELBSecurityPolicy-2015-03",
        "ELBSecurityPolicy-2015-02",
        "ELBSecurityPolicy-2014-10",
        "ELBSecurityPolicy-2014-01",
        "ELBSecurityPolicy-2011-08",
        "ELBSample-ELBDefaultCipherPolicy",
        "ELBSample-ELBDefaultNegotiationPolicy",
        "ELBSample-OpenSSLDefaultCipherPolicy",
        "ELBSample-OpenSSLDefaultNegotiationPolicy",
    ):
        found = policy(name)
        assert found.load_balancers == {"classic"}, name
        assert (found.min_tls, found.max_tls) == ("TLSv1.0", "TLSv1.2"), name
    march = policy("ELBSecurityPolicy-2015-03").ciphers
    assert {"DHE-RSA-AES128-SHA", "DHE-DSS-AES128-SHA", "DES-CBC3-SHA"} <= set(march)
    assert march.index("DHE-RSA-AES128-SHA") == 6  # after the ECDHE AES128 ones, as AWS's table
    assert policy("ELBSecurityPolicy-2015-02").ciphers == march[:-1]  # no 3DES
