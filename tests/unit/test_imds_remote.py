"""The metadata service of hosts on another server (testbed.lab.imds.remote): what the
holder hands the server's process, what that process answers, and how its PID file is found
and removed by the remote teardown (pure parts; the process itself runs in
tests/integration/test_imds_servers.py)."""

from __future__ import annotations

import json

import pytest

from testbed.lab.imds.metadata import (
    InstanceMetadata,
    InterfaceMetadata,
    from_dict,
    metadata_tree,
    to_dict,
)
from testbed.lab.imds.remote import main, parse_spec, read_status, spec_line
from testbed.topologies import cluster


def metadata(host: str = "WebB1") -> InstanceMetadata:
    eth = InterfaceMetadata(
        mac="02:00:00:00:00:0b",
        device_number=0,
        interface_id="eni-0123",
        local_ipv4s=("10.0.2.4", "10.0.2.5"),
        public_ipv4s=(),
        subnet_id="subnet-SubnetB",
        subnet_cidr="10.0.2.0/24",
        vpc_id="vpc-VPC",
        vpc_cidrs=("10.0.0.0/16",),
        security_group_ids=("sg-1",),
        security_group_names=("web",),
    )
    return InstanceMetadata(
        host=host,
        instance_id=f"i-{host}",
        image_id="ami-1",
        instance_type="t3.small",
        az="us-east-1b",
        region="us-east-1",
        private_ip="10.0.2.4",
        public_ip=None,
        mac=eth.mac,
        security_groups=("web",),
        interfaces=(eth,),
        user_data="#!/bin/sh\necho hi\n",
        pending_time=1700000000.5,
    )


def test_metadata_crosses_to_another_server_unchanged():
    md = metadata()
    back = from_dict(json.loads(json.dumps(to_dict(md))))
    assert back == md
    assert metadata_tree(back) == metadata_tree(md)
    with pytest.raises(ValueError, match="not an instance's metadata"):
        from_dict({"host": "x"})


def test_the_spec_is_one_line_with_each_hosts_namespace():
    hosts = [("tb-m-WebB1", metadata("WebB1")), ("tb-m-WebB2", metadata("WebB2"))]
    line = spec_line("m", hosts)
    assert line.endswith("\n")
    assert line.count("\n") == 1
    assert parse_spec(line) == ("m", hosts)
    with pytest.raises(ValueError, match="not a metadata service spec"):
        parse_spec("[]")
    with pytest.raises(ValueError, match="Expecting value"):
        parse_spec("not json")


def test_what_the_servers_process_says():
    assert read_status(["ready 3"]) == (3, [])
    assert read_status(["error WebB1: no metadata service in tb-m-WebB1", "failed"]) == (
        None,
        ["WebB1: no metadata service in tb-m-WebB1"],
    )
    assert read_status([]) == (None, [])


def test_the_process_refuses_a_spec_of_another_lab(monkeypatch, capsys):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(spec_line("other", [])))
    assert main(["m"]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "failed"
    assert "lab other's" in out[0]
    monkeypatch.setattr("sys.stdin", io.StringIO("garbage\n"))
    assert main(["m"]) == 2
    assert main([]) == 2


def test_the_remote_teardown_ends_the_labs_metadata_process_by_its_pid_file():
    pidfile = cluster.imds_pidfile("m")
    assert pidfile == "/run/tb-m-imds.pid"
    clean = cluster.clean_script("m")
    # Ended before the namespaces go, only when the PID is still that process.
    assert clean.index(pidfile) < clean.index("ip netns list")
    assert cluster.IMDS_MODULE in clean
    assert "kill -9" in clean
    assert pidfile in cluster.leftovers_script("m")
    assert cluster.imds_pidfile("n") not in clean
