"""`testbed reach` on real labs: AWS's verdict for every pair, measured with real packets.

The default template (no groups or ACLs of its own) and templates/web-tier.yaml (an ALB
with its own group, web servers taking port 80 only from it, NAT gateways, a NACL), whose
lab needs issue 10's model: skipped, saying so, while the model does not know its types."""

from __future__ import annotations

import pytest

from testbed.errors import BadInput
from testbed.lab import reachability
from testbed.lab.api import Lab, random_name
from testbed.model import load_model
from testbed.paths import TEMPLATES
from tests.assertions import dump_flows, plan_of, run_cli

pytestmark = pytest.mark.integration
WEB_TIER = str(TEMPLATES / "web-tier.yaml")


@pytest.fixture(scope="module")
def default_lab():
    """The default template under a name of its own (other modules' labs may be up)."""
    with Lab.up(str(TEMPLATES / "default.yaml"), name=random_name("rc")) as lab:
        yield lab


@pytest.mark.parametrize(("proto", "port"), [("tcp", 80), ("udp", 9000), ("icmp", None)])
def test_measured_pairs_are_aws_verdicts_on_the_default_lab(default_lab, proto, port):
    plan = plan_of(default_lab)
    # UDP needs an answer from a listener: the http-backend instances' echo on 9000 (an
    # ICMP error through the internet gateway's 1:1 NAT is not translated back yet).
    targets = [a for a in reachability.addresses(plan) if proto != "udp" or a.host != "Client1"]
    want = reachability.verdicts(plan, proto, port, targets=targets)
    got = reachability.measure(default_lab, plan, proto=proto, port=port, pairs=want)
    why = reachability.differences(got, {k: v.passes for k, v in want.items()}, want)
    assert not why, "\n".join(why) + "\n" + dump_flows(default_lab)
    assert any(v.passes for v in want.values())
    assert any(not v.passes for v in want.values())


def test_cli_prints_the_listing_and_exit_status(default_lab):
    proc = run_cli("reach", default_lab.name, "--port", "80", "--from", "Client1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["FROM", "TO", "AWS", "LAB", "WHY"]
    public = next(x for x in lines if "(public) 203.0.113.10:80" in x)
    assert " !" not in public  # the lab measured what AWS says (whatever the groups say)
    private = next(x for x in lines if " 10.0.0.4:80" in x)
    assert "dropped: route" in private
    assert "the lab measured every one as AWS's rules say" in proc.stdout
    proc = run_cli("reach", default_lab.name, "--from", "Nobody")
    assert proc.returncode == 2
    assert "not a source host" in proc.stderr


@pytest.fixture(scope="module")
def web_tier_lab():
    try:
        load_model(WEB_TIER)
    except BadInput as exc:
        if "unknown resource type" not in exc.format():
            raise
        pytest.skip("the model does not know web-tier's resource types yet (issue 10)")
    with Lab.up(WEB_TIER, name=random_name("wt")) as lab:
        lab.wait_healthy()
        yield lab


@pytest.mark.parametrize(("proto", "port"), [("tcp", 80), ("tcp", 22), ("icmp", None)])
def test_web_tier_measured_pairs_are_aws_verdicts(web_tier_lab, proto, port):
    proc = run_cli(
        "reach", web_tier_lab.name, "--proto", proto, *(["--port", str(port)] if port else [])
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr + dump_flows(web_tier_lab)


def test_web_tier_layers_that_drop(web_tier_lab):
    plan = plan_of(web_tier_lab)
    want = reachability.verdicts(plan, "tcp", 80)
    web_b = plan.host("WebB1").ip
    assert want[("WebA1", web_b)].layer == "sg-ingress"  # only the ALB's group may
    assert want[("Client1", plan.host("WebA1").ip)].layer == "route"
    assert want[("WebA1", plan.host("Client1").ip)].passes  # through its NAT gateway
    icmp = reachability.verdicts(plan, "icmp")
    assert icmp[("WebA1", plan.host("Client1").ip)].short == "reply:nacl-in"
