"""Measurements of the Voilà dashboard in Chromium, recorded to ``test-output/dashboard-perf.json``.

Timings are recorded, never asserted (the machine is shared); the test only checks that
every measurement ran. ``benchmarks/dashboard_browser.py`` runs the same measurements
from the command line (on any model) and prints them; see ``docs/dashboard.md``.
"""

from __future__ import annotations

import json

import pytest
from benchmarks.dashboard_browser import measure_all, report

pytestmark = pytest.mark.browser


def test_dashboard_measurements(chromium, voila_light, voila_cold, artifact, output_dir):
    # a filter keeping the same similar papers waits for the whole timeout: 10 s, not the benchmark's 60
    results = measure_all(chromium, voila_light, voila_cold, artifact, edits=50, typing_edits=20, tti_runs=1,
                          sessions=(1, 5), filter_timeout=10.0)
    (output_dir / "dashboard-perf.json").write_text(json.dumps(results, indent=2))
    print("\n" + report(results))

    latency = results["keystroke_latency_ms"]
    assert latency["immediate"]["n"] == 50 and latency["immediate"]["timeouts"] == 0, latency
    assert latency["typing"]["n"] == 20 and latency["typing"]["timeouts"] == 0, latency
    tti = results["time_to_interactive"]
    assert tti["preheated"] and tti["cold"]
    memory = results["memory"]
    assert memory["1"]["kernels"] == 1 and memory["5"]["kernels"] == 5, memory
    assert "marginal_per_extra_session_mib" in memory
