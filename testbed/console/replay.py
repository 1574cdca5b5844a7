"""An experiment's results folder as a timeline the console replays with a time slider.

Reads what is there of what experiments write (results/<experiment>/<timestamp>/): meta.json,
metrics.csv (METRIC_COLUMNS), target_events.csv (TARGET_EVENT_COLUMNS), requests.csv
(REQUEST_COLUMNS, by start), events.jsonl (lab events, when kept). Each list is sorted by time.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from testbed.errors import BadInput

# Rows of each file the page gets at most (a long soak is thinned evenly).
MAX_ROWS = 20000


def _number(value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else None


def finite(doc: Any) -> Any:
    """`doc` with NaN and infinities as None (JSON has neither; pandas writes NaN)."""
    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: finite(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [finite(v) for v in doc]
    return doc


def _csv(path: Path, time_key: str) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = [
            {k: _number(v) if k in (time_key, "value", "latency_ms", "status") else v
             for k, v in row.items()}
            for row in csv.DictReader(f)
        ]  # fmt: skip
    rows = [r for r in rows if isinstance(r.get(time_key), float)]
    rows.sort(key=lambda r: r[time_key])
    step = max(1, len(rows) // MAX_ROWS)
    return rows[::step]


def read_results(folder: Path) -> dict[str, Any]:
    """The timeline of one results folder: {meta, metrics, health, requests, events, start,
    end} (start/end: epoch s of the first and last row of any list)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInput(f"no results folder {folder}")
    meta: dict[str, Any] = {}
    if (folder / "meta.json").is_file():
        try:
            meta = finite(json.loads((folder / "meta.json").read_text(encoding="utf-8")))
        except ValueError:
            meta = {}
    events: list[dict[str, Any]] = []
    if (folder / "events.jsonl").is_file():
        for line in (folder / "events.jsonl").read_text(encoding="utf-8").splitlines():
            try:
                events.append(finite(json.loads(line)))
            except ValueError:
                continue
    out: dict[str, Any] = {
        "folder": str(folder),
        "meta": meta,
        "metrics": _csv(folder / "metrics.csv", "time"),
        "health": _csv(folder / "target_events.csv", "time"),
        "requests": _csv(folder / "requests.csv", "start"),
        "events": sorted(events, key=lambda e: e.get("time", 0)),
    }
    times = [
        r[k]
        for key, k in (("metrics", "time"), ("health", "time"), ("requests", "start"),
                       ("events", "time"))
        for r in out[key]
    ]  # fmt: skip
    out["start"] = min(times) if times else None
    out["end"] = max(times) if times else None
    out["files"] = sorted(p.name for p in folder.iterdir() if p.is_file())
    return out


def check_results(folder: str) -> Path:
    """The folder of --results; BadInput when it is not one (no CSV, no meta.json)."""
    path = Path(folder)
    if not path.is_dir():
        raise BadInput(f"--results {folder}: no such folder")
    if not any(path.glob("*.csv")) and not (path / "meta.json").is_file():
        raise BadInput(
            f"--results {folder}: no CSV or meta.json there",
            hint="give one run's folder: results/<experiment>/<timestamp>",
        )
    return path
