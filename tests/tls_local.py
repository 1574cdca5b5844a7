"""What the TLS unit tests share (ALB HTTPS, CLB HTTPS/SSL, NLB TLS): an example template's
model and its bad variants, and one node's haproxy.cfg served by HAProxy on the loopback with
the certificates of a lab CA (testbed.lab.certs.issue_all). No root, no lab."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from testbed.alb.config import NodeFiles, node_files, render
from testbed.errors import BadInput
from testbed.messages import RuntimeTargetInfo
from testbed.model import load_model_text
from testbed.model.types import StackModel
from testbed.plan.balancers import LoadBalancerPlan, NodePlan
from testbed.waiting import wait_for

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def template_model(template: Path, text: str | None = None, **params: str) -> StackModel:
    """The model of `text` (the template's own text if None) as stack "t", errors naming the
    template's file name."""
    return load_model_text(
        text or template.read_text(), filename=template.name, params=params, stack_name="t"
    )


def template_fails(template: Path, change: tuple[str, str], *fragments: str) -> None:
    """The template with `change` (old, new) made is refused, saying every fragment."""
    text = template.read_text()
    assert change[0] in text
    with pytest.raises(BadInput) as info:
        template_model(template, text.replace(*change))
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


@contextmanager
def node_haproxy(
    lb: LoadBalancerPlan,
    node: NodePlan,
    lab_dir: Path,
    port: int,
    targets: Mapping[str, list[RuntimeTargetInfo]] | None = None,
    stats_socket: bool = True,
) -> Iterator[NodeFiles]:
    """HAProxy (in the foreground, -db) on `node`'s haproxy.cfg of `lb` under `lab_dir`,
    checked first (haproxy -c), until the block ends; ready once `port` on 127.0.0.1 takes
    connections. stats_socket=False leaves the runtime socket out (a pytest tmp_path can be
    longer than a unix socket's path may be)."""
    files = node_files(lab_dir, node.host)
    files.dir.mkdir(parents=True, exist_ok=True)
    text = render(lb, node, files, targets)
    if not stats_socket:
        text = text.replace(f"    stats socket {files.stats_socket}", "    #")
    files.config.write_text(text)
    check = subprocess.run(["haproxy", "-c", "-f", str(files.config)], capture_output=True)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    proc = subprocess.Popen(
        ["haproxy", "-db", "-f", str(files.config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=files.dir,
    )
    try:

        def listening() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"HAProxy exited: {proc.stderr.read().decode() if proc.stderr else ''}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                return False

        wait_for(listening, 10, "HAProxy to serve")
        yield files
    finally:
        proc.terminate()
        proc.wait(timeout=10)
