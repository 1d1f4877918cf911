"""SendPulse email-service sandbox: ``SendPulseSandbox`` plus the demo account's credentials."""

from espcore.sandbox.sendpulse.sandbox import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_SENDER_EMAIL,
    DEMO_SENDER_NAME,
    SendPulseSandbox,
)

__all__ = ["DEMO_CLIENT_ID", "DEMO_CLIENT_SECRET", "DEMO_SENDER_EMAIL", "DEMO_SENDER_NAME", "SendPulseSandbox"]
