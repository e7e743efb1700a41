"""The served app, as a room sees it: `streamlit run app.py` with the repository's own
.streamlit/config.toml, every page opened from its URL in a new headless Chromium session.

- The server process never maps TensorFlow: after every page has run (samples, classifies,
  evaluates, any size), /proc/<server pid>/maps lists no TensorFlow shared object
  (libtensorflow*, _pywrap_tensorflow*, anything under site-packages/tensorflow/).
- Nothing comes from outside the server: every request every page makes (Playwright's
  `page.on("request")`) goes to the server's own host and port (a venue may be offline).

Run as a script, it prints the server's RSS and whether TensorFlow is mapped after the visit:
`python tests/test_server_e2e.py [REPO]` (REPO: another checkout, e.g. the code before a change).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PAGE_TIMEOUT_MS = 180_000
# Every page, from its URL, with what issue 18 measured (10,000 samples in the band, 100 primes
# of 100 digits, a classification run, density to 1e15 in 100 log bins).
PAGES = ("/", "/train", "/sample?count=10000&seed=3", "/sample?digits=100&count=100&seed=3",
         "/discriminator?disc_seed=3", "/density", "/density?hi=1000000000000000&bins=100&spacing=log",
         "/continual")
TENSORFLOW_MARKS = ("libtensorflow", "_pywrap_tensorflow", "/tensorflow/", "/keras/")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(repo: Path, models_root: Path, log_path: Path):
    """`streamlit run app.py` in `repo` on a free port, settings from its config.toml only."""
    port = _free_port()
    log = open(log_path, "wb")
    env = dict(os.environ, OPTIMUS_MODELS_DIR=str(models_root), PYTHONPATH=str(repo))
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
                            cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc, url, log
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            log.close()
            proc.kill()
            raise RuntimeError(f"streamlit did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.3)


def tensorflow_mapped(pid: int) -> list[str]:
    """The TensorFlow/Keras files the process has mapped (shared objects, module files)."""
    with open(f"/proc/{pid}/maps") as fh:
        paths = {line.split()[-1] for line in fh if len(line.split()) >= 6}
    return sorted(p for p in paths if any(mark in p for mark in TENSORFLOW_MARKS))


def memory_mb(pid: int) -> dict:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {k: int(status[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process, all threads (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def visit(url: str, pages=PAGES) -> dict:
    """Open each page in a new browser session; {page: [request URLs]} and any exception text."""
    from playwright.sync_api import sync_playwright

    requests, errors = {}, {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            for path in pages:
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                page.set_default_timeout(PAGE_TIMEOUT_MS)
                seen = requests.setdefault(path, [])
                page.on("request", lambda request, seen=seen: seen.append(request.url))
                page.goto(url + path)
                page.locator("h1").first.wait_for()
                page.wait_for_timeout(500)
                page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")
                page.wait_for_timeout(1_000)  # late requests (icons, fonts) after the run
                exceptions = page.locator('[data-testid="stException"]')
                if exceptions.count():
                    errors[path] = exceptions.first.inner_text()
                context.close()
        finally:
            browser.close()
    return {"requests": requests, "errors": errors}


def foreign(url: str, requests: dict) -> dict:
    """{page: [requests to any other host than the server's]} (data: and blob: URLs are local)."""
    own = urllib.parse.urlsplit(url).netloc
    out = {}
    for page, urls in requests.items():
        bad = [u for u in urls if urllib.parse.urlsplit(u).scheme not in ("data", "blob")
               and urllib.parse.urlsplit(u).netloc != own]
        if bad:
            out[page] = bad
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from optimus.store import runs
    from tests.helpers import shipped_or_tiny_models

    work = tmp_path_factory.mktemp("server")
    root = shipped_or_tiny_models(work / "models")
    proc, url, log = start_server(REPO, root, work / "streamlit.log")
    try:
        yield {"proc": proc, "url": url, "visit": visit(url)}
    finally:
        runs.stop_process_group(proc)
        log.close()


def test_every_page_runs_without_tensorflow_in_the_server(served):
    assert not served["visit"]["errors"], served["visit"]["errors"]
    mapped = tensorflow_mapped(served["proc"].pid)
    print(f"\nserver after every page: {memory_mb(served['proc'].pid)} MB; TensorFlow mapped: {len(mapped)} files")
    assert not mapped, f"the server mapped TensorFlow/Keras: {mapped[:5]}"


def test_no_page_calls_another_host(served):
    assert served["visit"]["requests"]["/"], "no request recorded: the recorder is broken"
    assert not foreign(served["url"], served["visit"]["requests"]), foreign(served["url"], served["visit"]["requests"])


if __name__ == "__main__":  # python tests/test_server_e2e.py [REPO]: the figures, for a report
    import json
    import shutil
    import tempfile

    repo = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else REPO
    work = Path(tempfile.mkdtemp(prefix="optimus-server-"))
    shutil.copytree(repo / "models", work / "models", ignore=shutil.ignore_patterns("logs", "*.lock", "STOP"))
    proc, url, log = start_server(repo, work / "models", work / "streamlit.log")
    try:
        t0, cpu0 = time.time(), cpu_seconds(proc.pid)
        result = visit(url)
        print(json.dumps({
            "repo": str(repo), "seconds": round(time.time() - t0, 1), "errors": result["errors"],
            "server_cpu_seconds_for_the_visit": round(cpu_seconds(proc.pid) - cpu0, 1),
            "memory_mb_after_every_page": memory_mb(proc.pid),
            "tensorflow_files_mapped": len(tensorflow_mapped(proc.pid)),
            "foreign_requests": {k: sorted(set(v))[:5] for k, v in foreign(url, result["requests"]).items()},
        }, indent=1))
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
