"""A ``:stop`` failpoint freezes the process between database writes of its background threads.

On SQLite a process frozen inside a write holds the file's write lock and blocks every other
worker until it resumes; the pause tests are about a worker that stops answering while it holds
a claim, so the freeze waits for a write in progress (:func:`simecg.failpoints.writing`) to end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

CHILD = textwrap.dedent("""
    import sys, threading, time
    from pathlib import Path
    from simecg.failpoints import failpoint, writing

    log = Path(sys.argv[1])

    def writer():
        with writing():
            log.write_text("in")
            time.sleep(1.5)  # a slow write, as on a loaded machine
            log.write_text("in out")

    threading.Thread(target=writer, daemon=True).start()
    while not log.exists():
        time.sleep(0.01)
    failpoint("demo")  # SIMECG_FAILPOINT=demo:stop: freezes here, once the write has ended
    log.write_text(log.read_text() + " resumed")
""")


def test_a_stop_failpoint_waits_for_a_background_write_to_end(tmp_path: Path) -> None:
    log = tmp_path / "log"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(log)],
                             env={**os.environ, "SIMECG_FAILPOINT": "demo:stop"})
    try:
        _, status = os.waitpid(child.pid, os.WUNTRACED)  # returns when the child is stopped (or ended)
        assert os.WIFSTOPPED(status), "the child ended instead of freezing"
        assert log.read_text() == "in out"  # frozen after the write, not inside it
        os.kill(child.pid, signal.SIGCONT)
        deadline = time.monotonic() + 30
        while child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.returncode == 0
        assert log.read_text() == "in out resumed"
    finally:
        os.kill(child.pid, signal.SIGCONT) if child.poll() is None else None
        child.kill()
