"""uvicorn's HTTP protocol with the two guards it lacks: a deadline for the request line and
headers, and a cap on their size.

uvicorn arms no timer until a first response has gone out, and every byte received cancels its
keep-alive timer, so a client that opens a connection and trickles header bytes (slowloris) would
hold it forever. Here a timer starts with the connection and with each new request, and only a
complete set of headers stops it. The body has its own deadline in the route.

Once the process is draining, every response also closes its connection, so keep-alive clients
reconnect to a replica that is staying rather than keep using this one until it goes away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def guarded_protocol(
    header_timeout: float, max_header_bytes: int, draining: Callable[[], bool] = lambda: False
) -> type[HttpToolsProtocol]:
    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None
        _header_bytes = 0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._header_bytes = 0
            if self._header_timer is None:
                self._arm()

        def on_url(self, url: bytes) -> None:
            if self._count(len(url)):
                super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            if self._count(len(name) + len(value) + 4):
                super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()
            if draining() and self.cycle is not None:
                self.cycle.keep_alive = False

        def _count(self, size: int) -> bool:
            self._header_bytes += size
            if self._header_bytes <= max_header_bytes:
                return True
            self._refuse(
                b"431 Request Header Fields Too Large", "request_header_fields_too_large", "headers too large"
            )
            return False

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self._refuse(b"408 Request Timeout", "request_timeout", "headers not received in time")

        def _refuse(self, status: bytes, code: str, message: str) -> None:
            if self.transport.is_closing():
                return
            body = b'{"error":{"code":"%s","message":"%s"}}' % (code.encode(), message.encode())
            self.transport.write(
                b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\nconnection: close\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            self.transport.close()

    return GuardedHttpToolsProtocol
