"""Packet probes: captures on lab hosts (tcpdump), client IP preservation seen at a target,
and TCP handshake RTT through a load balancer versus directly (scapy reads the pcaps).

    from testbed.probes.clientip import client_ip_probe
    from testbed.probes.rtt import rtt_probe
"""
