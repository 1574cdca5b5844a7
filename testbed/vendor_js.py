"""The JavaScript libraries the lab console serves, from Debian's packages (no CDN: labs are
often offline). scripts/provision installs libjs-d3 (d3 3.5, the graph drawing) and
libjs-chart.js (Chart.js 3.9, the live graphs); their minified files are served as they are.

Also where the headless browser is (Debian's chromium), for `testbed doctor` and the tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# The name the console serves a file under -> the installed file (Debian's path).
VENDOR_FILES: dict[str, Path] = {
    "d3.js": Path("/usr/share/javascript/d3/d3.min.js"),
    "chart.js": Path("/usr/share/javascript/chart.js/chart.min.js"),
}
# The Debian package providing each served name (for messages saying what to install).
VENDOR_PACKAGES: dict[str, str] = {"d3.js": "libjs-d3", "chart.js": "libjs-chart.js"}
CHROMIUM_NAMES = ("chromium", "chromium-browser")


def missing_vendor_files() -> list[str]:
    """Served names whose file is not installed (empty when all are)."""
    return [name for name, path in VENDOR_FILES.items() if not path.is_file()]


def missing_message(missing: list[str]) -> str:
    """What to do about missing files, naming the packages."""
    packages = sorted({VENDOR_PACKAGES[name] for name in missing})
    return (
        f"missing {', '.join(missing)}: run scripts/provision "
        f"(or apt-get install {' '.join(packages)})"
    )


def chromium_path() -> str | None:
    """The headless browser's executable (Debian's chromium), or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None
