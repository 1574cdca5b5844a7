"""testbed flows on a real GWLB lab (templates/gwlb.yaml, the machine's default GWLB datapath):
each flow of a client with the appliance that carried it, checked against what the
appliances received in GENEVE (captures on them)."""

from __future__ import annotations

import pytest

from testbed.gwlb.observe import flows_in_captures, wait_appliances_healthy
from testbed.lab.api import Lab
from testbed.packets.capture import decode_pcap
from testbed.paths import TEMPLATES
from testbed.probes.capture import start_capture
from testbed.probes.flows import lab_flows
from testbed.traffic import run_load

pytestmark = pytest.mark.integration
AZ_A = ["FwA1", "FwA2"]


@pytest.fixture(scope="module")
def gwlb_lab():
    with Lab.up(str(TEMPLATES / "gwlb.yaml")) as lab:
        by_node = {"GWLB-1a": AZ_A, "GWLB-1b": ["FwB1", "FwB2"]}
        wait_appliances_healthy(lab, "Appliances", by_node, timeout=40)
        yield lab


def test_each_flow_names_the_appliance_that_carried_it(gwlb_lab):
    client = gwlb_lab.host("Client1").ip
    web = gwlb_lab.host("WebA")
    caps = {
        fw: start_capture(gwlb_lab.host(fw), "udp port 6081", label=f"flows-{fw}") for fw in AZ_A
    }
    try:
        df = run_load(gwlb_lab, "Client1", f"http://{web.public_ip}/", requests=12, concurrency=3)
        assert df["error"].isna().all()
    finally:
        for cap in caps.values():
            cap.stop()
    seen = flows_in_captures({fw: decode_pcap(cap.path) for fw, cap in caps.items()})
    rows = lab_flows(gwlb_lab, client=client)
    assert {r["type"] for r in rows} == {"gateway"}
    to_web = {r["client_port"]: r for r in rows if r["destination"] == web.ip}
    carried = set()
    for answer in df.itertuples():
        row = to_web[int(answer.seen_port)]  # a bump in the wire: the client's own port
        assert row["destination_port"] == 80
        assert row["protocol"] == "tcp"
        assert row["node"] == "GWLB-1a"
        assert row["az"] == "us-east-1a"
        ends = sorted([(web.ip, 80), (client, int(answer.seen_port))], key=str)
        assert seen[(6, *ends)]["appliances"] == {row["appliance"]}
        carried.add(row["appliance"])
    assert carried <= set(AZ_A)
