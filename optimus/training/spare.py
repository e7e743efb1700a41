"""A warm trainer: a process that has imported TensorFlow and the training loop and waits for
one run to train.

Importing TensorFlow is about 3 s of a new run's first batch on two cores, so the app keeps one
of these ready (`optimus.store.runs.ensure_spare`) and hands it the next run instead of
spawning `python -m optimus train` cold. It is started the way a trainer is (its own session,
the repository as its working directory) and becomes that trainer: the same process, so the
pid the app records, the run lock's holder and the process group it stops are one.

Protocol, on its standard streams (which are pipes to the app until a job arrives):
- it imports, then reads ONE line from stdin: {"argv": [...], "log": PATH}, the arguments of
  `python -m optimus` (`runs.train_command` without the interpreter) and the run's train.log;
- it answers "ok\n" on stdout, points stdout and stderr at the log (appended, never through a
  link) and stdin at /dev/null, and runs `optimus.cli.main(argv)`; its exit code is the run's;
- without a job it exits with UNUSED: on end of file (the app is gone), after IDLE_SECONDS, or
  if its imports failed (the app then spawns the trainer cold, which reports the error).
A run started here trains exactly as one spawned cold: the loop seeds every generator itself
(`keras.utils.set_random_seed`), and builds the run's networks as a cold run does.

While it waits it also builds the default preset's GAN and traces its compiled batch and step
(`optimus.training.loop.prewarm`): a new model of the `default` or `demo` preset (they share
every traced shape) then takes that GAN with its own networks' weights, and its first batch skips
the tracing (most of its CPU). Not on a machine with a GPU: the run's --device must choose the
devices before TensorFlow initialises them.
"""

from __future__ import annotations

import os
import select
import sys

from optimus.config import preset
from optimus.store import storage

UNUSED = 75  # EX_TEMPFAIL: exited without a job; the app starts the run another way
IDLE_SECONDS = 1800.0  # an unused spare gives its memory back after this long
READY = b"ok\n"


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # as `python -m optimus` (optimus/__main__.py)
    try:
        from optimus import cli  # in the try: a failed import leaves the run to a cold start
        from optimus.training import loop  # noqa: F401  TensorFlow and the loop, in the try (as above)
    except Exception:  # noqa: BLE001 (a cold start shows the error in the run's log)
        return UNUSED
    _prewarm(loop)
    readable, _, _ = select.select([sys.stdin], [], [], IDLE_SECONDS)
    line = sys.stdin.readline() if readable else ""
    try:
        job = storage.loads_json(line)
        argv, log = [str(a) for a in job["argv"]], str(job["log"])
    except (ValueError, KeyError, TypeError):
        return UNUSED
    try:
        fd = storage.open_nofollow(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    except OSError:
        return UNUSED
    os.write(sys.stdout.fileno(), READY)
    sys.stdout.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.argv = [sys.executable, "-m", "optimus", *argv]
    return cli.main(argv)


def _prewarm(loop) -> None:
    """The default preset's GAN, traced ahead (module docstring); a failure leaves the run to
    build its own, as without it."""
    try:
        loop.prewarm(preset("default"))
    except Exception:  # noqa: BLE001 (prewarm keeps nothing that failed: the run builds its own GAN)
        pass


if __name__ == "__main__":
    sys.exit(main())
