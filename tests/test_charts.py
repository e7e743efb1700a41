"""Chart builders return valid Vega-Lite specs (Altair validates on `to_dict`) with the
encodings the pages rely on. No browser, no Streamlit, no TensorFlow."""

import json
import math
import sys

import numpy as np
import pandas as pd
import pytest

from optimus.app import charts


def _history(n=5):
    return pd.DataFrame({
        "run": ["run-001"] * n,
        "batch": list(range(1, n + 1)),
        "d_loss": [1.0 / (i + 1) for i in range(n)],
        "g_loss": [2.0 / (i + 1) for i in range(n)],
        "hit_rate": [0.1 + 0.05 * i for i in range(n)],
        "baseline": [0.1] * n,
        "lift": [1.0 + 0.5 * i for i in range(n)],
        "d_balanced_accuracy": [0.5 + 0.1 * i for i in range(n)],
    })


def _layers(spec):
    """Every single-view spec inside a (possibly nested / faceted) spec."""
    if "layer" in spec:
        for sub in spec["layer"]:
            yield from _layers(sub)
    elif "spec" in spec:
        yield from _layers(spec["spec"])
    else:
        yield spec


def _fields(spec, channel):
    return [layer["encoding"][channel].get("field") for layer in _layers(spec)
            if channel in layer.get("encoding", {})]


@pytest.mark.parametrize("builder, series", [
    (charts.losses_chart, {"discriminator loss", "generator loss"}),
    (charts.hit_rate_chart, {"prime hit rate", "chance baseline"}),
    (charts.lift_chart, {"lift"}),
    (charts.balanced_accuracy_chart, {"balanced accuracy"}),
])
def test_history_charts(builder, series):
    spec = builder(_history()).to_dict()
    assert "batch" in _fields(spec, "x")
    assert "series" in _fields(spec, "color")
    datasets = spec["datasets"].values()
    names = {row["series"] for rows in datasets for row in rows if "series" in row}
    assert names == series


def test_history_charts_have_chance_rules():
    lift = charts.lift_chart(_history()).to_dict()
    assert any(layer["mark"]["type"] == "rule" for layer in _layers(lift))
    rows = [r for rows in lift["datasets"].values() for r in rows if set(r) == {"y"}]
    assert rows == [{"y": 1.0}]


@pytest.mark.parametrize("builder", [charts.losses_chart, charts.hit_rate_chart, charts.lift_chart,
                                     charts.balanced_accuracy_chart])
def test_history_charts_empty(builder):
    spec = builder(_history().iloc[:0]).to_dict()
    assert spec["mark"]["type"] == "text"


def test_output_histogram_log_bins_and_density_curve():
    n = [10**6 + 2 * i + 1 for i in range(0, 2000, 7)] + [10**8 + 1, 10**8 + 7]
    samples = pd.DataFrame({"n": n, "is_prime": [i % 3 == 0 for i in range(len(n))]})
    spec = charts.output_histogram(samples, bins=12).to_dict()
    bars, lines = list(_layers(spec))
    assert bars["mark"]["type"] == "bar" and bars["encoding"]["x"]["scale"]["type"] == "log"
    assert bars["encoding"]["x2"]["field"] == "bin_hi"
    assert lines["encoding"]["color"]["field"] == "curve"
    assert spec["resolve"]["scale"]["y"] == "independent"
    bar_rows = spec["datasets"][bars["data"]["name"]]
    assert sum(r["outputs"] for r in bar_rows) == len(n)
    curve_rows = spec["datasets"][lines["data"]["name"]]
    chance = [r for r in curve_rows if r["curve"].startswith("chance")]
    assert all(abs(r["share"] - 2 / math.log(r["mid"])) < 1e-9 for r in chance)


def test_output_histogram_bins_are_the_magnitude_bins():
    """The chart bins outputs as the lift's baseline does (optimus.primes.bins, one log binning)."""
    from optimus.primes.bins import magnitude_bins

    n = [10 + 2 * i + 1 for i in range(0, 5000, 3)] + [10**6 + 1]
    samples = pd.DataFrame({"n": n, "is_prime": [False] * len(n)})
    spec = charts.output_histogram(samples, bins=5).to_dict()
    bars = next(iter(_layers(spec)))
    rows = spec["datasets"][bars["data"]["name"]]
    edges, index = magnitude_bins(np.array(n), 5)
    assert [r["bin_lo"] for r in rows] == edges[:-1] and rows[-1]["bin_hi"] == edges[-1]
    assert [r["outputs"] for r in rows] == np.bincount(index, minlength=5).tolist()


def test_residue_chart_two_models_highlights_zero():
    rows = [{"model": m, "p": p, "residue": r, "share": (0.0 if r == 0 and m == "default" else 1 / p)}
            for m in ("default", "seed") for p in (3, 5, 7) for r in range(p)]
    spec = charts.residue_chart(pd.DataFrame(rows)).to_dict()
    assert spec["facet"]["column"]["field"] == "model"
    assert spec["facet"]["column"]["sort"] == ["default", "seed"]
    cells, zero = list(_layers(spec))
    assert cells["encoding"]["x"]["field"] == "residue" and cells["encoding"]["y"]["field"] == "p"
    assert cells["encoding"]["color"]["field"] == "vs_chance"
    assert "residue" in zero["transform"][0]["filter"] and zero["mark"]["stroke"]
    data = spec["datasets"][spec["data"]["name"]]
    zero_default = [r["vs_chance"] for r in data if r["model"] == "default" and r["residue"] == 0]
    assert zero_default == [0.0, 0.0, 0.0]
    assert all(r["vs_chance"] == pytest.approx(1.0) for r in data if r["model"] == "seed")


def test_model_comparison_chart():
    table = pd.DataFrame({"model": ["default", "seed"], "hit_rate": [0.3, 0.1], "baseline": [0.1, 0.1],
                          "distinct_prime_rate": [0.3, 0.1]})
    spec = charts.model_comparison_chart(table).to_dict()
    assert spec["encoding"]["xOffset"]["field"] == "model"
    assert spec["encoding"]["x"]["field"] == "metric"


def test_confusion_heatmap():
    spec = charts.confusion_heatmap({"tp": 5, "fp": 2, "fn": 1, "tn": 92}).to_dict()
    rows = next(iter(spec["datasets"].values()))
    assert {(r["actual"], r["predicted"]): r["count"] for r in rows} == {
        ("prime", "prime"): 5, ("prime", "not prime"): 1, ("not prime", "prime"): 2, ("not prime", "not prime"): 92}
    marks = [layer["mark"]["type"] for layer in _layers(spec)]
    assert marks == ["rect", "text"]


def test_roc_chart_two_models_and_diagonal():
    rocs = {"default": {"fpr": [0, 0.1, 1], "tpr": [0, 0.9, 1], "threshold": [1, 0.5, 0]},
            "seed": {"fpr": [0, 1], "tpr": [0, 1], "threshold": [1, 0]}}
    spec = charts.roc_chart(rocs, {"default": 0.95, "seed": float("nan")}).to_dict()
    curve, diagonal = list(_layers(spec))
    assert curve["encoding"]["x"]["field"] == "fpr" and curve["encoding"]["y"]["field"] == "tpr"
    assert curve["encoding"]["color"]["scale"]["domain"] == ["default (AUC 0.950)", "seed"]
    assert diagonal["mark"]["strokeDash"] == [4, 4]


def test_accuracy_by_magnitude_chart():
    rows = pd.DataFrame({"model": ["default", "default", "seed", "seed"], "bin_lo": [1e6, 1e7, 1e6, 1e7],
                         "bin_hi": [1e7, 1e8, 1e7, 1e8], "count": [10, 10, 10, 10],
                         "accuracy": [0.9, 0.8, 0.5, 0.5], "balanced_accuracy": [0.9, 0.85, 0.5, 0.5]})
    spec = charts.accuracy_by_magnitude_chart(rows).to_dict()
    line = next(iter(_layers(spec)))
    assert line["encoding"]["y"]["field"] == "balanced_accuracy"
    assert line["encoding"]["x"]["scale"]["type"] == "log"
    assert line["encoding"]["color"]["field"] == "model"


def _density_table():
    return pd.DataFrame({"bin_lo": [2, 1002, 2002], "bin_hi": [1002, 2002, 3002], "count": [168, 135, 127],
                         "expected_x_ln_x": [150.0, 135.0, 128.0], "expected_li": [176.0, 136.0, 127.0],
                         "width": [1000, 1000, 1000]})


def test_density_chart_count_and_density():
    spec = charts.density_chart(_density_table(), measure="count").to_dict()
    series = {r["series"] for rows in spec["datasets"].values() for r in rows if "series" in r}
    assert series == {"exact (sympy / sieve)", "x / ln x", "li(x)"}
    dens = charts.density_chart(_density_table(), measure="density", log_x=True).to_dict()
    values = [r["value"] for rows in dens["datasets"].values() for r in rows if r.get("series") == "li(x)"]
    assert values == pytest.approx([0.176, 0.136, 0.127])
    assert next(iter(_layers(dens)))["encoding"]["x"]["scale"]["type"] == "log"


def test_density_chart_model_overlay_has_own_axis():
    spec = charts.density_chart(_density_table(), model_share=pd.Series([0.2, 0.3, 0.5]),
                                model_name="default").to_dict()
    assert spec["resolve"]["scale"]["y"] == "independent"
    assert "share" in _fields(spec, "y")


def test_density_chart_rejects_unknown_measure():
    with pytest.raises(ValueError, match="measure"):
        charts.density_chart(_density_table(), measure="ratio")


def test_charts_module_imports_no_streamlit_or_tensorflow():
    import subprocess

    code = "import sys, optimus.app.charts; print('streamlit' in sys.modules, 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --- the learned sieve ----------------------------------------------------------------------


def test_sieve_frame_and_chart_compare_with_chance_and_a_perfect_sieve():
    import numpy as np

    from optimus.evaluation.report import residue_distribution

    odd = np.arange(10**6 + 1, 10**6 + 2 * 3 * 5 * 7 * 100, 2)  # every residue equally often
    sieved = odd[(odd % 3 != 0) & (odd % 5 != 0)]  # a generator that avoids multiples of 3 and 5
    residues = pd.concat([residue_distribution(odd, [3, 5, 7]).assign(model="seed"),
                          residue_distribution(sieved, [3, 5, 7]).assign(model="default")])
    frame = charts.sieve_frame(residues)
    by = frame.set_index(["model", "p"])
    assert by.loc[("seed", 3), "divisible"] == pytest.approx(1 / 3)
    assert by.loc[("seed", 7), "vs_chance"] == pytest.approx(1.0)
    assert by.loc[("default", 3), "divisible"] == 0.0 and by.loc[("default", 5), "vs_chance"] == 0.0
    assert by.loc[("default", 7), "chance"] == pytest.approx(1 / 7)
    spec = charts.sieve_chart(frame).to_dict()
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in _layers(spec)]
    assert marks == ["line", "rule"]  # the models' points, and chance (1/p, drawn at 1)
    assert _fields(spec, "y") == ["vs_chance", "y"]
    tooltips = json.dumps(spec)
    assert '"divisible"' in tooltips and '"chance"' in tooltips  # raw share and 1/p in the tooltip
    assert charts.sieve_chart(frame.iloc[:0]).to_dict()["mark"]["type"] == "text"


def test_sieve_heatmap_over_batches_and_primes():
    history = _history(3)
    history["divisible_share"] = [{"3": 1 / 3, "5": 0.2}, {"3": 0.1, "5": 0.1}, {"3": 0.0, "5": 0.0}]
    frame = charts.divisible_share_frame(history)
    assert len(frame) == 6
    assert frame.set_index(["batch", "p"]).loc[(1, 3), "vs_chance"] == pytest.approx(1.0)
    assert frame.set_index(["batch", "p"]).loc[(2, 5), "vs_chance"] == pytest.approx(0.5)
    spec = charts.sieve_heatmap(history).to_dict()
    assert spec["mark"]["type"] == "rect" and spec["encoding"]["color"]["field"] == "vs_chance"
    assert spec["encoding"]["color"]["scale"]["domainMid"] == 1
    # A history written before the field existed (the shipped models') draws a message instead.
    assert charts.sieve_heatmap(_history(3)).to_dict()["mark"]["type"] == "text"
    mixed = history.copy()
    mixed.loc[0, "divisible_share"] = None
    assert len(charts.divisible_share_frame(mixed)) == 4
