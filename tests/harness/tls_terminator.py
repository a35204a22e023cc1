"""A TLS terminator in front of a plain TCP server (Debian's redis-server is built without TLS),
for tests of clients that speak TLS to it: accepts TLS on a free loopback port with the given
certificate and relays the plaintext to 127.0.0.1:backend_port. Runs in a thread of the test
process with its own event loop.

    with TlsTerminator(cert, key, redis.port) as t:
        t.port            # the TLS port
        t.handshakes      # completed handshakes
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from typing import Optional

from .util import free_port


class TlsTerminator:
    def __init__(self, cert_file: str, key_file: str, backend_port: int) -> None:
        self.port = free_port()
        self.backend_port = backend_port
        self.handshakes = 0
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ctx.load_cert_chain(cert_file, key_file)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop: Optional[asyncio.Event] = None
        self._clients: set = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _client(self, reader, writer) -> None:
        self.handshakes += 1
        self._clients.add(asyncio.current_task())
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.backend_port)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer))
        finally:
            self._clients.discard(asyncio.current_task())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._client, "127.0.0.1", self.port, ssl=self._ctx)
        self._ready.set()
        await self._stop.wait()
        server.close()
        for task in self._clients:
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        await server.wait_closed()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    def __enter__(self) -> "TlsTerminator":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("TLS terminator did not start")
        return self

    def __exit__(self, *exc) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
