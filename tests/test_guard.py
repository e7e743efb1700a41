"""DNS rebinding (issue 14, defect 16): the app refuses sessions for host names that are not its own.

The end-to-end test is the attack itself: Chromium resolves `evil.example` to 127.0.0.1
(`--host-resolver-rules`, what a rebinding DNS server does), opens the app under that name, and
so sends `Host: evil.example:PORT` on the page load and on the websocket, exactly as a page on a
rebinding domain would.
"""

from __future__ import annotations

import pytest

from optimus.app.guard import host_allowed, host_name


@pytest.mark.parametrize("header, name", [
    ("127.0.0.1:8501", "127.0.0.1"), ("LocalHost:8501", "localhost"), ("localhost.", "localhost"),
    ("[::1]:8501", "::1"), ("[::1]", "::1"), ("evil.example:8501", "evil.example"), ("", ""),
])
def test_host_name(header, name):
    assert host_name(header) == name


@pytest.mark.parametrize("header", ["127.0.0.1:8501", "localhost:8501", "[::1]:8501", "LOCALHOST", None])
def test_local_hosts_pass(header):
    assert host_allowed(header, "127.0.0.1")


@pytest.mark.parametrize("header", ["evil.example:8501", "evil.example", "127.0.0.1.evil.example:8501",
                                    "localhost.evil.example", "", "10.0.0.5:8501"])
def test_other_hosts_refused(header):
    assert not host_allowed(header, "127.0.0.1")


def test_configured_address_and_env_list():
    assert host_allowed("192.168.1.20:8501", "192.168.1.20")
    assert not host_allowed("192.168.1.21:8501", "192.168.1.20")
    assert host_allowed("optimus.lab.example:443", "127.0.0.1", "optimus.lab.example, other.example")
    assert host_allowed("OTHER.example", "127.0.0.1", "optimus.lab.example, other.example")
    assert not host_allowed("evil.example", "127.0.0.1", "optimus.lab.example")


def test_all_interfaces_allow_ip_literals_not_foreign_names():
    # Bound to 0.0.0.0 (README "Expose the app"): visitors type an IP; rebinding needs a name.
    assert host_allowed("10.0.0.5:8501", "0.0.0.0")
    assert host_allowed("[fe80::1]:8501", "::")
    assert not host_allowed("evil.example:8501", "0.0.0.0")


@pytest.mark.slow
@pytest.mark.e2e
def test_rebinding_page_gets_no_app(tmp_path):
    from playwright.sync_api import sync_playwright

    from optimus.bench.server import serve
    from tests.test_e2e_browser import CHROMIUM, CHROMIUM_ARGS

    # An empty models folder: the Train page renders its "no model yet" state without TensorFlow.
    (tmp_path / "models").mkdir()
    with serve(tmp_path / "models", log_path=tmp_path / "streamlit.log") as server:
        url = server.url
        port = url.rsplit(":", 1)[1]
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP evil.example 127.0.0.1"])
            try:
                page = browser.new_page()
                page.goto(f"http://evil.example:{port}/", timeout=120_000)
                page.get_by_text("does not answer to the host").wait_for(timeout=120_000)
                body = page.inner_text("body")
                assert "evil.example" in body
                # Nothing of the app: no navigation, no page title, no widget.
                assert page.locator('[data-testid="stSidebarNav"]').count() == 0
                assert page.get_by_role("button").filter(has_text="Start").count() == 0
                assert "Traceback" not in body

                page = browser.new_page()
                page.goto(f"{url}/", timeout=120_000)
                page.locator('[data-testid="stSidebarNav"]').wait_for(timeout=120_000)
                assert "does not answer to the host" not in page.inner_text("body")
            finally:
                browser.close()


def test_server_defaults_are_local_and_xsrf_protected(repo_root):
    import tomllib

    cfg = tomllib.loads((repo_root / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["server"]["enableXsrfProtection"] is True
