"""The SIP2 server's open sessions, as /metrics reports them (library_sip2_sessions)."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

pytestmark = pytest.mark.asyncio(loop_scope="module")


def sessions() -> float:
    return REGISTRY.get_sample_value("library_sip2_sessions") or 0.0


async def settled(expected: float) -> float:
    """The server counts a machine that left once it has seen the end of its stream."""
    for _ in range(200):
        if sessions() == expected:
            break
        await asyncio.sleep(0.01)
    return sessions()


async def test_connected_machines_are_counted_and_leave_the_count(world):
    """Three machines connect, two hang up, one is refused over the limit: the gauge follows the
    server's own count, and a refused connection is never counted."""
    start = sessions()
    machines = [await asyncio.open_connection("127.0.0.1", world.port) for _ in range(3)]
    assert await settled(start + 3) == start + 3 == world.server.connections + start
    for _, writer in machines[:2]:
        writer.close()
    assert await settled(start + 1) == start + 1
    machines[2][1].close()
    assert await settled(start) == start


async def test_a_refused_connection_is_not_counted(world):
    limit, world.server.max_connections = world.server.max_connections, world.server.connections
    try:
        start = sessions()
        reader, writer = await asyncio.open_connection("127.0.0.1", world.port)
        assert await reader.read() == b""  # closed at once: over the limit
        assert sessions() == start
        writer.close()
    finally:
        world.server.max_connections = limit
