"""Load a results directory (meta.json + CSV tables) into pandas DataFrames.

Tables whose columns contain one of the layouts of testbed.schemas get typed columns: times
and numbers as float64 (NaN where the CSV cell is empty), text as strings (NaN where empty),
and a `t` column with seconds since the run's start (meta.json "start"). Other tables are
loaded with every column that is entirely numeric converted to numbers.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from testbed.errors import BadInput
from testbed.paths import results_root
from testbed.schemas import (
    METRIC_COLUMNS,
    REQUEST_COLUMNS,
    SNMP_COLUMNS,
    TARGET_EVENT_COLUMNS,
)

REQUESTS = "requests"
SNMP = "snmp"
TARGET_EVENTS = "target_events"
METRICS = "metrics"
OTHER = "other"

# A table is of a layout when it has every column of it (extra columns are kept untouched).
LAYOUTS: dict[str, tuple[str, ...]] = {
    REQUESTS: REQUEST_COLUMNS,
    SNMP: SNMP_COLUMNS,
    TARGET_EVENTS: TARGET_EVENT_COLUMNS,
    METRICS: METRIC_COLUMNS,
}

# Columns that must parse as numbers; the first one is the time the `t` column comes from.
NUMERIC_COLUMNS: dict[str, tuple[str, ...]] = {
    REQUESTS: ("start", "latency_ms", "seq", "status", "seen_port", "bytes"),
    SNMP: ("time",),  # "value" is typed per row, see _snmp_value
    TARGET_EVENTS: ("time",),
    METRICS: ("time", "value"),
}

# SNMP types whose values are integers: kept as exact Python ints because Counter64 values
# beyond 2**53 do not survive a float64, and counter deltas need every unit.
SNMP_INTEGER_TYPES = {
    "counter32",
    "counter64",
    "gauge32",
    "unsigned32",
    "integer",
    "integer32",
    "timeticks",
    "counter",
    "gauge",
    "uinteger32",
}
# Values of these stay text even when they look like numbers (a sysName "1", an address).
SNMP_TEXT_TYPES = {
    "octetstring",
    "objectidentifier",
    "objectname",
    "ipaddress",
    "opaque",
    "bits",
    "displaystring",
    "physaddress",
}


@dataclass
class Results:
    """One results directory: its meta.json and its tables, keyed by CSV file stem."""

    path: Path
    meta: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    start: float | None = None  # epoch of t = 0

    @property
    def experiment(self) -> str:
        """The experiment's name (meta.json), else the parent directory's name."""
        return str(self.meta.get("experiment") or self.path.parent.name)

    def of_kind(self, kind: str) -> dict[str, pd.DataFrame]:
        """The tables of one layout (REQUESTS, SNMP, TARGET_EVENTS, METRICS, OTHER)."""
        return {name: df for name, df in self.tables.items() if self.kinds[name] == kind}

    def combined(self, kind: str) -> pd.DataFrame | None:
        """All tables of one layout in one frame with a `table` column, or None if none."""
        frames = self.of_kind(kind)
        if not frames:
            return None
        return pd.concat([df.assign(table=name) for name, df in frames.items()], ignore_index=True)

    @property
    def requests(self) -> pd.DataFrame | None:
        """Every request row (REQUEST_COLUMNS) of the run, or None."""
        return self.combined(REQUESTS)

    @property
    def snmp(self) -> pd.DataFrame | None:
        """Every SNMP sample (SNMP_COLUMNS) of the run, or None."""
        return self.combined(SNMP)

    @property
    def target_events(self) -> pd.DataFrame | None:
        """Every target health transition (TARGET_EVENT_COLUMNS) of the run, or None."""
        return self.combined(TARGET_EVENTS)

    @property
    def metrics(self) -> pd.DataFrame | None:
        """Every metric row (METRIC_COLUMNS) of the run, or None."""
        return self.combined(METRICS)


def load_results(path: str | Path) -> Results:
    """Read meta.json and every *.csv directly in `path` (BadInput if it is no results dir)."""
    path = Path(path)
    meta_file = path / "meta.json"
    if not path.is_dir() or not meta_file.is_file():
        raise BadInput(
            "not a results directory (no meta.json)",
            file=str(path),
            hint="give results/<experiment>/<timestamp>/ or an experiment name",
        )
    meta = _read_meta(meta_file)
    results = Results(path=path, meta=meta)
    for csv_file in sorted(path.glob("*.csv")):
        header, lines = _check_csv(csv_file)
        kind = layout_of(header)
        results.tables[csv_file.stem] = _typed_frame(csv_file, header, lines, kind)
        results.kinds[csv_file.stem] = kind
    results.start = _run_start(meta, meta_file, results)
    if results.start is not None:
        for name, df in results.tables.items():
            kind = results.kinds[name]
            if kind != OTHER:
                df["t"] = df[NUMERIC_COLUMNS[kind][0]] - results.start
    return results


def layout_of(columns: list[str] | tuple[str, ...]) -> str:
    """The layout whose columns all appear in `columns` (the largest match), else OTHER."""
    present = set(columns)
    matches = [kind for kind, cols in LAYOUTS.items() if present.issuperset(cols)]
    return max(matches, key=lambda k: len(LAYOUTS[k]), default=OTHER)


def latest(experiment: str) -> Path:
    """The newest results/<experiment>/<timestamp>/ (with a meta.json)."""
    run = newest_run(results_root() / experiment)
    if run is None:
        root = results_root()
        known = sorted(p.name for p in root.glob("*") if p.is_dir()) if root.is_dir() else []
        raise BadInput(
            f"no results for experiment {experiment!r} in {root}",
            hint=f"experiments with results: {', '.join(known) or 'none'}; "
            "or give a results directory",
        )
    return run


def newest_run(base: Path) -> Path | None:
    """The newest <timestamp>/ directory with a meta.json directly under `base`, or None."""
    runs = [p for p in base.glob("*") if (p / "meta.json").is_file()] if base.is_dir() else []
    return max(runs, key=_stamp_key, default=None)


def _stamp_key(run: Path) -> tuple[str, int]:
    # ResultsDir names runs STAMP, STAMP-2, STAMP-3...: sort the suffix as a number.
    match = re.fullmatch(r"(.*?)-(\d+)", run.name)
    if match and not re.fullmatch(r"\d{8}-\d{6}", run.name):
        return match.group(1), int(match.group(2))
    return run.name, 1


def _read_meta(meta_file: Path) -> dict[str, Any]:
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as exc:
        raise BadInput(f"invalid JSON: {exc.msg}", file=str(meta_file), line=exc.lineno) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read: {exc}", file=str(meta_file)) from exc
    if not isinstance(meta, dict):
        raise BadInput("meta.json must hold a JSON object", file=str(meta_file))
    return meta


def _check_csv(csv_file: Path) -> tuple[list[str], list[int]]:
    """Header and each record's line number; every record must have the header's width.

    pandas pads a short row with NaN silently (a truncated last line, say), so the widths
    are checked here first; the csv module also gives the line numbers for error messages.
    """
    try:
        with csv_file.open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header:
                raise BadInput("empty CSV file (no header line)", file=str(csv_file), line=1)
            header = [h.strip() for h in header]
            if "" in header:
                raise BadInput("a column has no name", file=str(csv_file), line=1)
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes:
                raise BadInput(
                    f"duplicate column(s) {', '.join(dupes)}", file=str(csv_file), line=1
                )
            width, lines = len(header), []
            for fields in reader:
                if not fields:
                    continue  # a blank line, which pandas skips too
                if len(fields) != width:
                    raise BadInput(
                        f"{len(fields)} fields, the header has {width}",
                        file=str(csv_file),
                        line=reader.line_num,
                    )
                lines.append(reader.line_num)
    except csv.Error as exc:
        raise BadInput(f"malformed CSV: {exc}", file=str(csv_file)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read: {exc}", file=str(csv_file)) from exc
    return header, lines


def _typed_frame(csv_file: Path, header: list[str], lines: list[int], kind: str) -> pd.DataFrame:
    # Only an empty cell is missing: "NA" or "null" may be real names or values.
    df = pd.read_csv(csv_file, dtype=str, keep_default_na=False, na_values=[""])
    df.columns = header
    if len(df) != len(lines):  # the two parsers disagree: do not guess which rows are which
        raise BadInput(
            f"malformed CSV: {len(df)} rows read, {len(lines)} records found", file=str(csv_file)
        )
    if kind == OTHER:
        for col in df.columns:
            converted = pd.to_numeric(df[col], errors="coerce")
            if converted.notna().sum() == df[col].notna().sum():
                df[col] = converted
        return df
    for col in NUMERIC_COLUMNS[kind]:
        df[col] = _numeric_column(csv_file, df[col], lines)
    if kind == SNMP:
        # An object Series built directly: a list with None would be inferred as float64.
        df["value"] = pd.Series(
            [
                _snmp_value(csv_file, v, t, line)
                for v, t, line in zip(df["value"], df["type"], lines)
            ],
            index=df.index,
            dtype=object,
        )
    return df


def _numeric_column(csv_file: Path, column: pd.Series, lines: list[int]) -> pd.Series:
    converted = pd.to_numeric(column, errors="coerce").astype("float64")
    bad = converted.isna() & column.notna()
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise BadInput(
            f"column {column.name!r}: {column.iloc[i]!r} is not a number",
            file=str(csv_file),
            line=lines[i],
        )
    return converted


def _snmp_value(csv_file: Path, value: Any, kind: Any, line: int) -> Any:
    """An SNMP value as int (integer types, exact), str (text types), else float or str.

    "Else" covers the poller's derived rows, e.g. type "rate" (units per second).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    name = kind.strip() if isinstance(kind, str) else ""
    kind = name.lower()
    if kind in SNMP_TEXT_TYPES:
        return text
    if kind in SNMP_INTEGER_TYPES:
        try:
            return int(text)
        except ValueError:
            pass
    try:
        number = float(text)
    except ValueError:
        if kind in SNMP_INTEGER_TYPES:
            raise BadInput(
                f"SNMP {name} value {text!r} is not a number", file=str(csv_file), line=line
            ) from None
        return text
    return int(number) if kind in SNMP_INTEGER_TYPES and number.is_integer() else number


def _run_start(meta: dict[str, Any], meta_file: Path, results: Results) -> float | None:
    """meta.json "start", else the earliest time in the known tables, else None."""
    start = meta.get("start")
    if start is not None:
        try:
            return float(start)
        except (TypeError, ValueError):
            raise BadInput(
                f'"start" must be epoch seconds, got {start!r}', file=str(meta_file)
            ) from None
    times = [
        df[NUMERIC_COLUMNS[kind][0]].min()
        for name, df in results.tables.items()
        if (kind := results.kinds[name]) != OTHER and len(df)
    ]
    times = [t for t in times if pd.notna(t)]
    return float(min(times)) if times else None
