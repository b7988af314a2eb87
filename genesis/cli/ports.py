"""The listening sockets of a process, bound before anything starts or says it runs: a port already in use is one line
naming its setting (and exit 2), not a traceback seconds after a banner that sent users to whatever else owns it."""

from __future__ import annotations

import errno
import socket

from genesis.settings import SettingsError

BACKLOG = 128  # aiohttp's own


def listen(host: str, port: int, setting: str) -> list[socket.socket]:
    """Sockets listening on every address of `host` (as aiohttp's TCPSite would bind), for web.SockSite."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise SettingsError(f"API_HOST: cannot listen on {host!r}: {exc.strerror}") from None
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):  # getaddrinfo may repeat an address
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does: TIME_WAIT is no owner
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
            if port == 0:
                break  # an ephemeral port: one address, or each would get a different one
    except OSError as exc:
        for sock in bound:
            sock.close()
        why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be listened on ({exc.strerror})"
        raise SettingsError(f"{setting}: {host}:{port} {why}") from None
    return bound


def close(sockets: list[socket.socket]) -> None:
    """Closes what no server took over (a service that stopped before it served); closing twice is harmless."""
    for sock in sockets:
        sock.close()
