"""`testbed cli`'s attached shells get the caller's environment (the lab CA's trust)."""

from __future__ import annotations

import subprocess

from testbed.topologies.attached import export_line


def test_export_line_quotes_values_a_shell_reads_back():
    env = {"SSL_CERT_FILE": "/run/elb-testbed/my lab/trust.pem", "CURL_CA_BUNDLE": "/x'y"}
    line = export_line(env)
    assert line.startswith("export CURL_CA_BUNDLE=")
    out = subprocess.run(
        ["bash", "-c", f'{line}; printf "%s\\n%s" "$SSL_CERT_FILE" "$CURL_CA_BUNDLE"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.splitlines() == [env["SSL_CERT_FILE"], env["CURL_CA_BUNDLE"]]
