"""The layer rules at run time: the import contracts (``lint-imports``, in the test command) see every import
statement; this checks what a production process actually loads."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import sys
from esp_warehouse import Declarations, build_location, build_resources

decls = Declarations.model_validate({
    "syncs": [
        {"name": "a", "provider": "sendpulse", "book": "A", "source": {"table": "t"}},
        {"name": "b", "provider": "pakat", "book": "B", "source": {"table": "t"}},
        {"name": "c", "provider": "litestartup", "book": "C", "source": {"table": "t"}},
    ]
})
defs = build_location(decls, build_resources(decls)).defs
for key in ("sendpulse", "pakat", "litestartup"):
    defs.resources[key].get_provider()  # a client and an adapter, as a run builds them
emulators = ("starlette", "uvicorn", "espcore.sandbox")
print(sorted(m for m in sys.modules if m.startswith(emulators)))
"""


def test_a_production_process_never_loads_the_sandboxes() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESP_", "SENDPULSE_", "PAKAT_", "LITESTARTUP_"))}
    env.update(SENDPULSE_CLIENT_ID="id", SENDPULSE_CLIENT_SECRET="secret", PAKAT_API_KEY="k", LITESTARTUP_API_KEY="k")
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
