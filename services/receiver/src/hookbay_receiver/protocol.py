"""uvicorn's HTTP protocol with the guards it lacks: deadlines for the request line and headers and
for the body, and a cap on the headers' size.

uvicorn arms no timer until a first response has gone out, and every byte received cancels its
keep-alive timer, so a client that opens a connection and trickles header bytes (slowloris) would
hold it forever. Here the client has ``header_timeout`` from the connection or the first byte of a
request to complete its headers, then ``body_timeout`` to complete its body; otherwise it gets 408
and the connection is closed.

Once the process is draining, every response also closes its connection, so keep-alive clients
reconnect to a replica that is staying rather than keep using this one until it goes away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def guarded_protocol(
    header_timeout: float,
    max_header_bytes: int,
    body_timeout: float,
    draining: Callable[[], bool] = lambda: False,
) -> type[HttpToolsProtocol]:
    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        # One timer per connection, moved lazily: a request only sets a deadline (a float), and the
        # timer, when it fires, either finds the client late or re-arms itself for the deadline now
        # due. A timer handle per request would cost more than the rest of this class together.
        _timer: asyncio.TimerHandle | None = None
        _deadline = 0.0
        _owed: str | None = None  # "headers" or "body" while the client owes us those
        _header_bytes = 0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._expect("headers", header_timeout)

        def connection_lost(self, exc: Exception | None) -> None:
            self._owed = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._header_bytes = 0
            self._expect("headers", header_timeout)

        def on_url(self, url: bytes) -> None:
            if self._count(len(url)):
                super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            if self._count(len(name) + len(value) + 4):
                super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._expect("body", body_timeout)
            super().on_headers_complete()
            if draining() and self.cycle is not None:
                self.cycle.keep_alive = False

        def on_message_complete(self) -> None:
            self._owed = None
            super().on_message_complete()

        def _count(self, size: int) -> bool:
            self._header_bytes += size
            if self._header_bytes <= max_header_bytes:
                return True
            self._refuse(
                b"431 Request Header Fields Too Large", "request_header_fields_too_large", "headers too large"
            )
            return False

        def _expect(self, what: str, timeout: float) -> None:
            self._owed = what
            self._deadline = self.loop.time() + timeout
            if self._timer is None or self._timer.when() > self._deadline:
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = self.loop.call_at(self._deadline, self._check)

        def _check(self) -> None:
            self._timer = None
            if self._owed is None or self.transport.is_closing():
                return
            if self.loop.time() < self._deadline:
                self._timer = self.loop.call_at(self._deadline, self._check)
                return
            if self.cycle is not None and self.cycle.response_started:
                self.transport.close()  # answered already (a 404, a 413) and the body never came
                return
            self._refuse(b"408 Request Timeout", "request_timeout", f"{self._owed} not received in time")

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
