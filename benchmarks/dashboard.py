"""Dashboard section: Voilà time to interactive, keystroke latency, kernel memory per session.

A thin wrapper: the measurements themselves live in ``benchmarks/dashboard_browser.py``
(owned with the browser tests, ``tests/browser/``; one implementation for both). This
section runs it in a subprocess on the benchmark's 60k model (or ``artifacts/default``)
and stores its JSON. It is skipped when the dashboard, Voilà, Playwright or
``/usr/bin/chromium`` is missing, and in ``--quick`` mode (it needs a browser and takes
minutes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, log, model_dir, table

CHROMIUM = Path("/usr/bin/chromium")


def available() -> tuple[bool, str]:
    if not (ROOT / "notebooks" / "dashboard.ipynb").is_file():
        return False, "notebooks/dashboard.ipynb is missing"
    if not (ROOT / "benchmarks" / "dashboard_browser.py").is_file():
        return False, "benchmarks/dashboard_browser.py is missing"
    if not CHROMIUM.exists():
        return False, f"{CHROMIUM} is missing"
    for module in ("voila", "playwright"):
        try:
            __import__(module)
        except ImportError:
            return False, f"{module} is not installed"
    return True, ""


def run(cache: Path, quick: bool = False, **_: Any) -> dict[str, Any]:
    if quick:
        return {"skipped": "quick mode (needs a browser and minutes)"}
    ok, why = available()
    if not ok:
        return {"skipped": why}
    artifact = model_dir(cache, None, 20, 5)
    if not (artifact / "manifest.json").is_file():
        artifact = Path(os.environ.get("ABSTRACTOR_ARTIFACT", ROOT / "artifacts" / "default"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dashboard.json"
        log(f"  dashboard_browser.py on {artifact} ...")
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dashboard_browser.py"),
                               "--artifact", str(artifact), "--json", str(out)],
                              cwd=ROOT, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0 or not out.is_file():
            return {"failed": proc.returncode, "stderr": proc.stderr[-3000:]}
        result = json.loads(out.read_text(encoding="utf-8"))
    for kind in ("immediate", "typing"):
        (result.get("keystroke_latency_ms") or {}).get(kind, {}).pop("samples_ms", None)
    return {"artifact": str(artifact), "results": result}


def tables(result: dict[str, Any]) -> str:
    if "results" not in result:
        return f"\nDashboard: {result.get('skipped') or 'failed'} (see tests/browser and docs/dashboard.md)\n"
    r = result["results"]
    rows = []
    for kind in ("preheated_median", "cold_median"):
        tti = (r.get("time_to_interactive") or {}).get(kind) or {}
        rows.append({"measure": f"time to interactive, {kind.split('_')[0]} (s)",
                     "value": tti.get("first_result_s")})
    for kind in ("immediate", "typing"):
        lat = (r.get("keystroke_latency_ms") or {}).get(kind) or {}
        rows.append({"measure": f"keystroke latency, {kind}, p50 / p95 (ms)", "value": f"{lat.get('p50')} / {lat.get('p95')}"})
    memory = r.get("memory") or {}
    rows.append({"measure": "marginal memory per extra session (MiB)", "value": memory.get("marginal_per_extra_session_mib")})
    return table(rows, title="Dashboard (Voilà + Chromium; benchmarks/dashboard_browser.py)")
