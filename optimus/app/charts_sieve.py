"""The learned sieve in one picture (the Overview's chart), as a Vega-Lite dict written out
without Altair.

The Overview is the page a new server draws first: built with Altair, its one chart made the
server import Altair and its Vega-Lite schema classes first (about 0.3 s of CPU, a tenth of the
cold start's 3 s target; issue 18). The dict is what `charts.spec` would give for the same
Altair chart (tests/test_charts_sieve.py validates it against the Vega-Lite schema), with the
data inline in each layer, so Streamlit sends it as it is instead of converting it to Arrow.
"""

from __future__ import annotations

from optimus.app.chart_style import CHANCE_COLOR, HEIGHT, TITLE_PADDING, WIDTH, model_colors

TITLE = "The learned sieve (1 = chance 1/p, 0 = a perfect sieve)"


def sieve_rows(model: str, primes, divisible) -> list[dict]:
    """One row per prime p for `model`: `divisible` (the share of its outputs that are multiples
    of p), `chance` (1/p, what random odd integers give) and `vs_chance` (divisible * p: 1 =
    chance, 0 = a perfect sieve)."""
    return [{"model": str(model), "p": int(p), "divisible": float(d), "chance": 1.0 / int(p),
             "vs_chance": float(d) * int(p)} for p, d in zip(primes, divisible, strict=True)]


def sieve_figure(rows: list[dict]) -> dict:
    """"The learned sieve": for each small odd prime p, the share of each model's outputs
    divisible by p (a line of points per model), drawn relative to chance: 1 (the dashed line) is
    random odd integers' 1/p, 0 is a perfect sieve. Drawn raw, the shares of p > 30 (below 1/30)
    would vanish beside p = 3's 1/3; the raw share and 1/p are in the tooltip. `rows`:
    `sieve_rows` of each model, concatenated."""
    if not rows:
        return {"data": {"values": [{"text": "no outputs"}]}, "mark": {"type": "text", "size": 14, "color": "#888"},
                "encoding": {"text": {"field": "text", "type": "nominal"}}, "width": WIDTH, "height": 60}
    models = list(dict.fromkeys(r["model"] for r in rows))
    primes = sorted({r["p"] for r in rows})
    points = {
        "data": {"values": list(rows)},
        "mark": {"type": "line", "point": {"filled": True, "size": 60}, "strokeWidth": 2},
        "encoding": {
            "x": {"field": "p", "type": "ordinal", "title": "odd prime p", "sort": primes, "axis": {"labelAngle": 0}},
            "y": {"field": "vs_chance", "type": "quantitative", "title": "multiples of p / chance",
                  "scale": {"domainMin": 0}},
            "color": {"field": "model", "type": "nominal", "title": "generator", "sort": models,
                      "scale": {"domain": models, "range": model_colors(models)}},
            "tooltip": [{"field": "model", "type": "nominal"}, {"field": "p", "type": "ordinal"},
                        {"field": "divisible", "type": "quantitative", "format": ".2%", "title": "divisible by p"},
                        {"field": "chance", "type": "quantitative", "format": ".2%", "title": "chance 1/p"},
                        {"field": "vs_chance", "type": "quantitative", "format": ".2f", "title": "share / chance"}],
        },
    }
    chance = {
        "data": {"values": [{"y": 1.0, "label": "chance: 1 in p"}]},
        "mark": {"type": "rule", "strokeDash": [4, 4], "color": CHANCE_COLOR},
        "encoding": {"y": {"field": "y", "type": "quantitative"}, "tooltip": [{"field": "label", "type": "nominal"}]},
    }
    return {"layer": [points, chance], "title": TITLE, "width": WIDTH, "height": HEIGHT, "padding": TITLE_PADDING}
