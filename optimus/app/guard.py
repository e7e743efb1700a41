"""Refuse sessions whose `Host` header is not this machine's: a DNS-rebinding defence.

A page on a domain the attacker controls (`evil.example`) can re-point that name at 127.0.0.1
and then open this app's websocket from a browser on the same machine: the browser sends
`Host: evil.example:PORT` (and the same Origin), which Streamlit accepted (measured: 101
Switching Protocols), so such a page could drive the app and start training runs. A name
re-pointed by DNS cannot change the Host header, so `app.py` calls `check_host()` at the top of
every script run, before any page: a session whose websocket request names another host gets
one error and nothing else. Sessions with no Host header (Streamlit's AppTest, no browser) pass.

Allowed: 127.0.0.1, localhost, ::1, the configured `server.address` and, when that binds every
interface (0.0.0.0, ::), this machine's host names and any IP literal (a rebinding attack needs
a domain name), plus the names in $OPTIMUS_ALLOWED_HOSTS (comma-separated) for deployments
behind a proxy or a DNS name.
"""

from __future__ import annotations

import ipaddress
import os
import socket

import streamlit as st

ALLOWED_HOSTS_ENV = "OPTIMUS_ALLOWED_HOSTS"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::")


def host_name(header: str) -> str:
    """The host part of a Host header, lowercased, without port, brackets or a trailing dot:
    "[::1]:8501" -> "::1", "LocalHost.:80" -> "localhost"."""
    h = header.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[1:end] if end > 0 else h
    if h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def allowed_hosts(server_address: str | None = None, extra: str | None = None) -> set[str]:
    """The host names this server answers to (see the module docstring)."""
    hosts = set(LOCAL_HOSTS)
    address = (server_address or "").strip()
    if address:
        hosts.add(host_name(address))
    if address in WILDCARD_ADDRESSES:
        with_names = {socket.gethostname(), socket.getfqdn()}
        hosts.update(n.lower().rstrip(".") for n in with_names if n)
    hosts.update(host_name(h) for h in (extra or "").split(",") if h.strip())
    return hosts


def host_allowed(header: str | None, server_address: str | None = None, extra: str | None = None) -> bool:
    """Whether a request with this Host header may use the app; None (no header) passes."""
    if header is None:
        return True
    name = host_name(header)
    if not name:
        return False
    if (server_address or "").strip() in WILDCARD_ADDRESSES and _is_ip(name):
        return True
    return name in allowed_hosts(server_address, extra)


def check_host() -> None:
    """Show an error and stop this script run when the session's Host is not allowed."""
    header = st.context.headers.get("Host")
    if host_allowed(header, st.get_option("server.address"), os.environ.get(ALLOWED_HOSTS_ENV)):
        return
    st.error(f"This app does not answer to the host {header[:60]!r}. Open it at http://127.0.0.1 "
             f"(or add the name to ${ALLOWED_HOSTS_ENV}).", icon=":material/block:")
    st.stop()
