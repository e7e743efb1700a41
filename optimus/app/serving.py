"""What the room's server answers before Streamlit does: `app.py` declares an `st.App` with this
module's middleware and lifespan, so `streamlit run app.py` serves through them.

* Streamlit's own browser files (its JavaScript chunks, fonts, index.html) from memory. Stock
  Streamlit answers each with Starlette's `StaticFiles` (a stat and reads in worker threads),
  and a page opened in a new browser fetches 120-150 of them (a bare page 62-66): more server
  CPU than the page's own script (issue 18). From memory, each file is one dictionary lookup
  and two ASGI messages: 0.85 ms of server CPU a file against 2.46 ms (130 chunks in turn, 5
  interleaved rounds; `bench app` reports it as "server CPU per static file"). A file is read from disk the
  first time a browser asks for it, with the same headers Streamlit sends (`Cache-Control`
  immutable for the hashed chunks, no-cache for HTML and the manifest), and answered 304 to a
  browser that already holds it (`If-None-Match`).
* index.html for the app's root and each page's path (`/sample`, ...), with the server's base
  URL written in (`window.__streamlit.BACKEND_BASE_URL`): without it, a page opened from its
  link makes Streamlit's client probe `/<page>/_stcore/health` and `/<page>/_stcore/host-config`
  first, which the server answers 404 on purpose (two console errors on every deep link, issue
  22; upstream streamlit#7074).
* At start-up (the lifespan), a thread imports what the landing page runs, while the first
  browser is still fetching files: the Overview's figures reach a new server's first visitor
  sooner (issue 18, cold start).

Everything else (the websocket, health, media, uploads) passes to Streamlit unchanged. Nothing
here imports TensorFlow.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib
import mimetypes
import os
import threading
from collections.abc import Iterable

from streamlit import config, file_util

from optimus.app import pages
from optimus.app.pages import URL_PATHS

IMMUTABLE = "public, immutable, max-age=31536000"  # Streamlit's STATIC_ASSET_CACHE_MAX_AGE_SECONDS
NO_CACHE = "no-cache"


def base_url_path() -> str:
    """Streamlit's `server.baseUrlPath`, as "" or "/prefix"."""
    path = (config.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{path}" if path else ""


def with_base_url(index_html: bytes, base_path: str) -> bytes:
    """index.html with the backend's base URL set before Streamlit's bundle reads it (the bundle
    freezes `window.__streamlit` when it loads; an inline script in <head> runs first)."""
    script = ("<script>window.__streamlit = Object.assign(window.__streamlit || {}, "
              f'{{BACKEND_BASE_URL: window.location.origin + "{base_path}/"}});</script>')
    head = index_html.find(b"<head>")
    if head < 0:
        raise ValueError("Streamlit's index.html has no <head>")
    at = head + len(b"<head>")
    return index_html[:at] + script.encode() + index_html[at:]


class _File:
    __slots__ = ("body", "etag", "headers", "not_modified_headers")

    def __init__(self, body: bytes, content_type: str, cache_control: str):
        self.body = body
        self.etag = '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'
        self.not_modified_headers = [(b"etag", self.etag.encode()), (b"cache-control", cache_control.encode())]
        self.headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                        *self.not_modified_headers]


def _content_type(name: str) -> str:
    """As Starlette's FileResponse names it: the file's MIME type, text/* with its charset."""
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return kind + "; charset=utf-8" if kind.startswith("text/") else kind


class StaticFromMemory:
    """ASGI middleware: Streamlit's static files from memory, index.html with the base URL for
    the root and the page paths (see the module docstring). `static_dir`: Streamlit's."""

    def __init__(self, app, static_dir: str | None = None, page_paths: Iterable[str] = URL_PATHS):
        self.app = app
        self.static_dir = static_dir or file_util.get_static_dir()
        self.base = base_url_path()
        self._files: dict[str, _File] = {}  # at most Streamlit's static folder (26 MB in 1.67)
        names = set()
        for root, _dirs, files in os.walk(self.static_dir):
            rel = os.path.relpath(root, self.static_dir).replace(os.sep, "/")
            for name in files:
                names.add(name if rel == "." else f"{rel}/{name}")
        self._names = frozenset(n for n in names if n != "index.html")
        self._index_paths = frozenset([self.base or "/", f"{self.base}/"]
                                      + [f"{self.base}/{p}" for p in page_paths if p])

    def _index(self) -> _File:
        entry = self._files.get("index.html")
        if entry is None:
            with open(os.path.join(self.static_dir, "index.html"), "rb") as fh:
                body = with_base_url(fh.read(), self.base)
            entry = self._files.setdefault("index.html", _File(body, "text/html; charset=utf-8", NO_CACHE))
        return entry

    def lookup(self, path: str) -> _File | None:
        """The answer for a GET of `path`, or None to let Streamlit answer."""
        if path in self._index_paths:
            return self._index()
        if not path.startswith(self.base + "/"):
            return None
        name = path[len(self.base) + 1:]
        entry = self._files.get(name)
        if entry is None and name in self._names:
            with open(os.path.join(self.static_dir, name), "rb") as fh:
                body = fh.read()
            cache = NO_CACHE if name.endswith(".html") or name == "manifest.json" else IMMUTABLE
            entry = self._files.setdefault(name, _File(body, _content_type(name), cache))
        return entry

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            entry = self.lookup(scope["path"])
            if entry is not None:
                await self._answer(entry, scope, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _answer(entry: _File, scope, send) -> None:
        etag = entry.etag.encode()
        for name, value in scope["headers"]:
            if name == b"if-none-match" and etag in value:
                await send({"type": "http.response.start", "status": 304, "headers": entry.not_modified_headers})
                await send({"type": "http.response.body", "body": b""})
                return
        await send({"type": "http.response.start", "status": 200, "headers": entry.headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else entry.body})


def page_imports(page: pages.PageSpec = pages.DEFAULT) -> list[str]:
    """The modules a page's script imports at its top level (read from its source: a page is a
    script and runs when imported)."""
    tree = ast.parse(pages.path(page).read_text())
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def _warm_imports() -> None:
    for name in page_imports():  # `from x import name`: name may be a module or not (ImportError)
        with contextlib.suppress(Exception):  # a failure shows on the page's own run, with its trace
            importlib.import_module(name)


@contextlib.asynccontextmanager
async def lifespan(_app):
    """At start-up: the landing page's imports in a thread (see the module docstring)."""
    threading.Thread(target=_warm_imports, name="optimus-warm-imports", daemon=True).start()
    yield
