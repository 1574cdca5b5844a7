"""Role `lambda-runtime`: the lab host of a Lambda function an ALB invokes (issue 17).

Listens for HTTP/1.1 on the host's address (port 80, keep-alive) and answers each request
from the ALB's node as the ALB answers a client for a Lambda target: the request becomes
AWS's ALB event (testbed.roles.lambda_alb), the function's handler runs in a worker process
(testbed.roles.lambda_worker: an execution environment, reused while it is idle; one more
starts when all are busy), with the function's Environment.Variables in its environment, and
its result becomes the response. A handler that raises, a result that is not a valid
response or is over 1 MB: 502. A handler still running at the function's Timeout: its worker
is killed, 504. A request body over 1 MB: 413. Each error answer carries X-Lab-Error-Reason.

Which target group invoked the function (its ARN goes into the event, its
lambda.multi_value_headers.enabled shapes event and result) comes in the X-Lab-Lambda-Group
header the node's HAProxy sets; the runtime takes it off. A health check is a request like
any other (GET of the group's HealthCheckPath, User-Agent ELB-HealthChecker/2.0), as AWS
invokes the function for it.

The config (--config, JSON, written by testbed.lab.launch from the host's RoleArgs): function,
arn, handler, code, timeout, memory, environment, port, groups {name: {arn, multi_value}}.

Run: python -m testbed.roles.lambda_runtime --config lambda.json --ip 10.0.1.6 --dir DIR
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from testbed.model.resources.elbv2.lambda_group import LAMBDA_GROUP_HEADER
from testbed.roles import lambda_alb
from testbed.roles.lambda_alb import Response

MAX_HEADER_BYTES = 64 * 1024


class Worker:
    """One worker process (an execution environment)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()


class Function:
    """The function: its workers, and one invocation at a time per worker."""

    def __init__(self, config: dict[str, Any], code_dir: Path) -> None:
        self.config = config
        self.code_dir = code_dir
        self.timeout_s = float(config["timeout"])
        self.idle: list[Worker] = []
        self.env = {**os.environ, **{str(k): str(v) for k, v in config["environment"].items()}}
        self.env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": config["function"],
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config["memory"]),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(config["timeout"]),
                "_HANDLER": config["handler"],
            }
        )

    async def _worker(self) -> Worker:
        while self.idle:
            worker = self.idle.pop()
            if worker.proc.returncode is None:
                return worker
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "testbed.roles.lambda_worker",
            "--code-dir",
            str(self.code_dir),
            "--handler",
            self.config["handler"],
            "--function",
            self.config["function"],
            "--arn",
            self.config["arn"],
            "--memory",
            str(self.config["memory"]),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=self.env,
            limit=2 * lambda_alb.MAX_RESULT_BYTES,
        )
        return Worker(proc)

    async def invoke(self, event: dict[str, Any]) -> tuple[str, Any]:
        """("result", value) | ("error", message) | ("timeout", None) | ("too-large", None)."""
        worker = await self._worker()
        started = time.time()
        request = {
            "event": event,
            "request_id": str(uuid.uuid4()),
            "deadline": started + self.timeout_s,
        }
        assert worker.proc.stdin is not None
        assert worker.proc.stdout is not None
        try:
            worker.proc.stdin.write((json.dumps(request) + "\n").encode())
            await worker.proc.stdin.drain()
            line = await asyncio.wait_for(worker.proc.stdout.readline(), self.timeout_s)
        except TimeoutError:
            worker.kill()
            return "timeout", None
        except (ConnectionError, ValueError, asyncio.LimitOverrunError):
            worker.kill()
            return "too-large", None
        if not line:
            worker.kill()
            return "error", "the worker ended (the function crashed)"
        self.idle.append(worker)
        if len(line) > lambda_alb.MAX_RESULT_BYTES:
            return "too-large", None
        answer = json.loads(line)
        if "error" in answer:
            return "error", f"{answer['error']}: {answer.get('message', '')}"
        return "result", answer["result"]

    def close(self) -> None:
        for worker in self.idle:
            worker.kill()


async def respond(function: Function, config: dict[str, Any], request: dict[str, Any]) -> Response:
    """The response to one parsed request."""
    headers = request["headers"]
    group_name = next((v for n, v in headers if n.lower() == LAMBDA_GROUP_HEADER.lower()), "")
    headers = [(n, v) for n, v in headers if n.lower() != LAMBDA_GROUP_HEADER.lower()]
    groups = config["groups"]
    group = groups.get(group_name) or next(iter(groups.values()))
    if len(request["body"]) > lambda_alb.MAX_REQUEST_BODY:
        return lambda_alb.error_response(413, "LambdaRequestTooLarge")
    event = lambda_alb.request_event(
        request["method"],
        request["target"],
        headers,
        request["body"],
        group["arn"],
        bool(group["multi_value"]),
    )
    kind, value = await function.invoke(event)
    if kind == "timeout":
        return lambda_alb.error_response(504, lambda_alb.TIMEOUT)
    if kind == "too-large":
        return lambda_alb.error_response(502, lambda_alb.TOO_LARGE)
    if kind == "error":
        print(f"lambda-runtime: invocation failed: {value}", file=sys.stderr, flush=True)
        return lambda_alb.error_response(502, lambda_alb.UNHANDLED)
    try:
        return lambda_alb.http_response(value, bool(group["multi_value"]))
    except lambda_alb.InvalidResponse as exc:
        print(f"lambda-runtime: invalid response: {exc}", file=sys.stderr, flush=True)
        return lambda_alb.error_response(502, lambda_alb.INVALID)


async def read_request(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """One HTTP/1.1 request (Content-Length or chunked body); None at the connection's end."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = ([*lines[0].split(" ", 2), "", ""])[:3]
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    fields = {n.lower(): v for n, v in headers}
    body = b""
    if fields.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                break
            body += await reader.readexactly(size)
            await reader.readline()
    elif "content-length" in fields:
        body = await reader.readexactly(int(fields["content-length"]))
    keep = version == "HTTP/1.1" and fields.get("connection", "").lower() != "close"
    return {"method": method, "target": target, "headers": headers, "body": body, "keep": keep}


def encode(response: Response, keep: bool) -> bytes:
    lines = [f"HTTP/1.1 {response.status} {response.reason}"]
    lines += [f"{name}: {value}" for name, value in response.headers]
    lines += [
        f"Content-Length: {len(response.body)}",
        f"Connection: {'keep-alive' if keep else 'close'}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + response.body


async def serve(config: dict[str, Any], ip: str, code_dir: Path) -> None:
    function = Function(config, code_dir)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await read_request(reader)
                if request is None:
                    break
                response = await respond(function, config, request)
                writer.write(encode(response, request["keep"]))
                await writer.drain()
                if not request["keep"]:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    server = await asyncio.start_server(handle, ip, int(config["port"]), limit=MAX_HEADER_BYTES)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"lambda-runtime: {config['function']} on {ip}:{config['port']}", flush=True)
    async with server:
        await stop.wait()
    function.close()


def write_code(config: dict[str, Any], directory: Path) -> Path:
    """The function's ZipFile code as its module (index.py for Handler index.handler)."""
    code_dir = directory / "code"
    code_dir.mkdir(parents=True, exist_ok=True)
    module = config["handler"].rpartition(".")[0]
    (code_dir / f"{module}.py").write_text(config["code"])
    return code_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lambda_runtime",
        description="Run a Lambda function behind an ALB: ALB events in, HTTP responses out.",
    )
    parser.add_argument("--config", required=True, help="the function's JSON config")
    parser.add_argument("--ip", required=True, help="the address to listen on")
    parser.add_argument("--dir", required=True, help="where the function's code is written")
    args = parser.parse_args(argv)
    config = json.loads(Path(args.config).read_text())
    code_dir = write_code(config, Path(args.dir))
    asyncio.run(serve(config, args.ip, code_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
