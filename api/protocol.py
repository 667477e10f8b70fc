"""uvicorn's HTTP protocol (httptools), sending a response's head and body in one socket write.

uvicorn writes an answer's status line and headers as soon as the app starts the response, and its
body in a second write. Each write is a system call, and each wakes the client, which has the head but
not yet the body and goes back to wait: two wakeups an answer where one does. On the backward trace the
head's write was a quarter of the server's time (py-spy, 2 cores shared with a writer). Here a small
write waits for the end of the event loop's step, and goes out with whatever else the step wrote; the
next write, a close or the end of the step sends it, so nothing is held past the step that wrote it
and at most one small write is ever held. `lotline serve` runs uvicorn with it (`scripts/serve.py`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HELD_BYTES = 16 * 1024
"""A write smaller than this may wait for the next write of the same step; a larger one goes at once."""


class CoalescedWrites:
    """A connection's transport whose small writes wait for the end of the loop step, sent as one.

    Everything but writing and closing is the transport's own (`__getattr__`): flow control, extra info,
    pausing reads."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held, self._held = self._held, None
        if held is None and len(data) < HELD_BYTES:
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        elif held is None:
            self.transport.write(data)
        elif len(data) < HELD_BYTES:
            self.transport.write(held + bytes(data))
        else:  # a large body is not copied to be put behind its head
            self.transport.writelines([held, data])

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Send the write held, if any."""
        held, self._held = self._held, None
        if held and not self.transport.is_closing():
            self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def abort(self) -> None:
        self._held = None
        self.transport.abort()

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() + len(self._held or b"")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a `CoalescedWrites` transport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescedWrites(transport, self.loop))  # type: ignore[arg-type]

    def handle_websocket_upgrade(self) -> None:
        """A WebSocket (EPCIS subscriptions) gets the connection's own transport: its frames are not
        answers to put together, and its protocol is the websockets library's."""
        writes = self.transport
        if isinstance(writes, CoalescedWrites):
            writes.flush()
            self.transport = writes.transport
        super().handle_websocket_upgrade()
