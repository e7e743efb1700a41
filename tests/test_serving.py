"""optimus/app/serving.py: Streamlit's browser files from memory, answered as Streamlit's own
handler answers them, and index.html with the app's base URL at the root and every page's path."""

from __future__ import annotations

import asyncio
import os

import pytest
from streamlit import config, file_util
from streamlit.web.server.starlette.starlette_static_routes import create_streamlit_static_handler

from optimus.app import pages, serving

STATIC = file_util.get_static_dir()


def _call(make, path: str, method: str = "GET", headers=()) -> tuple[int, dict, bytes, bool]:
    """(status, headers, body, passed through) of one HTTP request to the ASGI app that
    `make(downstream)` returns (`downstream` stands for Streamlit behind a middleware)."""
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers], "root_path": "", "scheme": "http",
             "server": ("127.0.0.1", 8501), "client": ("127.0.0.1", 5000), "http_version": "1.1"}
    sent, passed, received = [], [], []

    async def receive():  # the request, then nothing (Starlette's FileResponse listens for a disconnect)
        if received:
            await asyncio.Event().wait()
        received.append(True)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    async def downstream(scope, receive, send):
        passed.append(scope["path"])
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"streamlit"})

    asyncio.run(make(downstream)(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body, bool(passed)


def _served(path: str, **kw):
    return _call(serving.StaticFromMemory, path, **kw)


def _stock(path: str):
    handler = create_streamlit_static_handler(STATIC, None)
    return _call(lambda _downstream: handler, path)


def _chunks(suffix: str, n: int = 3) -> list[str]:
    root = os.path.join(STATIC, "static", "js" if suffix == ".js" else "css" if suffix == ".css" else "media")
    return sorted(f for f in os.listdir(root) if f.endswith(suffix))[:n]


@pytest.mark.parametrize("path", [f"/static/js/{n}" for n in _chunks(".js")] + [f"/static/css/{n}" for n in _chunks(".css")]
                         + [f"/static/media/{n}" for n in _chunks(".woff2")] + ["/favicon.png", "/manifest.json"])
def test_a_file_is_the_bytes_and_headers_streamlit_sends(path):
    status, headers, body, passed = _served(path)
    stock_status, stock_headers, stock_body, _ = _stock(path)
    assert not passed and status == stock_status == 200
    assert body == stock_body and headers["content-length"] == str(len(body))
    for name in ("content-type", "cache-control"):
        assert headers[name].replace(" ", "").lower() == stock_headers[name].replace(" ", "").lower(), name


def test_a_browser_that_holds_the_file_gets_304_and_head_gets_no_body():
    path = f"/static/js/{_chunks('.js', 1)[0]}"
    _, headers, body, _ = _served(path)
    status, again, empty, _ = _served(path, headers=[("If-None-Match", headers["etag"])])
    assert status == 304 and empty == b"" and again["etag"] == headers["etag"]
    assert _served(path, headers=[("If-None-Match", '"other"')])[0] == 200
    status, head, nothing, _ = _served(path, method="HEAD")
    assert status == 200 and nothing == b"" and head["content-length"] == str(len(body))


@pytest.mark.parametrize("path", ["/static/js/no-such-chunk.js", "/_stcore/health", "/_stcore/stream", "/media/x.png",
                                  "/static/../../etc/passwd", "/static/js/../../index.html", "/index.html/x"])
def test_anything_else_is_streamlits_to_answer(path):
    assert _served(path)[3]


def test_writes_pass_through():
    assert _served(f"/static/js/{_chunks('.js', 1)[0]}", method="POST")[3]
    assert _served("/", method="POST")[3]


@pytest.mark.parametrize("path", ["/", *[f"/{p.module}" for p in pages.PAGES]])
def test_the_root_and_every_page_get_index_html_naming_the_apps_root(path):
    status, headers, body, passed = _served(path)
    assert not passed and status == 200 and headers["cache-control"] == "no-cache"
    assert headers["content-type"].startswith("text/html")
    probe = b'window.__streamlit = Object.assign(window.__streamlit || {}, {BACKEND_BASE_URL: window.location.origin + "/"});'
    assert probe in body
    # before Streamlit's bundle, which reads window.__streamlit once when it loads
    assert body.index(probe) < body.index(b'<script type="module"')
    with open(os.path.join(STATIC, "index.html"), "rb") as fh:
        assert body.replace(b"<script>" + probe + b"</script>", b"") == fh.read()


@pytest.fixture
def base_url_path():
    old = config.get_option("server.baseUrlPath")
    config.set_option("server.baseUrlPath", "optimus/")
    yield
    config.set_option("server.baseUrlPath", old)


def test_under_a_base_url_path_the_index_names_it(base_url_path):
    assert serving.base_url_path() == "/optimus"
    status, _, body, passed = _served("/optimus/sample")
    assert status == 200 and not passed and b'window.location.origin + "/optimus/"' in body
    assert _served("/optimus/favicon.png")[0] == 200 and _served("/favicon.png")[3]


def test_with_base_url_needs_a_head():
    with pytest.raises(ValueError, match="<head>"):
        serving.with_base_url(b"<html><body></body></html>", "")


def test_the_warm_up_imports_what_the_landing_page_imports():
    names = serving.page_imports()
    assert pages.DEFAULT.module == "overview" and "optimus.app.common" in names and "streamlit" in names
    assert not any(n.startswith(("tensorflow", "keras")) for n in names)
