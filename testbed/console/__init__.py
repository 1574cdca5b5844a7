"""The lab console: `testbed console` serves a web page that draws a running lab's VPC and
shows its target health, events, metrics and flows as they change (testbed.console.server),
from the same JSON documents the CLI prints (testbed.lab.views)."""
