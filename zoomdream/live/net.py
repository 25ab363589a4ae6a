"""Where `zoomdream live` listens, checked and bound before anything heavy loads: a port in use
or a host that cannot be bound is one line in a blink. Imports no torch."""

from __future__ import annotations

import errno
import ipaddress
import secrets
import socket

from ..base.errors import UserError


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is this machine's loopback."""
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
    except (OSError, ValueError):
        return False


def listen(host: str, port: int) -> socket.socket:
    """The page's TCP socket, bound now: a port in use is one line before anything loads."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Inherited by each connection: a frame is a JSON line then its JPEG, and Nagle's wait for
    # the first write's ACK delayed every second write by the client's 40 ms delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is in use", "choose another with --port N (0: any free port)") from None
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror or e})",
                        "check --host (127.0.0.1 for this machine only) and --port") from None
    sock.listen(64)
    return sock


def new_token(host: str) -> str | None:
    """A fresh token for any address but loopback."""
    return None if is_loopback(host) else secrets.token_urlsafe(18)
