"""The server's HTTP protocol: a response's head and body leave in one socket write, in order, and
nothing written is held past the event loop step that wrote it, lost on close, or sent after an abort."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from websockets.sync.client import connect

from api.protocol import HELD_BYTES, CoalescedWrites, HttpProtocol


class Transport:
    """What a socket transport was asked to do, in order."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = self.aborted = False
        self.read_paused = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def writelines(self, lines: list[bytes]) -> None:
        self.write(b"".join(lines))

    def write_eof(self) -> None:
        self.writes.append(b"<eof>")

    def get_write_buffer_size(self) -> int:
        return 7

    def pause_reading(self) -> None:
        self.read_paused = True


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def step(loop: asyncio.AbstractEventLoop) -> None:
    """Run the loop's callbacks scheduled so far (one step)."""
    loop.run_until_complete(asyncio.sleep(0))


def test_head_and_body_of_one_step_are_one_write(loop: asyncio.AbstractEventLoop) -> None:
    sent = Transport()
    writes = CoalescedWrites(sent, loop)  # type: ignore[arg-type]
    writes.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    writes.write(b"{}")
    assert sent.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    step(loop)
    assert sent.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]


def test_a_lone_small_write_leaves_at_the_end_of_its_step(loop: asyncio.AbstractEventLoop) -> None:
    sent = Transport()
    writes = CoalescedWrites(sent, loop)  # type: ignore[arg-type]
    writes.write(b"head")
    assert sent.writes == [] and writes.get_write_buffer_size() == 7 + 4
    step(loop)
    assert sent.writes == [b"head"] and writes.get_write_buffer_size() == 7


def test_large_writes_go_at_once_and_in_order(loop: asyncio.AbstractEventLoop) -> None:
    sent = Transport()
    writes = CoalescedWrites(sent, loop)  # type: ignore[arg-type]
    big = b"x" * HELD_BYTES
    writes.write(big)
    assert sent.writes == [big]
    writes.write(b"a")
    writes.write(big)
    writes.write(b"b")
    writes.writelines([b"c", b"d"])
    step(loop)
    assert b"".join(sent.writes) == big + b"a" + big + b"bcd"
    assert sent.writes[1] == b"a" + big


def test_close_and_eof_send_what_is_held_first_abort_drops_it(loop: asyncio.AbstractEventLoop) -> None:
    sent = Transport()
    writes = CoalescedWrites(sent, loop)  # type: ignore[arg-type]
    writes.write(b"last")
    writes.write_eof()
    writes.write(b"bye")
    writes.close()
    assert sent.writes == [b"last", b"<eof>", b"bye"] and sent.closed
    step(loop)
    assert sent.writes == [b"last", b"<eof>", b"bye"]

    dropped = Transport()
    writes = CoalescedWrites(dropped, loop)  # type: ignore[arg-type]
    writes.write(b"never")
    writes.abort()
    step(loop)
    assert dropped.writes == [] and dropped.aborted


def test_the_rest_is_the_transports_own(loop: asyncio.AbstractEventLoop) -> None:
    sent = Transport()
    writes = CoalescedWrites(sent, loop)  # type: ignore[arg-type]
    writes.pause_reading()
    assert sent.read_paused and writes.is_closing() is False


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A plain answer on `/`, a streamed one of many chunks on `/stream`; a WebSocket echoes twice."""
    if scope["type"] == "websocket":
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        for _ in range(2):
            said = await receive()
            await send({"type": "websocket.send", "text": "heard " + said["text"]})
        await send({"type": "websocket.close", "code": 1000})
        return
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(500):
            await send({"type": "http.response.body", "body": b"%04d" % i * 50, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    body = b'{"answer": 42}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serving() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, port=port, http=HttpProtocol, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(1000):
            if server.started:
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start within 10 s"
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def received(sock: socket.socket, until: bytes) -> bytes:
    data = b""
    while not data.endswith(until):
        chunk = sock.recv(1 << 16)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


def test_uvicorn_answers_through_it_whole_and_in_order() -> None:
    with serving() as port, socket.create_connection(("127.0.0.1", port)) as sock:
        for _ in range(3):  # kept alive: each answer complete, none running into the next
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            # The head and the body were one write: the first read holds the whole answer.
            answer = sock.recv(1 << 16)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b'\r\n\r\n{"answer": 42}')
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        streamed = received(sock, b"0\r\n\r\n")
        head, chunked = streamed.split(b"\r\n\r\n", 1)
        assert b"transfer-encoding: chunked" in head
        body, rest = b"", chunked
        while True:
            size, rest = rest.split(b"\r\n", 1)
            if int(size, 16) == 0:
                break
            body, rest = body + rest[: int(size, 16)], rest[int(size, 16) + 2:]
        assert body == b"".join(b"%04d" % i * 50 for i in range(500))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        closing = received(sock, b'{"answer": 42}')
        assert b"connection: close" in closing.lower()
        assert sock.recv(1) == b""  # the server closed after sending it all


def test_a_websocket_gets_the_connections_own_transport() -> None:
    with serving() as port, connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10) as ws:
        ws.send("one")
        assert ws.recv(timeout=10) == "heard one"
        ws.send("two")
        assert ws.recv(timeout=10) == "heard two"
