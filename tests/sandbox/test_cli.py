"""The sandbox command line: reset, advance, and a real server on 127.0.0.1 that answers."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from espcore.sandbox.__main__ import main
from espcore.sandbox.base import ADMIN_HEADER, read_admin_token
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


def test_token_prints_the_admin_token_of_the_state_and_survives_a_reset(tmp_path, capsys):
    state = tmp_path / "pk.json"
    assert main(["token", "pakat", "--state", str(state)]) == 0
    token = capsys.readouterr().out.strip()
    assert token == read_admin_token(state)
    assert main(["reset", "pakat", "--state", str(state), "--empty"]) == 0
    capsys.readouterr()
    assert main(["token", "pakat", "--state", str(state)]) == 0
    assert capsys.readouterr().out.strip() == token


def test_token_without_a_state_file_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["token", "sendpulse"])
    assert "--state" in capsys.readouterr().err


def test_serve_prints_the_admin_token_and_the_surface_needs_it(tmp_path):
    state = tmp_path / "sp.json"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "espcore.sandbox", "serve", "sendpulse", "--port", str(port), "--state", str(state)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while not line.startswith("admin:"):
            assert time.monotonic() < deadline, line
            assert proc.poll() is None, line
            line = proc.stdout.readline()
        token = line.rsplit(" ", 1)[1].strip()
        assert token == read_admin_token(state)
        url = f"http://127.0.0.1:{port}/__sandbox/clock"
        assert httpx.post(url, json={"advance": 60}, timeout=5).status_code == 401  # SendPulse's own answer
        moved = httpx.post(url, json={"advance": 60}, headers={ADMIN_HEADER: token}, timeout=5)
        assert moved.status_code == 200
        assert "now" in moved.json()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def test_dialect_chooses_the_api_a_new_account_serves(tmp_path, capsys):
    state = tmp_path / "ls.json"
    assert main(["reset", "litestartup", "--state", str(state), "--dialect", "current"]) == 0
    assert json.loads(state.read_text())["dialect"] == "current"
    with pytest.raises(SystemExit):
        main(["reset", "litestartup", "--state", str(tmp_path / "x.json"), "--dialect", "newest"])
    assert "litestartup has no API dialect 'newest' (dialects: seed, current)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reset", "pakat", "--dialect", "current"])
    assert "pakat has no API dialect 'current' (dialects: none: it has one)" in capsys.readouterr().err
