"""The workers' shared listening socket: connections accepted on it go out without Nagle's delay
(asyncio turns it off only on sockets that say they are TCP; without it a response written in two
parts waited for the client's delayed ACK, 40 ms a request)."""

from __future__ import annotations

import asyncio
import socket

from onnx_xai.serve.workers import reuse_port_socket


def test_connections_on_the_shared_socket_have_nagle_off():
    async def scenario() -> int:
        listening = reuse_port_socket("127.0.0.1", 0)
        accepted: asyncio.Future = asyncio.get_running_loop().create_future()

        class Protocol(asyncio.Protocol):
            def connection_made(self, transport):
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        server = await asyncio.get_running_loop().create_server(Protocol, sock=listening)
        _, writer = await asyncio.open_connection(*listening.getsockname()[:2])
        try:
            return await asyncio.wait_for(accepted, 10)
        finally:
            writer.close()
            server.close()

    assert asyncio.run(scenario()) != 0
