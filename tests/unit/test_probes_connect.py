"""The probes' connections (endpoints, markers, replies; over loopback), the capture's
command line and the CLI's bad-input exits."""

from __future__ import annotations

import socket
import threading

import pytest

from testbed.cli import main
from testbed.errors import BadInput
from testbed.probes.capture import Capture, tcpdump_argv
from testbed.probes.clientip import backend_of
from testbed.probes.connect import (
    Endpoint,
    _complete,
    checked_endpoint,
    connect_once,
    marker,
    parse_endpoint,
    payload,
)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("http://203.0.113.10/", Endpoint("http", "203.0.113.10", 80, "/")),
        ("http://lb.example:8080/x", Endpoint("http", "lb.example", 8080, "/x")),
        ("tcp://10.0.0.4:9000", Endpoint("tcp", "10.0.0.4", 9000, "/")),
        ("10.0.0.4:80", Endpoint("tcp", "10.0.0.4", 80, "/")),
        ("203.0.113.10", Endpoint("http", "203.0.113.10", 80, "/")),
    ],
)
def test_endpoints(text, want):
    assert parse_endpoint(text) == want


@pytest.mark.parametrize(
    "text", ["ftp://x", "http://", "10.0.0.4:99999", "10.0.0.4:0", "10.0.0.4:http"]
)
def test_bad_endpoints(text):
    with pytest.raises(ValueError, match="bad endpoint"):
        parse_endpoint(text)
    with pytest.raises(BadInput):
        checked_endpoint(text)


def test_payload_carries_the_marker():
    http = payload(parse_endpoint("http://203.0.113.10/"), "ab12", 7)
    assert http.startswith(b"GET /elb-probe/ab12/7/ HTTP/1.0\r\n")
    assert http.endswith(b"\r\n\r\n")
    assert payload(parse_endpoint("10.0.0.4:9000"), "ab12", 7) == b"elb-probe /elb-probe/ab12/7/\n"
    assert marker("ab12", 1) not in marker("ab12", 10)


def test_http_reply_is_complete_by_content_length():
    ep = parse_endpoint("http://x/")
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    assert not _complete(head + b"abc", ep, "m")
    assert _complete(head + b"abcde", ep, "m")
    assert not _complete(b"HTTP/1.1 200 OK\r\n", ep, "m")


def test_backend_named_in_http_and_tcp_replies():
    http = {"reply": 'HTTP/1.1 200 OK\r\n\r\n{"instance": "WebA2", "client": {}}'}
    tcp = {"reply": '{"instance": "WebB1"}\nelb-probe /elb-probe/x/0/\n'}
    assert backend_of(http) == "WebA2"
    assert backend_of(tcp) == "WebB1"
    assert backend_of({"reply": "HTTP/1.1 400 Bad\r\n\r\nnope"}) == ""


@pytest.fixture
def http_server():
    """A loopback HTTP server that answers one connection."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(5)
    seen: list[bytes] = []

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            seen.append(conn.recv(4096))
            body = b'{"instance": "Local"}'
            # Like the lab's backend: answers, then waits for the client to close.
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            conn.recv(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1], seen
    thread.join(timeout=5)
    srv.close()


def test_a_marked_connection_over_loopback(http_server):
    port, seen = http_server
    rec = connect_once(parse_endpoint(f"http://127.0.0.1:{port}/"), 0, 3, 2.0, "ab12")
    assert rec["error"] == ""
    assert rec["peer"] == "127.0.0.1"
    assert rec["local_port"] > 0
    assert rec["connect_ms"] >= 0
    assert backend_of(rec) == "Local"
    assert seen[0].startswith(b"GET /elb-probe/ab12/3/ ")


def test_a_refused_connection_is_a_record_not_an_exception():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rec = connect_once(parse_endpoint(f"127.0.0.1:{port}"), 0, 0, 1.0, None)
    assert rec["error"] == "refused"
    assert rec["connect_ms"] is None


def test_tcpdump_is_bounded_in_time_and_packets(tmp_path):
    argv = tcpdump_argv("tcp port 80", tmp_path / "c.pcap", 30, 500)
    assert argv[:6] == ["timeout", "-s", "INT", "-k", "2", "30"]
    assert argv[argv.index("-c") + 1] == "500"
    assert argv[-1] == "tcp port 80"
    assert "--time-stamp-precision=nano" in argv
    assert "-U" in argv


@pytest.mark.parametrize(("seconds", "count"), [(0, 10), (-1, 10), (4000, 10), (5, 0)])
def test_unbounded_captures_are_refused(tmp_path, seconds, count):
    with pytest.raises(BadInput):
        Capture(object(), "tcp", tmp_path / "c.pcap", seconds, count)


@pytest.mark.parametrize(
    "argv",
    [
        [
            "probe",
            "rtt",
            "nolab",
            "--from",
            "A",
            "--via",
            "10.0.0.4:99999",
            "--direct",
            "1.2.3.4:80",
        ],
        [
            "probe",
            "rtt",
            "nolab",
            "--from",
            "A",
            "--via",
            "10.0.0.4:80",
            "--direct",
            "x:80",
            "-n",
            "0",
        ],
        ["probe", "rtt", "nolab", "--from", "A", "--via", "10.0.0.4:80"],
        ["probe", "client-ip", "nolab", "--from", "A", "--to", "ftp://x", "--on", "B"],
        ["probe", "client-ip", "nolab", "--from", "A", "--to", "10.0.0.4", "--on", "B", "-n", "x"],
        ["probe", "client-ip", "nolab", "--from", "A", "--to", "10.0.0.4", "--on", "B"],
        ["probe"],
    ],
)
def test_bad_input_exits_2(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    assert "error" in capsys.readouterr().err


def test_help_has_examples(capsys):
    for sub in ("client-ip", "rtt"):
        with pytest.raises(SystemExit):
            main(["probe", sub, "--help"])
        assert "examples:\n  testbed probe " + sub in capsys.readouterr().out
