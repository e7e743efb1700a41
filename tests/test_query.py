"""optimus.app.query: values echoed from the URL render as literal text."""

from __future__ import annotations

from tests.helpers import MD, PAYLOADS, _rendered_markup


def test_literal_and_code_render_as_exactly_their_text():
    for payload in PAYLOADS + ["a\nb", "``` a", "` x `", "\\[x]"]:
        for body in (query_module().literal(payload), query_module().code(payload)):
            assert not _rendered_markup(body), (payload, body)
        html = MD.render(query_module().literal(payload))
        assert "<img" not in html and "<a " not in html


def query_module():
    from optimus.app import query

    return query
