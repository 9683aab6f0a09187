"""The wire between the harness and a worker: what is sent, and how a reply is read without trusting it.

A reply is written by a process that runs the model's code, so it is read as hostile input: a flat binary
frame (no recursive parser: nothing a snippet sends can raise RecursionError here), every length bounded
before anything is allocated, and a per-call nonce and call number that a reply must echo.  A reply that
breaks any rule is "garbage" and gets the worker killed.  The layout is defined in `worker.py` (REQUEST,
REPLY); it is repeated here because the harness never imports the worker script.
"""

from __future__ import annotations

import os
import socket
import struct
import time

HEADER = struct.Struct("!I")
REQUEST = struct.Struct("!16sI")
REPLY = struct.Struct("!4s16sIBBQQQ")
MAGIC = b"TIR2"
STATUSES = ("ok", "error", "memory", "output_limit")
_LEN = struct.Struct("!I")
_TEXTS = 7  # out head/tail, display head/tail, error head/tail, error line


def new_nonce() -> bytes:
    return os.urandom(16)


def encode_request(nonce: bytes, n: int, code: str) -> bytes:
    body = REQUEST.pack(nonce, n) + code.encode("utf-8", "surrogatepass")
    return HEADER.pack(len(body)) + body


def max_reply_bytes(limit: int) -> int:
    """Largest reply a worker may send for `limit` characters per text (4 bytes per character at most)."""
    return REPLY.size + _TEXTS * (_LEN.size + 4 * limit)


def decode_reply(body: bytes, nonce: bytes, n: int, limit: int) -> dict | None:
    """The reply as the harness uses it, or None if it is not a well-formed answer to this very call."""
    if len(body) < REPLY.size:
        return None
    magic, their_nonce, their_n, status, completed, *totals = REPLY.unpack_from(body)
    if magic != MAGIC or their_nonce != nonce or their_n != n or status >= len(STATUSES) or completed > 1:
        return None
    texts = []
    at = REPLY.size
    for _ in range(_TEXTS):
        if at + _LEN.size > len(body):
            return None
        (size,) = _LEN.unpack_from(body, at)
        at += _LEN.size
        if size > 4 * limit or at + size > len(body):
            return None
        try:
            text = body[at : at + size].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return None
        if len(text) > limit:
            return None
        texts.append(text)
        at += size
    if at != len(body):
        return None
    pieces = []
    for i, total in enumerate(totals):
        head, tail = texts[2 * i], texts[2 * i + 1]
        if total < len(head) + len(tail):
            return None
        pieces.append([head, tail, total])
    return {
        "n": n,
        "status": STATUSES[status],
        "completed": bool(completed),
        "out": pieces[0],
        "display": pieces[1],
        "error": pieces[2],
        "error_line": texts[6],
    }


def drain(sock: socket.socket) -> bool:
    """Discard whatever a worker sent between calls (a reply written ahead by the snippet, from a thread
    or a forked child); False if the worker closed its end."""
    try:
        sock.settimeout(0.0)  # with a timeout set, recv would first wait that long for data
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                return False
    except (BlockingIOError, InterruptedError):
        return True
    except OSError:
        return False


def recv_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    """n bytes before the deadline (TimeoutError), or ConnectionResetError if the worker hangs up."""
    buf = bytearray()
    while len(buf) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise ConnectionResetError("worker closed its socket")
        buf += chunk
    return bytes(buf)
