"""uvicorn's HTTP protocol with a bound on reading a request's headers.

uvicorn (httptools and h11 alike) waits for ever for the headers of a request: its keep-alive timer runs only
between requests, and not at all before the first. A client sending a header a byte at a time (slowloris) holds
a connection, and thousands hold the process. nginx bounds that at the front door (client_header_timeout); this
bounds it for anyone who reaches a service directly inside the network.
"""
from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class BoundedHeadersProtocol(HttpToolsProtocol):
    """Closes a connection whose request headers are not complete within `header_timeout` seconds of their first
    byte (or of the connection, for the first request), or grow past `max_header_bytes`."""

    header_timeout: float = 10.0
    max_header_bytes: int = 32 * 1024

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._headers_too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # nothing sent yet: uvicorn's keep-alive timer does not run before a first request

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # The parser's callbacks: a request's first byte, its target and headers, the end of its headers.
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            # Raised in a parser callback, it stops the parser: uvicorn answers what send_400_response sends.
            self._headers_too_large = True
            raise ValueError("request headers too large")

    def send_400_response(self, msg: str) -> None:
        if self._headers_too_large:
            self._refuse(b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        super().send_400_response(msg)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _timed_out(self) -> None:
        self._header_timer = None
        self._refuse(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def _refuse(self, answer: bytes) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()


def bounded_protocol(header_timeout: float, max_header_bytes: int) -> type[BoundedHeadersProtocol]:
    """The protocol class with these bounds (uvicorn takes a class, built per connection)."""
    return type("BoundedHeaders", (BoundedHeadersProtocol,),
                {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes})
