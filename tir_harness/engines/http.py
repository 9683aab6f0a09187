"""A small HTTP/1.1 client on asyncio streams: one event loop holds thousands of requests to one server.

Why not httpx's `AsyncClient` (httpx is a dependency): its connection pool does work in proportion to the
connections it holds on every request and every answer (encode/httpx#3215), so thousands in flight to one URL
cost more CPU than the requests themselves; its timeouts bound each read, not the answer; and it reads a body
whole, however large.  The subset of HTTP/1.1 an OpenAI-compatible server speaks is small:

- a keep-alive pool per server, newest connection first; a connection the server closed while it sat idle
  (uvicorn closes them after 5 s), or that has bytes waiting no request asked for, is dropped before reuse;
- one deadline for the whole exchange (`Deadline`), from connecting to the answer's last byte: a server that
  drips its answer a byte at a time is cut off like one that says nothing;
- every byte is the server's: the status line and the headers are bounded (`MAX_HEAD_BYTES`), the body is cut
  at `max_body` bytes (`TooLarge`) before it is read whole, whatever Content-Length says;
- Content-Length, chunked or read-until-close bodies; no compression (asked for `identity`), no redirects,
  no proxies (servers are talked to directly, as named).

A cancelled request closes its connection: the server (vLLM) stops generating for a request whose
connection is gone.
"""

from __future__ import annotations

import asyncio
import errno
import re
import select
import socket
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tir_harness.util.text import one_line

MAX_HEAD_BYTES = 65536  # the status line and all headers together; also the longest line read
MAX_HEADERS = 100
_READ_CHUNK = 65536
_REFUSED = re.compile(r"\[Errno (\d+)\]")


class HTTPError(Exception):
    """A transport failure: the exchange did not complete.  `str()` is the cause as a user would say it."""


class Deadline(HTTPError):
    """No whole answer within the request's time."""


class TooLarge(Exception):
    """The answer is larger than the client reads; the connection was dropped without reading it."""


def cause_of(exc: BaseException) -> str:
    """A short cause for a socket error, as a user would say it."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, BrokenPipeError):
        return "connection closed by the server"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror or exc})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        # A private CA or a self-signed certificate: Python's default context also trusts SSL_CERT_FILE's.
        return f"TLS certificate not trusted ({exc.verify_message}; SSL_CERT_FILE may name the CA to trust)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or exc})"
    if isinstance(exc, OSError) and exc.errno is None and str(exc).startswith("Multiple exceptions"):
        # asyncio tried every address of a name (localhost: ::1, then 127.0.0.1) and joined their errors.
        codes = {int(code) for code in _REFUSED.findall(str(exc))}
        if codes == {errno.ECONNREFUSED}:
            return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return one_line(f"{type(exc).__name__}: {exc}")


@dataclass(eq=False)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = field(default_factory=time.monotonic)

    def reusable(self, expiry: float) -> bool:
        """Still open, idle for less than `expiry` seconds, and nothing sent to it that no one asked for."""
        if time.monotonic() - self.idle_since >= expiry or self.writer.is_closing() or self.reader.at_eof():
            return False
        sock = self.writer.get_extra_info("socket")
        if sock is None:
            return True
        try:
            # Readable while idle: the server closed it (EOF not yet seen by the loop) or sent stray bytes.
            readable, _, _ = select.select([sock.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        self.writer.transport.abort()  # no lingering: a connection we give up is gone at once


class Client:
    """Requests to one server (`url`: scheme, host, port and an optional base path), from one event loop."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        *,
        connect_timeout: float,
        max_body: int,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_expiry: float = 4.0,
    ) -> None:
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._base = parts.path.rstrip("/")
        default_port = (self._https and self._port == 443) or (not self._https and self._port == 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if default_port else f"{host}:{self._port}"
        lines = [f"Host: {self._host_header}", "Accept-Encoding: identity", "User-Agent: tir-harness"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._headers = "".join(line + "\r\n" for line in lines)
        self._ssl = (ssl_context or ssl.create_default_context()) if self._https else None
        self.connect_timeout = connect_timeout
        self.max_body = max_body
        self.keepalive_expiry = keepalive_expiry
        self._idle: deque[_Connection] = deque()  # newest last
        self._busy: set[_Connection] = set()
        self.connections_made = 0

    async def request(
        self, method: str, path: str, body: bytes | None = None, *, timeout: float, max_body: int | None = None
    ) -> tuple[int, bytes]:
        """One exchange within `timeout` seconds: the status and the whole body.

        Raises `Deadline` when the time runs out, `TooLarge` for a body over `max_body` (default: the client's),
        `HTTPError` for every other failure of the exchange."""
        try:  # wait_for, not asyncio.timeout: Python 3.10 has only the former
            return await asyncio.wait_for(
                self._exchange(method, path, body, self.max_body if max_body is None else max_body), timeout
            )
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            raise Deadline(f"no answer within {timeout:g} s") from None

    def close(self) -> None:
        """Drop every connection, idle or in use (the requests using one fail)."""
        for conn in [*self._idle, *self._busy]:
            conn.close()
        self._idle.clear()
        self._busy.clear()

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None,
                    limit=MAX_HEAD_BYTES,
                ),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            raise HTTPError("timed out") from None
        except OSError as exc:
            raise HTTPError(cause_of(exc)) from None
        self.connections_made += 1
        return _Connection(reader, writer)

    def _take(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable(self.keepalive_expiry):
                return conn
            conn.close()
        return None

    async def _exchange(self, method: str, path: str, body: bytes | None, max_body: int) -> tuple[int, bytes]:
        conn = self._take() or await self._connect()
        self._busy.add(conn)
        keep = False
        try:
            head = f"{method} {self._base}{path} HTTP/1.1\r\n{self._headers}"
            if body is not None:
                head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            conn.writer.write(head.encode("latin-1") + b"\r\n" + (body or b""))
            await conn.writer.drain()
            status, headers = await _read_head(conn.reader)
            data, framed = await _read_body(conn.reader, headers, status, method, max_body)
            keep = framed and "close" not in headers.get("connection", "").lower()
            return status, data
        except (OSError, asyncio.IncompleteReadError) as exc:
            if isinstance(exc, asyncio.IncompleteReadError) and not exc.partial:
                raise HTTPError("the server closed the connection without answering") from None
            if isinstance(exc, asyncio.IncompleteReadError):
                raise HTTPError("the server closed the connection mid-answer") from None
            raise HTTPError(cause_of(exc)) from None
        finally:
            self._busy.discard(conn)
            if keep:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
                # The oldest idle ones first: after a burst, connections no request takes again are closed as
                # they expire, not kept open (half-closed by the server) until the client closes.
                while self._idle and conn.idle_since - self._idle[0].idle_since >= self.keepalive_expiry:
                    self._idle.popleft().close()
            else:
                conn.close()


async def _read_line(reader: asyncio.StreamReader, first: bool = False) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise HTTPError(f"not an HTTP answer (a line longer than {MAX_HEAD_BYTES} bytes)") from None
    except asyncio.IncompleteReadError as exc:
        if first and not exc.partial:
            raise
        raise HTTPError("the server closed the connection mid-answer") from None
    return line


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    while True:
        line = await _read_line(reader, first=True)
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
            raise HTTPError(f"not an HTTP answer ({one_line(line.decode('latin-1'), 60) or 'an empty line'})")
        status = int(parts[1])
        headers: dict[str, str] = {}
        size = len(line)
        while True:
            line = await _read_line(reader)
            size += len(line)
            if size > MAX_HEAD_BYTES or len(headers) > MAX_HEADERS:
                raise HTTPError(f"not an HTTP answer (headers over {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} lines)")
            if line in (b"\r\n", b"\n"):
                break
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise HTTPError(f"not an HTTP answer (a header line without a colon: {one_line(name, 60)})")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        if status != 100:  # an interim answer; the real one follows
            return status, headers


async def _read_body(
    reader: asyncio.StreamReader, headers: dict[str, str], status: int, method: str, max_body: int
) -> tuple[bytes, bool]:
    """The body and whether it was framed (the connection may be reused)."""
    if method == "HEAD" or status in (204, 304):
        return b"", True
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader, max_body), True
    length = headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise HTTPError(f"not an HTTP answer (Content-Length: {one_line(length, 40)})")
        size = int(length)
        if size > max_body:
            raise TooLarge(f"the answer is {size} bytes, over the {max_body}-byte limit")
        return await reader.readexactly(size), True
    chunks: list[bytes] = []
    size = 0
    while chunk := await reader.read(_READ_CHUNK):
        size += len(chunk)
        if size > max_body:
            raise TooLarge(f"the answer is over the {max_body}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks), False


async def _read_chunked(reader: asyncio.StreamReader, max_body: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        line = (await _read_line(reader)).split(b";", 1)[0].strip()
        try:
            length = int(line, 16)
        except ValueError:
            raise HTTPError(f"not an HTTP answer (a chunk size of {one_line(line.decode('latin-1'), 40)!r})") from None
        if length < 0:
            raise HTTPError("not an HTTP answer (a negative chunk size)")
        if length == 0:
            while (await _read_line(reader)) not in (b"\r\n", b"\n"):  # trailers
                pass
            return b"".join(chunks)
        size += length
        if size > max_body:
            raise TooLarge(f"the answer is over the {max_body}-byte limit")
        chunks.append(await reader.readexactly(length))
        await reader.readexactly(2)  # the chunk's CRLF
