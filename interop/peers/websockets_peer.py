"""A peer for the ecows interop tests, built on Python's websockets (Debian's python3-websockets,
10.4 on bookworm, legacy asyncio API). Run it with /usr/bin/python3.

    websockets_peer.py server CERT_FILE KEY_FILE
    websockets_peer.py client URL SCENARIO CA_FILE

It reports on stdout, one JSON object a line: {"ev": "listening", "port": N, "tlsPort": M} once
a server listens, then "check", "closed", "proto", "received", "error" and, for a client, "done"
events. The request path chooses a server's behaviour; README.md describes the scenarios.
"""

import asyncio
import json
import os
import ssl
import sys

import websockets
from websockets.exceptions import ConnectionClosed

# The same values as common_test.go.
TEXT = "héllo wörld ✓ 日本語 🎉 — ecows"
FRAG_TEXT = "fragmented: Grüße ✓ 日本語 🎉 end"
FRAG_BINARY_LEN = 3000
PING_FROM_ECOWS = "ecows ping ✓"
PING_FROM_PEER = "peer ping ✓"
CODE_FROM_PEER = 4002
REASON_FROM_PEER = "peer says bye ✓"
PROTO1, PROTO2 = "ecows.v1", "ecows.v2"
SMALL_LIMIT = 1024
OVERSIZE = 4096
LARGE_LIMIT = 2 << 20
BINARY_SIZES = [0, 125, 126, 65535, 65536, 1 << 20]
INVALID_UTF8 = b"ok \xff\xfe bad"
TIMEOUT = 15
OP_TEXT = 0x1
# The compress scenario (compress_test.go): message sizes, and the bomb of zeros.
COMPRESS_TEXT_SIZES = [0, 10, 600, 5000, 40000, 70000, 300000]
COMPRESS_BINARY_SIZES = [5 << 10, 70 << 10]
BOMB_SIZE = 1 << 20


def compress_messages():
    """The compress scenario's messages: texts that compress well, then random binaries."""
    msgs = []
    for n in COMPRESS_TEXT_SIZES:
        parts, size, i = [], 0, 0
        while size < n:
            part = f'{{"id":{i},"user":"user{i % 50}","text":"hello world {i % 9}"}},'
            parts.append(part)
            size += len(part)
            i += 1
        msgs.append("".join(parts)[:n])
    for n in COMPRESS_BINARY_SIZES:
        msgs.append(os.urandom(n))
    return msgs


def emit(**ev):
    print(json.dumps(ev), flush=True)


def pattern(n):
    return (bytes(range(251)) * (n // 251 + 1))[:n]


def thirds(s):
    # str parts for text (websockets sends str fragments whole, so no cut inside a character),
    # bytes parts for binary.
    n = len(s)
    return [s[: n // 3], s[n // 3 : 2 * n // 3], s[2 * n // 3 :]]


def check(name, ok, detail=""):
    emit(ev="check", name=name, ok=bool(ok), detail=detail)


def closed_event(ws, path=None):
    ev = {"ev": "closed", "code": ws.close_code, "reason": ws.close_reason or ""}
    if path is not None:
        ev["path"] = path
    return ev


# ---- server ----


class ServerProtocol(websockets.WebSocketServerProtocol):
    def connection_open(self):
        # max_size is read when a frame starts, and the first read starts here: set it now.
        if self.path.startswith("/small/"):
            self.max_size = SMALL_LIMIT
        super().connection_open()


async def report_pong(waiter, path):
    # The waiter resolves only on a pong with the ping's payload.
    try:
        await asyncio.wait_for(waiter, TIMEOUT)
        check_ok = True
    except (asyncio.TimeoutError, ConnectionClosed):
        check_ok = False
    emit(ev="check", path=path, name="pong-mid-message", ok=check_ok)


async def serve(ws, path):
    behaviour = path.split("/")[1]
    tasks = []
    try:
        if behaviour in ("echo", "small"):
            async for msg in ws:
                await ws.send(msg)
        elif behaviour == "fragments":
            # An (async) iterable is sent as fragments; a ping goes between the first two.
            async def text_with_ping():
                parts = thirds(FRAG_TEXT)
                yield parts[0]
                waiter = await ws.ping(PING_FROM_PEER)
                tasks.append(asyncio.ensure_future(report_pong(waiter, path)))
                yield parts[1]
                yield parts[2]

            await ws.send(text_with_ping())
            await ws.send(thirds(pattern(FRAG_BINARY_LEN)))
            async for msg in ws:
                await ws.send(msg)
        elif behaviour == "ping":
            async for msg in ws:
                if msg == "go":
                    waiter = await ws.ping(PING_FROM_PEER)
                    try:
                        # The waiter resolves only on a pong with the same payload.
                        await asyncio.wait_for(waiter, TIMEOUT)
                        await ws.send("pong-ok " + PING_FROM_PEER)
                    except asyncio.TimeoutError:
                        await ws.send("pong-bad")
        elif behaviour == "close-by-peer":
            await ws.close(CODE_FROM_PEER, REASON_FROM_PEER)
        elif behaviour == "subprotocol":
            await ws.send("proto:" + (ws.subprotocol or ""))
            await ws.wait_closed()
        elif behaviour == "big":
            await ws.send(pattern(OVERSIZE))
            await ws.wait_closed()
        elif behaviour == "big-fragmented":
            await ws.send(thirds(pattern(FRAG_BINARY_LEN)))
            await ws.wait_closed()
        elif behaviour == "compress":
            emit(ev="proto", path=path, detail=ws.response_headers.get("Sec-WebSocket-Extensions", ""))
            async for msg in ws:
                await ws.send(msg)
        elif behaviour == "compress-bomb":
            await ws.send(bytes(BOMB_SIZE))
            await ws.wait_closed()
        else:
            emit(ev="error", path=path, detail="unknown behaviour")
    except ConnectionClosed:
        pass
    await ws.wait_closed()
    for task in tasks:
        await task
    emit(**closed_event(ws, path))


async def server(cert_file, key_file):
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    common = dict(
        create_protocol=ServerProtocol,
        subprotocols=[PROTO2, PROTO1],
        max_size=LARGE_LIMIT,
    )
    plain = await websockets.serve(serve, "127.0.0.1", 0, **common)
    secure = await websockets.serve(serve, "127.0.0.1", 0, ssl=tls, **common)
    emit(
        ev="listening",
        port=plain.sockets[0].getsockname()[1],
        tlsPort=secure.sockets[0].getsockname()[1],
    )
    await asyncio.Future()  # until killed


# ---- client ----


async def expect(ws, name, want):
    try:
        got = await asyncio.wait_for(ws.recv(), TIMEOUT)
    except (ConnectionClosed, asyncio.TimeoutError) as exc:
        check(name, False, repr(exc))
        return
    check(name, type(got) is type(want) and got == want, f"got {type(got).__name__} of {len(got)}")


async def client(url, scenario, ca_file):
    kw = dict(
        max_size=SMALL_LIMIT if scenario == "too-big-for-peer" else LARGE_LIMIT,
        open_timeout=TIMEOUT,
        close_timeout=5,
    )
    if url.startswith("wss:"):
        kw["ssl"] = ssl.create_default_context(cafile=ca_file)
    if scenario == "subprotocol":
        kw["subprotocols"] = [PROTO1, PROTO2]
    ws = await websockets.connect(url, **kw)

    async def close_with(code, reason):
        await ws.close(code, reason)
        emit(**closed_event(ws))

    if scenario in ("echo", "wss"):
        await ws.send(TEXT)
        await expect(ws, "text", TEXT)
        for n in [65536] if scenario == "wss" else BINARY_SIZES:
            await ws.send(pattern(n))
            await expect(ws, f"binary-{n}", pattern(n))
        await close_with(1000, "done")
    elif scenario == "fragments":
        await expect(ws, "recv-fragmented-text", FRAG_TEXT)
        await expect(ws, "recv-fragmented-binary", pattern(FRAG_BINARY_LEN))
        await ws.send(thirds(FRAG_TEXT))
        await expect(ws, "echo-fragmented-text", FRAG_TEXT)
        await ws.send(thirds(pattern(FRAG_BINARY_LEN)))
        await expect(ws, "echo-fragmented-binary", pattern(FRAG_BINARY_LEN))
        await close_with(1000, "done")
    elif scenario == "ping":
        waiter = await ws.ping(PING_FROM_PEER)
        try:
            await asyncio.wait_for(waiter, TIMEOUT)
            check("ping-echo", True)
        except asyncio.TimeoutError:
            check("ping-echo", False, "no pong with the ping's payload")
        await ws.send("go")
        await expect(ws, "pong-ok", "pong-ok " + PING_FROM_ECOWS)
        await close_with(1000, "done")
    elif scenario == "close-by-peer":
        await close_with(CODE_FROM_PEER, REASON_FROM_PEER)
    elif scenario in (
        "close-by-ecows",
        "close-by-ecows-frames",
        "invalid-utf8-from-ecows",
        "too-big-for-peer",
    ):
        try:
            msg = await asyncio.wait_for(ws.recv(), TIMEOUT)
        except ConnectionClosed:
            await ws.wait_closed()
            emit(**closed_event(ws))
        else:
            data = msg.encode() if isinstance(msg, str) else msg
            emit(ev="received", detail=data.hex())
            await close_with(1000, "done")
    elif scenario == "subprotocol":
        emit(ev="proto", proto=ws.subprotocol or "")
        said = await asyncio.wait_for(ws.recv(), TIMEOUT)
        check(
            "subprotocol",
            said == "proto:" + (ws.subprotocol or "") and ws.subprotocol == PROTO2,
            f"negotiated {ws.subprotocol}, server said {said}",
        )
        await close_with(1000, "done")
    elif scenario == "invalid-utf8-from-peer":
        # send() only takes str for text; write_frame puts raw bytes in a text frame.
        await ws.write_frame(True, OP_TEXT, INVALID_UTF8)
        await ws.wait_closed()
        emit(**closed_event(ws))
    elif scenario == "too-big-for-ecows":
        await ws.send(pattern(OVERSIZE))
        await ws.wait_closed()
        emit(**closed_event(ws))
    elif scenario in ("compress", "compress-bomb"):
        ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
        emit(ev="proto", detail=ext)
        check("compress-negotiated", "permessage-deflate" in ext, ext)
        if scenario == "compress-bomb":
            await ws.send(bytes(BOMB_SIZE))
            await ws.wait_closed()
            emit(**closed_event(ws))
        else:
            ok, detail = True, ""
            for _ in range(2):
                for msg in compress_messages():
                    await ws.send(msg)
                    try:
                        got = await asyncio.wait_for(ws.recv(), TIMEOUT)
                    except (ConnectionClosed, asyncio.TimeoutError) as exc:
                        ok, detail = False, repr(exc)
                        break
                    if got != msg:
                        ok, detail = False, f"echo of {len(msg)} differs"
                        break
                if not ok:
                    break
            check("compress-echo", ok, detail)
            await close_with(1000, "done")
    else:
        emit(ev="error", detail=f"unknown scenario {scenario}")


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "server":
        asyncio.run(server(*args))
    elif mode == "client":
        try:
            asyncio.run(asyncio.wait_for(client(*args), TIMEOUT))
        except Exception as exc:  # report, then fail the process
            emit(ev="error", detail=repr(exc))
            sys.exit(1)
        emit(ev="done")
    else:
        sys.exit("usage: websockets_peer.py server CERT KEY | client URL SCENARIO CA")


if __name__ == "__main__":
    main()
