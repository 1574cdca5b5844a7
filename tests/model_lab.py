"""A real lab built from a StackModel made in Python (no template): for tests of plan and
topology pieces whose template resources do not parse yet, or that want an exact model.

The lab is built in the test process with the holder's own builder (controller, Mininet
nodes, services; no holder process, so no update/targets ops) and torn down by the lab's
teardown, which finds everything by the lab's prefix and journal, whatever happened.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from testbed import naming
from testbed.errors import BadInput
from testbed.lab import zones
from testbed.lab.api import Lab, random_name
from testbed.lab.builder import LabBuilder
from testbed.lab.capabilities import detect
from testbed.lab.events import EventLog
from testbed.lab.procs import ProcessJournal
from testbed.lab.state import write_state
from testbed.lab.teardown import leftovers, teardown
from testbed.model.types import StackModel
from testbed.plan.network import build_plan
from testbed.stack.holder import host_listing


@contextmanager
def lab_from_model(model: StackModel, stem: str) -> Iterator[Lab]:
    """Build `model` as lab random_name(stem) for the duration of the block."""
    name = random_name(stem)
    lab_dir = naming.lab_dir(name)
    if lab_dir.exists() or any(leftovers(name).values()):
        raise BadInput(f"lab {name} exists already")
    lab_dir.mkdir(parents=True)
    try:
        plan = build_plan(model, name, zone_base=zones.reserve(name))
        datapath = detect().default_datapath()
        builder = LabBuilder(
            name, model, plan, datapath, EventLog(lab_dir), ProcessJournal(lab_dir)
        )
        builder.build()
        write_state(
            lab_dir,
            {
                "name": name,
                "state": "CREATE_COMPLETE",
                "datapath": datapath,
                "hosts": host_listing(plan),
            },
        )
        yield Lab(name)
    finally:
        teardown(name)
