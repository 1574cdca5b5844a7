"""One execution environment of a Lambda function: a process that imports the function's
module once and runs its handler for each invocation it is given (testbed.roles.lambda_runtime
starts, reuses and kills these; a timeout or a crash costs only this process).

Protocol, one JSON line each way per invocation, on stdin / the original stdout:
  in   {"event": {...}, "request_id": "...", "deadline": <epoch seconds>}
  out  {"result": <the handler's return value>}  or  {"error": "<type>", "message": "..."}
The handler's own prints go to stderr (the runtime's log), never into the protocol.

Run: python -m testbed.roles.lambda_worker --code-dir DIR --handler index.handler
     --function NAME --arn ARN --memory 128
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


class Context:
    """The handler's `context`, as Lambda's Python runtime gives it."""

    def __init__(self, args: argparse.Namespace, request_id: str, deadline: float) -> None:
        self.function_name = args.function
        self.function_version = "$LATEST"
        self.invoked_function_arn = args.arn
        self.memory_limit_in_mb = str(args.memory)
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{args.function}"
        self.log_stream_name = "lab"
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lambda_worker")
    parser.add_argument("--code-dir", required=True)
    parser.add_argument("--handler", required=True)
    parser.add_argument("--function", required=True)
    parser.add_argument("--arn", required=True)
    parser.add_argument("--memory", type=int, default=128)
    args = parser.parse_args(argv)
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the handler's prints go to the log, not into the protocol
    sys.stdout = sys.stderr
    module_name, _, function_name = args.handler.rpartition(".")
    sys.path.insert(0, args.code_dir)
    handler: Any = None
    init_error: dict[str, str] | None = None
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:  # an init error: every invocation reports it
        init_error = {"error": "Runtime.ImportModuleError", "message": repr(exc)}
    for line in sys.stdin:
        request = json.loads(line)
        if init_error is not None:
            answer: dict[str, Any] = init_error
        else:
            context = Context(args, request["request_id"], float(request["deadline"]))
            try:
                answer = {"result": handler(request["event"], context)}
            except Exception as exc:
                traceback.print_exc()
                answer = {"error": type(exc).__name__, "message": str(exc)}
        try:
            text = json.dumps(answer)
        except (TypeError, ValueError) as exc:
            text = json.dumps({"error": "Runtime.MarshalError", "message": str(exc)})
        out.write(text + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
