"""``simecg-bench ui`` in a subprocess for tests: started, waited for, its printed URL read."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def start_ui(uri: str, port: int, *extra: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """``simecg-bench ui`` in a subprocess; returns it and the URL it printed once the server answers."""
    code = "import sys; from benchmark.cli import main; sys.exit(main(sys.argv[1:]))"
    ui = subprocess.Popen([sys.executable, "-c", code, "ui", "--tracking-uri", uri, "--port", str(port), *extra],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env or os.environ.copy(),
                          cwd=Path(__file__).resolve().parents[1])
    url = ""
    for line in ui.stdout:
        if "MLflow UI for" in line:
            url = line.split(": ", 1)[1].split()[0]
            break
    assert url, "simecg-bench ui printed no URL"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return ui, url
        except OSError:
            time.sleep(0.3)
    ui.kill()
    raise AssertionError("the MLflow UI did not answer within 120 s")
