"""Templates in the style of AWS's public samples come up unchanged and serve from the default
internet client (issue 11, "Done when", first bullet).

The templates (templates/real/) carry no lab metadata: SSM AMI parameters, key pairs, IAM
instance profiles, yum-installing UserData, an NLB on Elastic IPs, a Route53 alias. Each lab
is brought up as a user would, `testbed up` with only the value AWS would also ask for
(KeyName), and queried with `testbed exec LAB Internet1 -- curl ...`. What the lab does to
make them serve is checked against what the issue promises: lab values reported at `up`,
inert resources CREATE_COMPLETE "not emulated", the http-backend role given to targets by
default, a failing UserData that is an event and a log while the stack is CREATE_COMPLETE.
One lab per class (class-scoped: one lab at a time), each down at the end.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.lab.api import Lab, random_name
from testbed.lab.events import Event
from testbed.lab.hostexec import host_dir
from testbed.template.intrinsics import ACCOUNT_ID
from tests.assertions import assert_nothing_left, run_cli

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent / "templates" / "real"
ONLY_ASKED = {"KeyName": "lab-key"}  # the one parameter of these templates without a Default
CLIENT = "Internet1"  # the lab's default internet client (common decision of issue 11)
CLIENT_IP = "198.51.100.10"
REGION = "us-east-1"  # `testbed up`'s default region
AMI_PATH = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
AMI_ID = re.compile(r"\bami-[0-9a-f]{17}\b")  # the shape of a current AMI id
REQUESTS = 10
ROLE_READY_S = 60.0  # both targets healthy: 2 checks 10 s apart, plus the lab's start
USERDATA_ENDS_S = 60.0  # `yum update` fails at once in the lab; slack for a loaded machine


# ---- the lab, as a user brings it up -----------------------------------------------------
class RealLab:
    """A lab from `testbed up`, with what `up` printed."""

    def __init__(self, lab: Lab, up_output: str) -> None:
        self.lab = lab
        self.up_output = up_output

    @property
    def name(self) -> str:
        return self.lab.name

    def events(self, logical_id: str) -> list[Event]:
        return [e for e in self.lab.events() if e.logical_id == logical_id]


def bring_up(template: str, stem: str) -> Iterator[RealLab]:
    """`testbed up TEMPLATE --param KeyName=lab-key`; `testbed down` at the end, whatever
    happens, and nothing of the lab is left."""
    name = random_name(stem)
    args = ["up", str(HERE / template), "--name", name]
    for key, value in ONLY_ASKED.items():
        args += ["--param", f"{key}={value}"]
    try:
        up = run_cli(*args)
        assert up.returncode == 0, f"testbed up {template}: exit {up.returncode}\n{up.stderr}"
        assert "Traceback" not in up.stderr, up.stderr
        lab = Lab(name)
        lab.wait_healthy(timeout=ROLE_READY_S)
        yield RealLab(lab, up.stdout + up.stderr)
    finally:
        run_cli("down", name)
        assert_nothing_left(name)


@pytest.fixture(scope="class")
def alb_lab() -> Iterator[RealLab]:
    yield from bring_up("alb-two-az.yaml", "alb")


@pytest.fixture(scope="class")
def nlb_lab() -> Iterator[RealLab]:
    yield from bring_up("nlb-eip.yaml", "nlb")


@pytest.fixture(scope="class")
def dns_lab() -> Iterator[RealLab]:
    yield from bring_up("route53-alias.yaml", "dns")


# ---- what a user would type ---------------------------------------------------------------
def curl(real: RealLab, url: str) -> tuple[int, dict[str, Any] | None]:
    """`testbed exec LAB Internet1 -- curl -s -m 5 URL`: (HTTP status, the JSON body or None)."""
    argv = ["curl", "-s", "-m", "5", "-w", r"\n%{http_code}", url]  # the status on a last line
    proc = run_cli("exec", real.name, CLIENT, "--", *argv, timeout=30)
    assert proc.returncode == 0, f"curl {url}: exit {proc.returncode} {proc.stderr}"
    body, _, code = proc.stdout.rpartition("\n")
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    return int(code), answer


def answering(real: RealLab, url: str, want: set[str], most: int = REQUESTS) -> list[str]:
    """Instances that answered `url` from Internet1, one per request: every request must be a
    200 from the http-backend role (its body names the instance). Stops once every instance
    of `want` has answered and at least REQUESTS requests were made, or after `most`."""
    seen: list[str] = []
    while len(seen) < most and not (len(seen) >= REQUESTS and want <= set(seen)):
        status, answer = curl(real, url)
        assert status == 200, (url, status, answer, seen)
        assert answer is not None, (url, status)
        assert "instance" in answer, (url, answer)
        seen.append(answer["instance"])
    return seen


def status_json(real: RealLab) -> dict[str, Any]:
    proc = run_cli("status", real.name, "--json", timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def dig(real: RealLab, name: str) -> list[str]:
    proc = run_cli("exec", real.name, CLIENT, "--", "dig", "+short", name, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def reasons(events: list[Event]) -> str:
    return "\n".join(e.line() for e in events)


# ---- what the issue promises, shared by the three templates -------------------------------
def assert_lab_values_reported(real: RealLab, ami_parameter: str = "LatestAmiId") -> None:
    """KeyName and the SSM AMI path get lab values, reported once at `up`: one event of each
    parameter, which `up` printed."""
    key = real.events("KeyName")
    assert len(key) == 1, reasons(real.lab.events())
    assert "lab-key" in key[0].reason, key[0].line()
    ami = real.events(ami_parameter)
    assert len(ami) == 1, reasons(real.lab.events())
    placeholder = AMI_ID.search(ami[0].reason)  # the AMI id the SSM path resolved to
    assert placeholder, ami[0].line()
    for parameter, value in (("KeyName", "lab-key"), (ami_parameter, placeholder.group())):
        printed = [line for line in real.up_output.splitlines() if parameter in line]
        assert any(value in line for line in printed), (parameter, real.up_output)


def assert_not_emulated(real: RealLab, *logical_ids: str) -> None:
    """Inert resources: CREATE_COMPLETE with a reason saying "not emulated"."""
    for lid in logical_ids:
        done = [e for e in real.events(lid) if e.status == "CREATE_COMPLETE"]
        assert len(done) == 1, (lid, reasons(real.events(lid)))
        assert "not emulated" in done[0].reason, done[0].line()


def assert_role_defaulted(real: RealLab, *instances: str, port: int = 80) -> None:
    """Targets with no lab role serve with http-backend on the group's port, said in their
    events and shown in status."""
    hosts = {h["name"]: h for h in status_json(real)["hosts"]}
    for lid in instances:
        # Not ROLE_STARTED (every role has it): the event that says why it got the role.
        said = [
            e
            for e in real.events(lid)
            if e.status != "ROLE_STARTED"
            and "http-backend" in e.reason
            and re.search(rf"\b{port}\b", e.reason)
        ]
        assert said, reasons(real.events(lid))
        assert hosts[lid]["role"] == "http-backend", hosts[lid]


def assert_userdata_failed_but_stack_complete(real: RealLab, *instances: str) -> None:
    """yum cannot install anything here: each UserData fails, as an event and a log, and the
    stack is still CREATE_COMPLETE (no CreationPolicy waits for a signal)."""

    def ended() -> list[Event] | None:
        found = [
            e
            for lid in instances
            for e in real.events(lid)
            if e.status.startswith("USERDATA_") and e.status != "USERDATA_STARTED"
        ]
        return found if len(found) == len(instances) else None

    ends = real.lab.wait_for(ended, USERDATA_ENDS_S, "every UserData to end")
    assert {e.status for e in ends} == {"USERDATA_FAILED"}, reasons(ends)
    for lid in instances:
        log = (host_dir(real.name, lid) / "user-data.log").read_text()
        assert "yum" in log, log
    stack = real.events(real.name)
    assert stack, "no event of the stack"
    assert stack[-1].status == "CREATE_COMPLETE", reasons(stack)
    failed = [e for e in real.lab.events() if "FAILED" in e.status or "ROLLBACK" in e.status]
    assert {e.status for e in failed} == {"USERDATA_FAILED"}, reasons(failed)


def assert_default_client(real: RealLab) -> None:
    """No Lab::Internet::Client in the template: the lab made Internet1, shown in status."""
    hosts = {h["name"]: h for h in status_json(real)["hosts"]}
    assert CLIENT in hosts, sorted(hosts)
    assert hosts[CLIENT]["ip"] == CLIENT_IP, hosts[CLIENT]
    assert hosts[CLIENT].get("kind") == "client", hosts[CLIENT]
    made = [e for e in real.events(CLIENT) if e.status == "CREATE_COMPLETE"]
    assert made, reasons(real.events(CLIENT))
    assert "internet gateway" in made[0].reason, made[0].line()


# ---- 1. an ALB over two instances in two AZs ---------------------------------------------
class TestAlbTwoAz:
    WEB = ("WebServer1", "WebServer2")

    def test_the_url_output_serves_from_both_instances(self, alb_lab):
        url = alb_lab.lab.outputs["URL"]
        assert url.startswith("http://"), url
        assert url.endswith(f".{REGION}.elb.amazonaws.com"), url  # an ALB's DNS name on AWS
        seen = answering(alb_lab, f"{url}/", set(self.WEB))
        assert set(seen) == set(self.WEB), seen

    def test_the_internet_client_was_made_by_the_lab(self, alb_lab):
        assert_default_client(alb_lab)

    def test_key_pair_and_ssm_ami_get_lab_values(self, alb_lab):
        assert_lab_values_reported(alb_lab)
        ami = reasons(alb_lab.events("LatestAmiId"))
        assert AMI_PATH in ami, ami

    def test_iam_role_and_instance_profile_are_not_emulated(self, alb_lab):
        assert_not_emulated(alb_lab, "WebServerRole", "WebServerInstanceProfile")

    def test_targets_serve_with_the_default_role(self, alb_lab):
        assert_role_defaulted(alb_lab, *self.WEB)

    def test_yum_userdata_fails_as_an_event_and_the_stack_is_complete(self, alb_lab):
        assert_userdata_failed_but_stack_complete(alb_lab, *self.WEB)


# ---- 2. an NLB on two Elastic IPs ----------------------------------------------------------
class TestNlbEip:
    WEB = ("WebServerA", "WebServerB")

    def test_the_dns_name_resolves_to_the_elastic_ips(self, nlb_lab):
        outputs = nlb_lab.lab.outputs
        eips = outputs["ElasticIPs"].split(",")
        assert sorted(dig(nlb_lab, outputs["LoadBalancerDNSName"])) == sorted(eips)

    def test_the_url_output_serves_from_both_instances(self, nlb_lab):
        # Cross-zone on: each node spreads flows over both targets by their hash, so a few
        # more requests may be needed before both have answered.
        seen = answering(nlb_lab, f"{nlb_lab.lab.outputs['URL']}/", set(self.WEB), most=40)
        assert set(seen) == set(self.WEB), seen

    def test_the_client_address_is_kept(self, nlb_lab):
        status, answer = curl(nlb_lab, f"{nlb_lab.lab.outputs['URL']}/")
        assert status == 200, (status, answer)
        assert answer is not None
        assert answer["client"]["ip"] == CLIENT_IP, answer  # instance targets: NLB keeps it

    def test_topic_and_log_group_outputs_are_aws_shaped(self, nlb_lab):
        outputs = nlb_lab.lab.outputs
        topic = rf"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{nlb_lab.name}-AlarmTopic-[A-Z0-9]{{13}}"
        assert re.fullmatch(topic, outputs["AlarmTopicArn"]), outputs["AlarmTopicArn"]
        group = rf"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/{nlb_lab.name}/web(:\*)?"
        assert re.fullmatch(group, outputs["LogGroupArn"]), outputs["LogGroupArn"]

    def test_inert_resources_are_not_emulated_and_the_unmet_condition_makes_nothing(self, nlb_lab):
        assert_not_emulated(nlb_lab, "AlarmTopic", "WebServerLogGroup")
        assert nlb_lab.events("AlarmSubscription") == []  # HasOperatorEmail is false

    def test_the_alarm_is_evaluated_and_its_notification_is_not_emulated(self, nlb_lab):
        done = [e for e in nlb_lab.events("UnhealthyTargetAlarm") if e.status == "CREATE_COMPLETE"]
        assert len(done) == 1, reasons(nlb_lab.events("UnhealthyTargetAlarm"))
        assert "evaluated on the lab's AWS/NetworkELB UnHealthyHostCount" in done[0].reason
        assert "not emulated: notifications to arn:aws:sns:" in done[0].reason
        (alarm,) = [
            a for a in nlb_lab.lab.alarms() if a["LogicalResourceId"] == "UnhealthyTargetAlarm"
        ]
        assert alarm["StateValue"] in ("INSUFFICIENT_DATA", "OK"), alarm  # every target healthy

    def test_key_pair_and_ssm_ami_get_lab_values(self, nlb_lab):
        assert_lab_values_reported(nlb_lab)

    def test_targets_serve_with_the_default_role(self, nlb_lab):
        assert_role_defaulted(nlb_lab, *self.WEB)

    def test_yum_userdata_fails_as_an_event_and_the_stack_is_complete(self, nlb_lab):
        assert_userdata_failed_but_stack_complete(nlb_lab, *self.WEB)


# ---- 3. a Route53 alias to the ALB ---------------------------------------------------------
class TestRoute53Alias:
    WEB = ("Web1", "Web2")
    SITE = "www.example.com"

    def test_the_alias_name_serves_from_both_instances(self, dns_lab):
        assert dns_lab.lab.outputs["WebsiteURL"] == f"http://{self.SITE}/"
        seen = answering(dns_lab, f"http://{self.SITE}/", set(self.WEB))
        assert set(seen) == set(self.WEB), seen

    def test_the_alias_resolves_to_the_load_balancers_addresses(self, dns_lab):
        lb_name = dns_lab.lab.outputs["LoadBalancerURL"].removeprefix("http://").rstrip("/")
        lb_addresses = {a for a in dig(dns_lab, lb_name) if re.fullmatch(r"[\d.]+", a)}
        site_addresses = {a for a in dig(dns_lab, self.SITE) if re.fullmatch(r"[\d.]+", a)}
        assert lb_addresses, lb_name
        assert site_addresses == lb_addresses, (site_addresses, lb_addresses)

    def test_the_hosted_zone_is_not_emulated_and_resolvable(self, dns_lab):
        assert_not_emulated(dns_lab, "HostedZone")
        servers = dns_lab.lab.outputs["NameServers"].split(",")
        assert servers, "no name servers"  # GetAtt NameServers: a list, as on AWS
        assert all(servers), servers

    def test_key_pair_and_ssm_ami_get_lab_values(self, dns_lab):
        assert_lab_values_reported(dns_lab)

    def test_targets_serve_with_the_default_role(self, dns_lab):
        assert_role_defaulted(dns_lab, *self.WEB)

    def test_yum_userdata_fails_as_an_event_and_the_stack_is_complete(self, dns_lab):
        assert_userdata_failed_but_stack_complete(dns_lab, *self.WEB)
