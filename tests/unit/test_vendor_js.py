"""The console's JavaScript libraries come from Debian packages, found by path."""

from __future__ import annotations

from pathlib import Path

from testbed import vendor_js
from testbed.paths import REPO


def test_the_served_names_and_their_packages():
    assert set(vendor_js.VENDOR_FILES) == {"d3.js", "chart.js"}
    assert set(vendor_js.VENDOR_PACKAGES) == set(vendor_js.VENDOR_FILES)
    for path in vendor_js.VENDOR_FILES.values():
        assert path.is_absolute()
        assert path.name.endswith(".min.js")


def test_missing_files_are_named_with_the_package_to_install(monkeypatch, tmp_path):
    there = tmp_path / "d3.min.js"
    there.write_text("/* d3 */")
    monkeypatch.setattr(
        vendor_js, "VENDOR_FILES", {"d3.js": there, "chart.js": tmp_path / "nope.js"}
    )
    assert vendor_js.missing_vendor_files() == ["chart.js"]
    message = vendor_js.missing_message(["chart.js"])
    assert "libjs-chart.js" in message
    assert "scripts/provision" in message


def test_provisioning_installs_the_packages():
    text = (REPO / "scripts" / "provision").read_text()
    for package in [*vendor_js.VENDOR_PACKAGES.values(), "chromium", "fonts-dejavu-core"]:
        assert f" {package}" in text or f"({package}" in text, package


def test_chromium_path_is_an_executable_or_none():
    found = vendor_js.chromium_path()
    assert found is None or Path(found).is_file()
