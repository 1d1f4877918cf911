"""The sandbox command line: reset, advance, and a real server on 127.0.0.1 that answers."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from espcore.sandbox.__main__ import main
from espcore.sandbox.server import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_reset_and_advance(tmp_path, capsys):
    state = tmp_path / "sp.json"
    assert main(["reset", "sendpulse", "--state", str(state)]) == 0
    assert "demo" in capsys.readouterr().out
    assert json.loads(state.read_text())["__initialised__"] is True
    assert main(["advance", "sendpulse", "--state", str(state), "--seconds", "60"]) == 0
    assert "sandbox time is now" in capsys.readouterr().out


def test_serve_binds_loopback_and_answers(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "espcore.sandbox", "serve", "litestartup", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/client/v2/verify", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert r.status_code == 401
        assert r.json()["code"] == "INVALID_API_KEY"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
