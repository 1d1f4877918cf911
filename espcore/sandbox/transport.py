"""Run a sandbox's ASGI app in-process behind an httpx transport (no sockets, same app as the server)."""

import asyncio
import threading
from typing import Any

import httpx

from espcore.sandbox.base import SimulatedReset, SimulatedTimeout


class InProcessTransport(httpx.BaseTransport):
    """A synchronous httpx transport that calls an ASGI app on a private event loop thread.

    Injected faults arrive as the exceptions a real socket would give: a simulated timeout becomes
    ``httpx.ReadTimeout`` and a reset becomes ``httpx.RemoteProtocolError``.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        # A daemon thread runs the loop, so a transport that is never closed cannot keep a process alive.
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="sandbox-inprocess", daemon=True).start()
                self._loop = loop
            return self._loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        try:
            future = asyncio.run_coroutine_threadsafe(self._call(request, body), self._get_loop())
            status, headers, content = future.result()
        except SimulatedTimeout:
            raise httpx.ReadTimeout("simulated read timeout", request=request) from None
        except SimulatedReset:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None
        return httpx.Response(status, headers=headers, content=content, request=request)

    async def _call(self, request: httpx.Request, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        url = request.url
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": url.scheme,
            "path": url.path,
            "raw_path": url.raw_path.split(b"?")[0],
            "query_string": url.query,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "client": ("127.0.0.1", 50000),
            "server": (url.host, url.port or 80),
            "extensions": {"espcore.inprocess": True},
        }
        sent = False
        status = 500
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, headers, b"".join(chunks)

    def close(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
