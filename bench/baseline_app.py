"""The floor a receiver is measured against: FastAPI on uvicorn doing nothing but reading the body.

The uvicorn.Config options, the way uvicorn is started (``Server.serve`` inside ``asyncio.run``, so
on the default asyncio loop) and the route shape all copy ``hookbay_receiver.app``, so the ratio
receiver/baseline isolates what Hookbay itself adds: source lookup, the packet row, the group
commit, logging, the background workers sharing the loop, and how it binds its socket.

That last one is deliberate. By default uvicorn binds the port itself, as stock uvicorn does. With
``--receiver-socket`` the socket is made exactly as ``hookbay_receiver.app.bind_http`` makes it:
``socket.socket(family, SOCK_STREAM)`` has ``proto == 0``, and CPython 3.11's asyncio only sets
TCP_NODELAY on accepted sockets whose ``proto`` is IPPROTO_TCP, so every keep-alive response then
waits out the client's ~40 ms delayed ACK. That flag exists to measure that effect, not for the ratio.

Run: ``python bench/baseline_app.py --port 8089 [--receiver-socket]``; it serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import socket

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

ACCEPTED = b'{"id":"00000000-0000-7000-8000-000000000000","status":"accepted"}'


def create_app() -> FastAPI:
    app = FastAPI(title="bench baseline", docs_url=None, redoc_url=None, openapi_url=None)

    # Same path template as the receiver, so routing costs the same (one path parameter).
    @app.post("/V1/Data/{guid}", include_in_schema=False)
    async def receive(guid: str, request: Request) -> Response:
        await request.body()
        return Response(content=ACCEPTED, media_type="application/json")

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        return JSONResponse({"status": "ready"})

    return app


def bind_like_receiver(host: str, port: int) -> socket.socket:
    """A copy of hookbay_receiver.app.bind_http, proto 0 and all."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


async def serve(host: str, port: int, *, receiver_socket: bool = False) -> None:
    sockets = [bind_like_receiver(host, port)] if receiver_socket else None
    server = uvicorn.Server(
        # Keep in step with hookbay_receiver.app.run: any difference here skews the ratio.
        uvicorn.Config(
            create_app(),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            proxy_headers=True,
            server_header=False,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=20,
            backlog=2048,
        )
    )
    await server.serve(sockets=sockets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--receiver-socket", action="store_true", help="bind as hookbay_receiver does (no TCP_NODELAY)"
    )
    args = parser.parse_args()
    # uvicorn's own signal handling stops it on SIGTERM/SIGINT; a clean return is enough here.
    asyncio.run(serve(args.host, args.port, receiver_socket=args.receiver_socket))


if __name__ == "__main__":
    main()
