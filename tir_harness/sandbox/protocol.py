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

from tir_harness.sandbox.execution import RUN, Error, Execution, Text
from tir_harness.util.text import sanitize

HEADER = struct.Struct("!I")
REQUEST = struct.Struct("!16sIBI")  # nonce, call number, kind, number of texts (then the texts)
REPLY = struct.Struct("!4s16sIBBBIQQQ")
MAGIC = b"TIR3"
STATUSES = ("ok", "error", "memory", "output_limit")
KINDS = ("run", "replay")  # one cell in the live session; every cell of a conversation in a fresh IPython shell
WHEN = ("", "compile", "run", "setup")  # execution.Error.when of the reply's error ("": none)
_LEN = struct.Struct("!I")
_PIECES = 3  # out, display, traceback: each as head and tail
_TEXTS = 2 * _PIECES + 3  # the pieces' heads and tails, then the error's last line, type and message


def new_nonce() -> bytes:
    return os.urandom(16)


def encode_request(nonce: bytes, n: int, kind: str, texts: list[str]) -> bytes:
    parts = [REQUEST.pack(nonce, n, KINDS.index(kind), len(texts))]
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        parts += [_LEN.pack(len(data)), data]
    body = b"".join(parts)
    return HEADER.pack(len(body)) + body


def max_reply_bytes(limit: int) -> int:
    """Largest reply a worker may send for `limit` characters per text (4 bytes per character at most)."""
    return REPLY.size + _TEXTS * (_LEN.size + 4 * limit)


def decode_reply(body: bytes, nonce: bytes, n: int, limit: int) -> dict | None:
    """The reply as the harness uses it, or None if it is not a well-formed answer to this very call."""
    if len(body) < REPLY.size:
        return None
    magic, their_nonce, their_n, status, completed, when, cells, *totals = REPLY.unpack_from(body)
    if (
        magic != MAGIC
        or their_nonce != nonce
        or their_n != n
        or status >= len(STATUSES)
        or completed > 1
        or when >= len(WHEN)
    ):
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
        "when": WHEN[when],
        "cells": cells,
        "out": pieces[0],
        "display": pieces[1],
        "error": pieces[2],
        "error_line": texts[6],
        "error_type": texts[7],
        "error_message": texts[8],
    }


def _sanitized(piece: list) -> Text:
    """A [head, tail, total] piece as a `Text`, sanitised, `total` changed by as much as its texts were (the
    cut middle, never seen, is counted as it was)."""
    head, tail, total = piece
    clean_head, clean_tail = sanitize(head), sanitize(tail)
    return Text(clean_head, clean_tail, total + len(clean_head) - len(head) + len(clean_tail) - len(tail))


def execution_of(reply: dict, limit: int, abort: int) -> Execution:
    """The `Execution` a decoded reply describes, its texts sanitised before any style cuts them (so the cap
    holds for what the model sees); `abort` is the output at which the worker stops the code."""
    status, when = reply["status"], reply.get("when", "")
    traceback = _sanitized(reply["error"])
    error = None
    if when or status in ("error", "memory"):
        error = Error(
            sanitize(reply.get("error_type", "")),
            sanitize(reply.get("error_message", "")),
            when or RUN,
            traceback,
            sanitize(reply["error_line"])[-limit:],
        )
    stopped = status == "output_limit" and not reply["completed"]
    return Execution(
        status,
        _sanitized(reply["out"]),
        _sanitized(reply["display"]),
        error,
        reply["completed"],
        output_abort=abort if stopped else 0,
        cells=reply.get("cells", 1),
    )


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
