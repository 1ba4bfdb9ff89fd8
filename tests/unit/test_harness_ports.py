"""A reserved port is held from the moment it is picked until a server of ours binds it."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.harness.ports import ReservedPort, reserved_ports


def test_no_other_socket_can_bind_a_reserved_port() -> None:
    with ReservedPort() as reserved, socket.socket() as other:
        with pytest.raises(OSError):
            other.bind(("127.0.0.1", reserved.port))


def test_the_kernel_hands_a_reserved_port_to_no_port_zero_bind() -> None:
    with ReservedPort() as reserved:
        picked = set()
        for _ in range(2000):
            with socket.socket() as other:
                other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                other.bind(("127.0.0.1", 0))
                picked.add(other.getsockname()[1])
        assert reserved.port not in picked


async def test_a_server_binds_a_reserved_port_and_nothing_answers_before() -> None:
    async def hello(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hi")
        await writer.drain()
        writer.close()

    with ReservedPort() as reserved:
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", reserved.port)
        server = await asyncio.start_server(hello, "127.0.0.1", reserved.port)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", reserved.port)
            assert await reader.read() == b"hi"
            writer.close()


def test_ports_reserved_together_are_distinct_and_free_again_afterwards() -> None:
    with reserved_ports(3) as ports:
        assert len(set(ports)) == 3
    with socket.socket() as other:
        other.bind(("127.0.0.1", ports[0]))
