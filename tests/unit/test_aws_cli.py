"""The lab's `aws` host tool without a lab: its command line, --query and --output as the
AWS CLI prints them, its errors and exit codes, against a real holder socket (testbed.rpc)
whose reply is made by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from testbed.lab.hosttools import TOOLS_DIR, lab_paths
from testbed.lab.hosttools.aws_cli import (
    NOT_REGISTERED,
    ServiceError,
    apply_query,
    instance_states,
    logical_id,
    main,
    parse,
    read_names,
    render,
    write_names,
)
from testbed.lab.hosttools.context import HostContext, ToolError
from testbed.naming import HOLDER_SOCK
from testbed.rpc import RpcServer

LAB = "lab7"


def row(instance: str, state: str, lb: str = "MyCLB", detail: str = "ok") -> dict:
    """A holder target row (TargetDescription) of CLB `lb`'s implicit group."""
    return {
        "LoadBalancer": lb,
        "TargetGroup": lb,
        "Target": {"Id": instance, "Port": 80, "AvailabilityZone": "us-east-1a"},
        "TargetHealth": {"State": state},
        "LastCheck": detail,
        "Host": instance.removeprefix("i-"),
    }


ROWS = [
    row("i-WebB1", "initial", detail=""),
    row("i-WebA1", "healthy"),
    row("i-X", "healthy", "Other"),
]


@pytest.fixture
def holder(tmp_path):
    """A lab folder with the builder's names file and a holder answering `targets`."""
    lab_dir = tmp_path / LAB
    lab_dir.mkdir()
    write_names(lab_dir, {"MyCLB": "lab-clb", "Other": "other-clb"})
    asked = []

    def handle(request):
        asked.append(request)
        assert request["op"] == "targets"
        return {"ok": True, "targets": [r for r in ROWS if r["LoadBalancer"] == request["lb"]]}

    server = RpcServer(str(lab_dir / HOLDER_SOCK), handle)
    server.start()
    try:
        yield HostContext(LAB, "WebA1", lab_dir), asked
    finally:
        server.stop()


def run(capsys, ctx, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv), ctx)
    out = capsys.readouterr()
    return code, out.out, out.err


# ---- the command line ---------------------------------------------------------------------------


def test_options_in_any_order_and_instance_lists():
    args = parse(
        [
            "--region",
            "us-east-1",
            "elb",
            "describe-instance-health",
            "--load-balancer-name",
            "lab-clb",
            "--instances",
            "i-1",
            "i-2",
            "--query",
            "InstanceStates[0].State",
        ]
    )
    assert args.words == ["elb", "describe-instance-health"]
    assert (args.region, args.load_balancer_name, args.instances) == (
        "us-east-1",
        "lab-clb",
        ["i-1", "i-2"],
    )
    assert args.query == "InstanceStates[0].State"
    assert args.output == "json"
    assert parse(
        ["elb", "describe-instance-health", "--instances", "InstanceId=i-1,InstanceId=i-2"]
    ).instances == ["i-1", "i-2"]
    assert parse(
        ["elb", "describe-instance-health", "--instances", '[{"InstanceId": "i-3"}]']
    ).instances == ["i-3"]
    # `--instances $(curl ...)` when the curl printed nothing: the CLI's usage error.
    with pytest.raises(ToolError):
        parse(["elb", "describe-instance-health", "--instances", "--query", "x"])


def test_names_are_the_clbs_name_or_logical_id(tmp_path):
    write_names(tmp_path, {"MyCLB": "lab-clb"})
    names = read_names(tmp_path)
    assert logical_id(names, "lab-clb") == logical_id(names, "MyCLB") == "MyCLB"
    with pytest.raises(ServiceError, match=r"\(LoadBalancerNotFound\).*named 'nope'"):
        logical_id(names, "nope")
    assert read_names(tmp_path / "missing") == {}


# ---- the answer: states, --query, --output -------------------------------------------------


def test_instance_states_keep_aws_fields_and_the_order_asked():
    rows = [
        {
            "InstanceId": "i-A",
            "State": "InService",
            "ReasonCode": "N/A",
            "Description": "N/A",
            "Host": "A",
        },
        {
            "InstanceId": "i-B",
            "State": "OutOfService",
            "ReasonCode": "ELB",
            "Description": "d",
            "Host": "B",
        },
    ]
    everything = instance_states(rows, None, None)["InstanceStates"]
    assert [s["InstanceId"] for s in everything] == ["i-A", "i-B"]
    assert set(everything[0]) == {"InstanceId", "State", "ReasonCode", "Description"}
    asked = instance_states(rows, ["i-B", "i-C", "i-A"], {"i-A", "i-B", "i-C"})["InstanceStates"]
    assert [(s["InstanceId"], s["State"]) for s in asked] == [
        ("i-B", "OutOfService"),
        ("i-C", "Unknown"),
        ("i-A", "InService"),
    ]
    assert asked[1]["Description"] == NOT_REGISTERED
    with pytest.raises(ServiceError, match=r"\(InvalidInstance\).*i-zzz"):
        instance_states(rows, ["i-zzz"], {"i-A"})


def test_query_and_json_output_as_the_cli_prints_them():
    data = {"InstanceStates": [{"InstanceId": "i-A", "State": "InService"}]}
    # A string result keeps its quotes: `until [ "$state" == "\"InService\"" ]` relies on it.
    assert render(apply_query(data, "InstanceStates[0].State"), "json") == '"InService"\n'
    assert render(apply_query(data, "InstanceStates[5].State"), "json") == "null\n"
    assert render(data, "json") == json.dumps(data, indent=4) + "\n"
    assert render(apply_query(data, "length(InstanceStates)"), "json") == "1\n"
    with pytest.raises(ToolError, match="--query"):
        apply_query(data, "InstanceStates[")
    with pytest.raises(ToolError, match="json and text"):
        render(data, "yaml")


def test_text_output_as_the_cli_lays_it_out():
    data = {
        "InstanceStates": [
            {"InstanceId": "i-A", "State": "InService", "ReasonCode": "N/A", "Description": "N/A"},
            {"InstanceId": "i-B", "State": "OutOfService", "ReasonCode": "ELB", "Description": "d"},
        ]
    }
    assert render(data, "text") == (
        "INSTANCESTATES\tN/A\ti-A\tN/A\tInService\nINSTANCESTATES\td\ti-B\tELB\tOutOfService\n"
    )
    assert render(apply_query(data, "InstanceStates[0].State"), "text") == "InService\n"
    assert render(apply_query(data, "InstanceStates[].InstanceId"), "text") == "i-A\ti-B\n"
    rows = apply_query(data, "InstanceStates[].[InstanceId,State]")
    assert render(rows, "text") == "i-A\tInService\ni-B\tOutOfService\n"


# ---- the whole tool against a holder -----------------------------------------------------------


def test_describe_instance_health_from_the_holder(capsys, holder):
    ctx, asked = holder
    code, out, err = run(
        capsys,
        ctx,
        "--region",
        "us-east-1",
        "elb",
        "describe-instance-health",
        "--load-balancer-name",
        "lab-clb",
        "--instances",
        "i-WebA1",
        "--query",
        "InstanceStates[0].State",
    )
    assert (code, out, err) == (0, '"InService"\n', "")
    assert asked[-1] == {"op": "targets", "lb": "MyCLB", "tg": "MyCLB"}
    code, out, _ = run(
        capsys, ctx, "elb", "describe-instance-health", "--load-balancer-name", "MyCLB"
    )
    states = json.loads(out)["InstanceStates"]
    assert code == 0
    assert states == [
        {"InstanceId": "i-WebA1", "State": "InService", "ReasonCode": "N/A", "Description": "N/A"},
        {
            "InstanceId": "i-WebB1",
            "State": "OutOfService",
            "ReasonCode": "ELB",
            "Description": "Instance registration is still in progress.",
        },
    ]


def test_errors_and_exit_codes(capsys, holder):
    ctx, _ = holder
    code, out, err = run(
        capsys, ctx, "elb", "describe-instance-health", "--load-balancer-name", "x"
    )
    assert (code, out) == (254, "")
    assert "An error occurred (LoadBalancerNotFound) when calling the DescribeInstanceHealth" in err
    code, _, err = run(capsys, ctx, "ec2", "describe-instances")
    assert code == 255
    assert "answers only: elb describe-instance-health (not ec2 describe-instances)" in err
    code, _, err = run(capsys, ctx, "elb", "describe-instance-health")
    assert code == 252
    assert "--load-balancer-name" in err
    code, _, _ = run(capsys, ctx, "elb", "describe-instance-health", "--bogus", "1")
    assert code == 252


def test_the_program_is_a_host_tool_and_user_data_paths_name_it(tmp_path):
    assert os.access(TOOLS_DIR / "aws", os.X_OK)
    assert lab_paths("/usr/bin/aws elb x; /usr/local/bin/aws s3 ls") == (
        f"{TOOLS_DIR}/aws elb x; {TOOLS_DIR}/aws s3 ls"
    )
    assert lab_paths("/usr/bin/aws-x /opt/usr/bin/aws") == "/usr/bin/aws-x /opt/usr/bin/aws"
    env = dict(os.environ, TESTBED_STATE_DIR=str(tmp_path), TESTBED_LAB=LAB)
    env.update(TESTBED_HOST="Web", TESTBED_PYTHON=sys.executable)
    proc = subprocess.run(
        [str(TOOLS_DIR / "aws"), "sts", "get-caller-identity"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 255
    assert "aws stand-in" in proc.stderr
