"""What the TLS integration tests share (tests/integration: test_alb_tls, test_nlb_tls,
test_certs, test_certs_inferred): a lab of a template given as text, a load balancer node's
public address, and TLS clients in a lab host (curl and openssl s_client) that reach a name
pinned to an address, so that SNI and the certificate check use the real name. Root, a lab."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from testbed.lab.api import Lab


@contextmanager
def lab_of_text(tmp_path_factory: Any, text: str, file_name: str) -> Iterator[Lab]:
    """A lab of the template `text`, written to a temporary `file_name` (its errors and
    events name that file), until the block ends."""
    path = tmp_path_factory.mktemp("tls") / file_name
    path.write_text(text)
    with Lab.up(str(path)) as lab:
        yield lab


@contextmanager
def healthy_lab(template: str, *groups: str) -> Iterator[Lab]:
    """A lab of `template` once every target of `groups` is healthy, until the block ends."""
    with Lab.up(template) as lab:
        for group in groups:
            lab.wait_healthy(group, timeout=60)
        yield lab


def node_public_ip(lab: Lab, lb: str, index: int = 0) -> str:
    """The public address of node `index` of load balancer `lb` (its logical id)."""
    found = next(x for x in lab.state["load_balancers"] if x["name"] == lb)
    return found["nodes"][index]["public_ip"]


def curl_pinned(
    lab: Lab,
    client: str,
    ip: str,
    url: str,
    *extra: str,
    name: str,
    ports: tuple[int, ...] = (80, 443),
    max_time: int = 5,
) -> tuple[int, str, str]:
    """curl in host `client`, `name` pinned to `ip` on `ports`: (exit code, stdout, stderr).
    The client trusts the lab CA (no -k)."""
    argv = ["curl", "-s", "-m", str(max_time)]
    for port in ports:
        argv += ["--resolve", f"{name}:{port}:{ip}"]
    proc = lab.host(client).run([*argv, *extra, url], timeout=max_time + 10)
    return proc.returncode, proc.stdout, proc.stderr


def s_client(lab: Lab, client: str, ip: str, port: int, name: str, *options: str) -> str:
    """What `openssl s_client` in host `client` says (stdout and stderr) of one handshake with
    ip:port, SNI `name`, the options (-tls1, -alpn h2, ...) added; it sends nothing."""
    command = f"echo | openssl s_client -connect {ip}:{port} -servername {name}"
    proc = lab.host(client).run(" ".join([command, *options, "2>&1"]), timeout=15)
    return proc.stdout
