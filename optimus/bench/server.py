"""A Streamlit server and a headless Chromium to drive it: the one way the bench and the browser
tests start `streamlit run`, and what they read of the server process from /proc.

`serve` launches a script (the app, or the bare page `bare_page.py`) with the repository's
`.streamlit/config.toml` (Streamlit reads it from the working directory) on a free port, waits
for /_stcore/health, yields a `Server`, and on the way out stops the server and every trainer
it started (trainers run detached from the server on purpose). `chromium` opens Debian's
Chromium with the flags an offline sandbox needs (never `playwright install`).

A page's cost is the server's own CPU (utime + stime of all its threads, /proc/<pid>/stat) and
memory (VmRSS, VmHWM), not the time of a script under AppTest: most of a page load's cost is
Streamlit's session set-up, which AppTest never runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from optimus.store import runs, storage

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
BARE_PAGE = Path(__file__).with_name("bare_page.py")
BARE_PAGE_SERVED = Path(__file__).with_name("bare_page_served.py")  # through the app's serving layer
START_TIMEOUT_S = 120
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def chromium_path() -> str:
    return shutil.which("chromium") or CHROMIUM


def browser_missing() -> str | None:
    """Why no browser can be driven here (None when Playwright and Chromium are both present)."""
    try:
        import playwright  # noqa: F401  Playwright: optional; the CLI imports optimus.bench
    except ImportError:
        return "playwright is not installed"
    if not os.path.exists(chromium_path()):
        return "chromium is not installed"
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except OSError:
        return None


def rss_bytes(pid: int) -> tuple[int, int]:
    """(current, peak) resident set size of a process in bytes, from /proc (Linux)."""
    fields = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (fields 14 and 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process visible in /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rpartition(")")[2].split()[1])
    return parents


def descendants_cpu_seconds(root: int, exclude=()) -> float:
    """CPU seconds (all threads) of the processes below `root`, leaving out those in `exclude`
    and everything below them: the browsers Playwright drives from this process (Chromium and
    its driver), without the server. Processes that already ended are not counted."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    total, todo, skip = 0.0, list(children.get(root, [])), set(exclude)
    while todo:
        pid = todo.pop()
        if pid in skip:
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += cpu_seconds(pid)
        todo.extend(children.get(pid, []))
    return total


def machine_cpu_seconds() -> float:
    """The machine's busy CPU seconds since boot, all cores and processes (/proc/stat: user,
    nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as fh:
        fields = fh.readline().split()[1:]
    return sum(int(fields[i]) for i in (0, 1, 2, 5, 6, 7)) / _CLK_TCK


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (`5` to /proc/<pid>/clear_refs, Linux 4.0+); False if refused."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class PeakRss:
    """The peak RSS of a process over a block: VmHWM after a reset where the kernel allows it,
    and VmRSS sampled every `interval` seconds in any case (the larger is kept)."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, KeyError):
                self.peak = max(self.peak, rss_bytes(self.pid)[0])
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._hwm = reset_peak_rss(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(OSError, KeyError):
            current, hwm = rss_bytes(self.pid)
            self.peak = max(self.peak, current, hwm if self._hwm else 0)


@dataclasses.dataclass
class Server:
    url: str
    pid: int
    port: int
    launched: float  # time.perf_counter() just before `streamlit run`
    healthy: float  # ... when /_stcore/health first answered 200
    log: Path | None


def _stop_trainers(models_root: Path, wait_s: float = 60) -> None:
    dirs = [d for d in models_root.iterdir() if d.is_dir()] if models_root.is_dir() else []
    for model_dir in dirs:
        if storage.lock_holder(model_dir) is not None:
            storage.request_stop(model_dir)
    for model_dir in dirs:
        deadline = time.monotonic() + wait_s
        while storage.lock_holder(model_dir) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        holder = storage.lock_holder(model_dir)
        if holder is not None:
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(holder["pid"]), 9)


@contextlib.contextmanager
def serve(models_root=None, script=None, log_path=None, env: dict | None = None, address: str = "127.0.0.1",
          args=(), wait: bool = True):
    """`streamlit run <script>` (default app.py) on a free port of `address`, over `models_root`
    ($OPTIMUS_MODELS_DIR; None keeps the environment's), with the repository's config; yields a
    Server once /_stcore/health answers (wait=False: at once, `healthy` then 0). On exit the
    server's process group is stopped, then every trainer under `models_root`."""
    port = free_port("127.0.0.1" if address in ("0.0.0.0", "::") else address)
    host = "127.0.0.1" if address in ("0.0.0.0", "::") else address
    url = f"http://{host}:{port}"
    log = open(log_path, "wb") if log_path else tempfile.TemporaryFile()
    extra = {runs.MODELS_ENV: str(models_root)} if models_root is not None else {}
    launched = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script or "app.py"), "--server.port", str(port),
         "--server.address", address, "--server.headless", "true", "--browser.gatherUsageStats", "false",
         *args],
        cwd=REPO, env=dict(os.environ, **extra, **(env or {})),
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        healthy = 0.0
        if wait:
            deadline = time.monotonic() + START_TIMEOUT_S
            while http_status(url + "/_stcore/health") != 200:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    log.seek(0)
                    raise RuntimeError(f"streamlit did not start: {log.read()[-2000:].decode(errors='replace')}")
                time.sleep(0.02)
            healthy = time.perf_counter()
        yield Server(url, proc.pid, port, launched, healthy, Path(log_path) if log_path else None)
    finally:
        runs.stop_process_group(proc)
        if models_root is not None:
            _stop_trainers(Path(models_root))
        log.close()


def launch_chromium(playwright):
    """Headless Chromium from a sync or async Playwright (await the result with the async one)."""
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)


RUNNING = '[data-testid="stStatusWidget"]'
EXCEPTION = '[data-testid="stException"]'


async def settle(page, timeout_ms: int = 120_000) -> None:
    """Until the script run is over: Streamlit's running indicator shown, then hidden (it shows
    after a short delay, so a page that has not started yet is not taken for done)."""
    with contextlib.suppress(Exception):
        await page.locator(RUNNING).wait_for(state="visible", timeout=300)
    await page.locator(RUNNING).wait_for(state="hidden", timeout=timeout_ms)
