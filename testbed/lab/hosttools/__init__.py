"""Programs in every lab host's PATH that real UserData calls: AWS's helper scripts
(cfn-signal, cfn-init, cfn-get-metadata, cfn-hup) working against the lab instead of
CloudFormation, the AWS CLI commands UserData asks of the lab (`aws elb
describe-instance-health`: testbed.lab.hosttools.aws_cli), and shims for the package and
service managers a host must not run.

A host is a network namespace that shares the machine's files and processes: `yum install
httpd` or `systemctl start httpd` in UserData would change the machine itself (as root), so
those commands only say that the lab does not emulate them and fail, as they would on an
instance without internet; the lab's http-backend role serves instead.

bin/ holds one dispatcher script (bin/hosttool) under every tool's name; it runs
`python -m testbed.lab.hosttools NAME ARGS...` with the lab's Python (TESTBED_PYTHON, set by
testbed.lab.programs.host_env). The lab name reaches the tools in TESTBED_LAB (every process
a lab's holder starts has it) and the host's name in TESTBED_HOST.
"""

from __future__ import annotations

import re
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parent / "bin"
HELPERS = ("cfn-signal", "cfn-init", "cfn-get-metadata", "cfn-hup")
# Package and service managers. rpm too: `rpm -i` of a local file would install on the
# machine itself; its queries are not worth that risk.
SHIMMED = (
    "yum",
    "dnf",
    "apt-get",
    "apt",
    "amazon-linux-extras",
    "systemctl",
    "service",
    "chkconfig",
    "rpm",
)
# The AWS CLI, answering what real UserData asks of the lab (testbed.lab.hosttools.aws_cli).
CLI = ("aws",)
TOOL_NAMES = HELPERS + SHIMMED + CLI
# Where Amazon Linux keeps the helper scripts; UserData names them by this path.
AWS_BIN = re.compile(r"/opt/aws/bin/(cfn-(?:signal|init|get-metadata|hup))(?![\w-])")
# Where UserData names the AWS CLI (/usr/bin/aws on Amazon Linux, /usr/local/bin/aws when
# installed by hand): not the machine's own CLI, if it has one.
AWS_CLI = re.compile(r"(?<![\w./-])/usr(?:/local)?/bin/(aws)(?![\w.-])")


def lab_paths(text: str) -> str:
    """`text` (UserData, a cfn-init command) with /opt/aws/bin/cfn-* and the AWS CLI's
    paths naming the lab's tools (the lab does not create /opt/aws on the machine)."""
    text = AWS_BIN.sub(lambda m: str(TOOLS_DIR / m.group(1)), text)
    return AWS_CLI.sub(lambda m: str(TOOLS_DIR / m.group(1)), text)
