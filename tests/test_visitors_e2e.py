"""Many visitors at once (issue 14): ten headless Chromium sessions on one `streamlit run app.py`.

Each samples 10,000 from the default model and opens the Discriminator and Density pages; two
of them press Start on the same new model name at the same moment. Exactly one run starts and
the other is told why not; every session gets its answers; no page shows an exception; the
server's memory stays bounded and comes back after the sessions close. The scenario itself is
`optimus.bench.visitors.visit_app` on a server started by `optimus.bench.server.serve` (no
timed assertions here; `python -m optimus bench app-load` measures the room).
"""

from __future__ import annotations

import time

import pytest

from optimus import bench
from optimus.bench.server import serve
from optimus.store import runs
from tests.helpers import shipped_or_tiny_models

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

MB = 2**20


def test_ten_visitors_at_once(tmp_path):
    root = shipped_or_tiny_models(tmp_path / "models")
    with serve(root, log_path=tmp_path / "streamlit.log") as server:
        # Warm the server with one visitor (TensorFlow, the models, the caches), so that the
        # baseline is the served app and not an idle interpreter.
        warm = bench.visit_app(server.url, server.pid, count=1, racers=0)
        assert warm["sessions"][0].get("sampled"), warm
        baseline, _ = bench.rss_bytes(server.pid)
        load = bench.visit_app(server.url, server.pid, count=10, racers=2)
        # The one trainer started: wait for its single tiny batch (TensorFlow loads first).
        deadline = time.time() + 600
        while time.time() < deadline:
            status = runs.read_status(root / bench.RACE_MODEL)
            if status is not None and not status["live"] and status["state"] != "starting":
                break
            time.sleep(1.0)
        race_runs = runs.read_runs(root / bench.RACE_MODEL)
    sessions = load["sessions"]
    print(f"\nserver RSS: {warm['rss_before'] / MB:.0f} MB idle, {baseline / MB:.0f} MB warm, "
          f"peak {load['rss_peak'] / MB:.0f} MB with 10 sessions, {load['rss_after'] / MB:.0f} MB after; "
          f"page answers p50 {load['page_p50_s']:.2f} s, p95 {load['page_p95_s']:.2f} s")

    assert len(sessions) == 10
    for s in sessions:
        assert s.get("sampled"), s
        assert set(s["times"]) == {"sample_page", "sample_answer", "Discriminator vs sympy", "Prime density"}, s
        assert s["exceptions"] == [], s
    answers = [s["race"] for s in sessions[:2]]
    started = [a for a in answers if a.startswith(f"Started training {bench.RACE_MODEL}")]
    assert len(started) == 1, answers
    refused = [a for a in answers if a not in started][0]
    assert any(k in refused for k in ("already in progress", "was just started", "already exists")), refused
    assert status is not None and status["state"] == "done", status
    assert len(race_runs) == 1, race_runs  # one run, by one trainer
    # Memory: bounded while serving, and back near the warm baseline after (generous bounds).
    assert load["rss_peak"] < 8 * 2**30
    assert load["rss_after"] < 2 * baseline + 500 * MB
