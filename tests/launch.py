"""Start the app's server on a free local port and wait until it answers: test and bench tooling (not part of
the app), the one launcher of the real-browser tests and the latency bench (no Streamlit import here: it
runs ``streamlit run`` as a child)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY, BARE_ENTRY = "app/serve.py", "app/streamlit_app.py"  # the README's command; the same app without warm start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(results: Path | None, log_path: Path, entry: str = ENTRY, timeout_s: float = 90.0,
          cache: Path | None = None):
    """``streamlit run entry`` on 127.0.0.1 and a free port, its output in ``log_path``; yields (url, seconds
    from launch to a healthy server). ``results`` None: no results folder set (the app opens the demo); no
    data root either. ``cache``: the server's cache root (``PROPME_CACHE_DIR``), else this process's.
    Raises RuntimeError with the log's tail when the server does not come up."""
    env = {k: v for k, v in os.environ.items() if k not in ("PROPME_DATA_ROOT", "PROPME_RESULTS_DIR")}
    if cache is not None:
        env["PROPME_CACHE_DIR"] = str(cache)
    if results is not None:
        env["PROPME_RESULTS_DIR"] = str(results)
    port = free_port()
    with open(log_path, "w+") as log:
        t = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", entry, "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            while True:
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    if time.perf_counter() - t > timeout_s or proc.poll() is not None:
                        log.seek(0)
                        raise RuntimeError(f"streamlit did not start: {log.read()[-3000:]}") from None
                    time.sleep(0.05)
            yield url, time.perf_counter() - t
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
