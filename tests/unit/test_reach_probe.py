"""testbed.lab.reach_probe on loopback: what counts as an answer for TCP and UDP."""

from __future__ import annotations

import socket
import threading

from testbed.lab import reach_probe


def test_tcp_listener_and_refusal_both_answer():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert reach_probe.tcp_answers("127.0.0.1", port, 0.5, 1)
    # Nobody listens any more: the RST is an answer (the SYN got there).
    assert reach_probe.tcp_answers("127.0.0.1", port, 0.5, 1)


def test_udp_echo_refusal_and_silence():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]

        def echo_once() -> None:
            data, peer = server.recvfrom(100)
            server.sendto(data, peer)

        t = threading.Thread(target=echo_once)
        t.start()
        assert reach_probe.udp_answers("127.0.0.1", port, 2.0, 1)
        t.join()
        # Bound but silent: no answer within the tries.
        assert not reach_probe.udp_answers("127.0.0.1", port, 0.1, 2)
    # Closed: the port unreachable counts (the datagram got there).
    assert reach_probe.udp_answers("127.0.0.1", port, 1.0, 1)


def test_main_prints_one_line_per_address(capsys):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert reach_probe.main(["--proto", "tcp", "--port", str(port), "127.0.0.1"]) == 0
    assert capsys.readouterr().out.split() == ["127.0.0.1", "ok"]
