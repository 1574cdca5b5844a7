"""An ALB as the target of an NLB on a real lab (issue 17, TargetType alb).

templates/nlb-to-alb.yaml: the internet-facing NLB's TCP:80 listener forwards to AlbTargets,
whose one target is the internal ALB. The plan makes one target of each ALB node; the NLB's
switches send each connection to the ALB node of the client's AZ, on the ALB's listener port,
with the client's address kept: the ALB's HAProxy sees the client as its peer, so the
instance behind the ALB reads the client in X-Forwarded-For. The NLB health-checks the ALB's
nodes by HTTP (the ALB answers through its own rules and target). Bad input: exit 2.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from testbed.accesslog import parse_line
from testbed.alb.config import node_files
from testbed.lab.api import Lab
from tests.assertions import run_cli

pytestmark = pytest.mark.integration
TEMPLATE = "templates/nlb-to-alb.yaml"
CLIENT = "Client1"


@pytest.fixture(scope="module")
def lab():
    with Lab.up(TEMPLATE) as lab:
        lab.wait_healthy("WebTargets", timeout=60)
        lab.wait_healthy("AlbTargets", timeout=60)  # the NLB's HTTP checks of the ALB nodes
        yield lab


def nlb_node(lab, index: int = 0) -> dict:
    lb = next(x for x in lab.state["load_balancers"] if x["name"] == "Nlb")
    return lb["nodes"][index]


def get(lab, ip: str, path: str = "/hello") -> dict:
    proc = lab.host(CLIENT).run(["curl", "-s", "-m", "5", f"http://{ip}{path}"], timeout=15)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    return json.loads(proc.stdout)


def test_the_instance_answers_through_nlb_and_alb_with_the_client_address(lab):
    client = lab.host(CLIENT).ip
    for index in (0, 1):  # each NLB node (cross-zone off: its own AZ's ALB node)
        body = get(lab, nlb_node(lab, index)["public_ip"])
        assert body["instance"] == "Web1"
        alb_nodes = {
            n["ip"]
            for lb in lab.state["load_balancers"]
            if lb["name"] == "Alb"
            for n in lb["nodes"]
        }
        assert body["client"]["ip"] in alb_nodes  # the ALB proxies: its node is the peer
        # The ALB saw the client itself (the NLB kept its address) and says so.
        assert body["forwarded"]["x-forwarded-for"] == client, body


def test_the_alb_access_log_names_the_client(lab):
    marker = f"/log-{time.time_ns()}"
    get(lab, nlb_node(lab)["public_ip"], marker)
    log = node_files(lab.dir, "Alb-1a").access_log  # the first NLB node's AZ
    lab.wait_for(lambda: marker in log.read_text(), 10, "the request's log line")
    (rec,) = [r for r in map(parse_line, log.read_text().splitlines()) if r and r.path == marker]
    assert rec.client.startswith(f"{lab.host(CLIENT).ip}:")  # the ALB's peer: the client
    assert rec.status == 200


def test_targets_show_the_alb_and_its_nodes_healthy(lab):
    rows = list(lab.targets("AlbTargets"))
    assert sorted(r["Host"] for r in rows) == ["Alb-1a", "Alb-1b"]
    assert {r["Target"]["Id"] for r in rows} == {"Alb"}
    assert {r["TargetHealth"]["State"] for r in rows} == {"healthy"}
    proc = run_cli("targets", lab.name, "AlbTargets")
    assert proc.returncode == 0, proc.stderr
    assert "Alb (Alb-1a)" in proc.stdout
    assert "healthy" in proc.stdout


def test_deregister_and_register_the_alb_by_name(lab):
    proc = run_cli("deregister", lab.name, "AlbTargets", "Alb")
    assert proc.returncode == 0, proc.stderr
    for node in ("Alb-1a", "Alb-1b"):
        lab.wait_target_state("AlbTargets", node, "removed", timeout=30)
    proc = run_cli("register", lab.name, "AlbTargets", "Web1")  # not an ALB
    assert proc.returncode == 2
    assert "no ALB of this lab" in proc.stderr
    proc = run_cli("register", lab.name, "AlbTargets", "Alb")
    assert proc.returncode == 0, proc.stderr
    lab.wait_healthy("AlbTargets", timeout=60)
    body = get(lab, nlb_node(lab)["public_ip"])
    assert body["forwarded"]["x-forwarded-for"] == lab.host(CLIENT).ip


BAD = """\
  Other:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: {Type: application, Scheme: internal, Subnets: [!Ref SubnetA, !Ref SubnetB],
                 SecurityGroups: [!Ref AlbSg]}
"""


def test_two_albs_in_one_group_exit_2(tmp_path: Path):
    text = Path(TEMPLATE).read_text()
    text = text.replace(
        "      Targets: [{Id: !Ref Alb}]", "      Targets: [{Id: !Ref Alb}, {Id: !Ref Other}]"
    )
    text = text.replace("  Nlb:\n", BAD + "  Nlb:\n")
    bad = tmp_path / "two.yaml"
    bad.write_text(text)
    proc = run_cli("validate", str(bad))
    assert proc.returncode == 2, proc.stderr
    assert "one Application Load Balancer only" in proc.stderr
    assert f"{bad}:" in proc.stderr


def test_a_port_no_alb_listener_has_exit_2(tmp_path: Path):
    text = (
        Path(TEMPLATE)
        .read_text()
        .replace(
            "      Port: 80\n      VpcId: !Ref Vpc\n      # Health",
            "      Port: 8080\n      VpcId: !Ref Vpc\n      # Health",
        )
    )
    bad = tmp_path / "port.yaml"
    bad.write_text(text)
    proc = run_cli("validate", str(bad))
    assert proc.returncode == 2, proc.stderr
    assert "no listener on port 8080" in proc.stderr
    assert f"{bad}:" in proc.stderr
