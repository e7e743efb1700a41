"""Chart builders return valid Vega-Lite specs (Altair validates on `to_dict`) with the
encodings the pages rely on. No browser, no Streamlit, no TensorFlow."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from optimus.app import charts, charts_sieve

REPO = Path(__file__).resolve().parent.parent


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


def _valid(spec: dict) -> dict:
    """`spec`, a chart the pages send as a plain dict, checked against the Vega-Lite schema
    (what Altair's to_dict checks), and as the JSON the browser gets (no NaN)."""
    from altair.utils.schemapi import validate_jsonschema
    from altair.vegalite.v6.schema import core

    schema = core.load_schema()
    validate_jsonschema(spec, schema, rootschema=schema)
    json.dumps(spec, allow_nan=False)
    return spec


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
    spec = _valid(charts.output_histogram(samples, bins=12))
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
    spec = _valid(charts.output_histogram(samples, bins=5))
    bars = next(iter(_layers(spec)))
    rows = spec["datasets"][bars["data"]["name"]]
    edges, index = magnitude_bins(np.array(n), 5)
    assert [r["bin_lo"] for r in rows] == edges[:-1] and rows[-1]["bin_hi"] == edges[-1]
    assert [r["outputs"] for r in rows] == np.bincount(index, minlength=5).tolist()


def test_residue_chart_two_models_highlights_zero():
    rows = [{"model": m, "p": p, "residue": r, "share": (0.0 if r == 0 and m == "default" else 1 / p)}
            for m in ("default", "seed") for p in (3, 5, 7) for r in range(p)]
    spec = _valid(charts.residue_chart(pd.DataFrame(rows)))
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
    spec = _valid(charts.model_comparison_chart(table))
    assert spec["encoding"]["xOffset"]["field"] == "model"
    assert spec["encoding"]["x"]["field"] == "metric"


def test_confusion_heatmap():
    spec = _valid(charts.confusion_heatmap({"tp": 5, "fp": 2, "fn": 1, "tn": 92}))
    rows = next(iter(spec["datasets"].values()))
    assert {(r["actual"], r["predicted"]): r["count"] for r in rows} == {
        ("prime", "prime"): 5, ("prime", "not prime"): 1, ("not prime", "prime"): 2, ("not prime", "not prime"): 92}
    marks = [layer["mark"]["type"] for layer in _layers(spec)]
    assert marks == ["rect", "text"]


def _roc_rows(spec, model_prefix):
    return [r for rows in spec["datasets"].values() for r in rows
            if str(r.get("model", "")).startswith(model_prefix)]


def test_roc_chart_two_models_and_diagonal():
    rocs = {"default": {"fpr": [0, 0.1, 1], "tpr": [0, 0.9, 1], "threshold": [None, 0.5, 0]},
            "seed": {"fpr": [0, 1], "tpr": [0, 1], "threshold": [None, 0]}}
    spec = _valid(charts.roc_chart(rocs, {"default": 0.95, "seed": 0.5}))
    diagonal, *curves = list(_layers(spec))
    assert diagonal["mark"]["strokeDash"] == [4, 4]
    assert len(curves) == 2  # one layer per model: the picked one (default) drawn last, on top
    for curve in curves:
        assert curve["encoding"]["x"]["field"] == "fpr" and curve["encoding"]["y"]["field"] == "tpr"
        assert curve["encoding"]["color"]["scale"]["domain"] == ["default (AUC 0.950)", "seed (AUC 0.500)"]
        assert curve["encoding"]["order"]["field"] == "step"
        assert curve["mark"].get("interpolate") in (None, "linear")  # no step-after


def test_roc_of_a_constant_classifier_is_the_diagonal():
    """The seed gives every integer the same probability: the curve is the chance diagonal, a
    single straight segment, not the left-and-top corner a step-after line drew (issue 22)."""
    import numpy as np

    from optimus.evaluation import metrics

    truth = np.array([True, False, False, True, False, False, False, True])
    roc = metrics.roc_curve(truth, np.full(len(truth), 0.61))
    assert roc["fpr"] == [0.0, 1.0] and roc["tpr"] == [0.0, 1.0]
    assert metrics.roc_auc(truth, np.full(len(truth), 0.61)) == 0.5
    perfect = metrics.roc_curve(truth, truth.astype(float))
    assert list(zip(perfect["fpr"], perfect["tpr"], strict=True)) == [(0, 0), (0, 1), (1, 1)]
    spec = _valid(charts.roc_chart({"default": perfect, "seed": roc}, {"default": 1.0, "seed": 0.5}))
    seed = sorted(_roc_rows(spec, "seed"), key=lambda r: r["step"])
    assert [(r["fpr"], r["tpr"]) for r in seed] == [(0, 0), (1, 1)]
    default = sorted(_roc_rows(spec, "default"), key=lambda r: r["step"])
    assert [(r["fpr"], r["tpr"]) for r in default] == [(0, 0), (0, 1), (1, 1)]


def test_roc_ties_are_diagonal_segments_and_area_matches_auc():
    import numpy as np

    from optimus.evaluation import metrics

    # scores 0.9 (2 primes, 1 composite tied), 0.5 (1 prime), 0.1 (2 composites)
    truth = np.array([True, True, False, True, False, False])
    score = np.array([0.9, 0.9, 0.9, 0.5, 0.1, 0.1])
    roc = metrics.roc_curve(truth, score)
    assert roc["threshold"] == [None, 0.9, 0.5, 0.1]
    assert roc["fpr"] == pytest.approx([0, 1 / 3, 1 / 3, 1])
    assert roc["tpr"] == pytest.approx([0, 2 / 3, 1, 1])
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(metrics.roc_auc(truth, score))
    rng = np.random.default_rng(1)
    truth = rng.random(5_000) < 0.2
    score = np.round(rng.random(5_000) * 0.5 + truth * 0.3, 2)  # many ties
    roc = metrics.roc_curve(truth, score)
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(metrics.roc_auc(truth, score), abs=1e-12)
    assert np.all(np.diff(roc["fpr"]) >= 0) and np.all(np.diff(roc["tpr"]) >= 0)
    # one class only: no curve, and the chart names the model instead of drawing a false line
    empty = metrics.roc_curve(np.zeros(5, bool), np.linspace(0, 1, 5))
    assert empty["fpr"] == []
    spec = _valid(charts.roc_chart({"x": empty}, {"x": float("nan")}))
    assert [r["model"] for r in _roc_rows(spec, "x")] == ["x (one class: no ROC)"]


def test_roc_curve_many_distinct_scores_is_thinned_but_keeps_its_ends():
    import numpy as np

    from optimus.evaluation import metrics

    rng = np.random.default_rng(2)
    truth = rng.random(50_000) < 0.1
    score = rng.random(50_000) + truth * 0.4
    roc = metrics.roc_curve(truth, score)
    assert len(roc["fpr"]) <= metrics.ROC_MAX_POINTS
    assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0, 0, 1, 1)
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(metrics.roc_auc(truth, score), abs=2e-3)


def test_accuracy_by_magnitude_chart():
    rows = pd.DataFrame({"model": ["default", "default", "seed", "seed"], "bin_lo": [1e6, 1e7, 1e6, 1e7],
                         "bin_hi": [1e7, 1e8, 1e7, 1e8], "count": [10, 10, 10, 10],
                         "accuracy": [0.9, 0.8, 0.5, 0.5], "balanced_accuracy": [0.9, 0.85, 0.5, 0.5]})
    spec = _valid(charts.accuracy_by_magnitude_chart(rows))
    line = next(iter(_layers(spec)))
    assert line["encoding"]["y"]["field"] == "balanced_accuracy"
    assert line["encoding"]["x"]["scale"]["type"] == "log"
    assert line["encoding"]["color"]["field"] == "model"


def test_balanced_accuracy_of_a_one_class_bin_is_a_gap_not_zero():
    """A constant classifier (the seed) in a bin of composites only: balanced accuracy is
    undefined there, and the chart breaks its line instead of plotting 0.0 (issue 22)."""
    import numpy as np

    from optimus.evaluation import metrics

    n = np.array([11, 13, 15, 17, 19, 21, 1_000_001, 1_000_003, 1_000_005, 1_000_007])
    truth = np.array([True, True, False, True, True, False, False, True, False, False])
    composites_only = np.array([9, 15, 21, 25, 27, 33, 1_000_001, 1_000_005, 1_000_011, 1_000_013])
    rows = metrics.accuracy_by_magnitude(
        np.r_[n, composites_only * 1000 + 1001],  # a bin far above: odd composites only
        np.r_[truth, np.zeros(len(composites_only), bool)], np.full(20, 0.9), bins=3)
    by_share = {round(r["prime_share"], 3): r for r in rows}
    assert by_share[0.0]["accuracy"] == 0.0 and math.isnan(by_share[0.0]["balanced_accuracy"])
    mixed = [r for r in rows if 0 < r["prime_share"] < 1]
    assert mixed and all(r["balanced_accuracy"] == 0.5 for r in mixed)  # constant: 0.5 where both classes
    frame = pd.DataFrame([{"model": "seed", **r} for r in rows])
    spec = _valid(charts.accuracy_by_magnitude_chart(frame))
    line = next(iter(_layers(spec)))
    assert line["mark"]["invalid"] == "break-paths-filter-domains"
    values = [r["balanced_accuracy"] for r in spec["datasets"][spec["data"]["name"]]] if "data" in spec else [
        r["balanced_accuracy"] for rows in spec["datasets"].values() for r in rows if "balanced_accuracy" in r]
    assert None in values and 0.0 not in values  # NaN goes to the browser as null
    assert "undefined" in json.dumps(spec["title"])


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
    import altair as alt
    import numpy as np

    from optimus.evaluation.report import residue_distribution

    odd = np.arange(10**6 + 1, 10**6 + 2 * 3 * 5 * 7 * 100, 2)  # every residue equally often
    sieved = odd[(odd % 3 != 0) & (odd % 5 != 0)]  # a generator that avoids multiples of 3 and 5
    residues = pd.concat([residue_distribution(odd, [3, 5, 7]).assign(model="seed"),
                          residue_distribution(sieved, [3, 5, 7]).assign(model="default")])
    zero = residues[residues["residue"] == 0]
    rows = [row for model in ("seed", "default") for row in charts_sieve.sieve_rows(
        model, [3, 5, 7], zero.loc[zero["model"] == model, "share"].tolist())]
    by = {(r["model"], r["p"]): r for r in rows}
    assert by[("seed", 3)]["divisible"] == pytest.approx(1 / 3)
    assert by[("seed", 7)]["vs_chance"] == pytest.approx(1.0)
    assert by[("default", 3)]["divisible"] == 0.0 and by[("default", 5)]["vs_chance"] == 0.0
    assert by[("default", 7)]["chance"] == pytest.approx(1 / 7)
    spec = charts_sieve.sieve_figure(rows)
    alt.LayerChart.from_dict(spec)  # a valid Vega-Lite spec (written without Altair)
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in _layers(spec)]
    assert marks == ["line", "rule"]  # the models' points, and chance (1/p, drawn at 1)
    assert _fields(spec, "y") == ["vs_chance", "y"]
    points = spec["layer"][0]
    assert points["data"]["values"] == rows  # the data inline, every row
    assert points["encoding"]["color"]["scale"] == {"domain": ["seed", "default"], "range": ["#9e9e9e", "#6c3bd1"]}
    assert points["encoding"]["x"]["sort"] == [3, 5, 7]
    tooltips = json.dumps(spec)
    assert '"divisible"' in tooltips and '"chance"' in tooltips  # raw share and 1/p in the tooltip
    empty = charts_sieve.sieve_figure([])
    alt.Chart.from_dict(empty)
    assert empty["mark"]["type"] == "text"


def test_the_overview_draws_its_chart_without_importing_altair():
    """The landing page's imports (what a new server runs first) leave Altair out (0.3 s of CPU)."""
    code = ("import sys; import optimus.app.charts_sieve, optimus.app.common, optimus.evaluation.sieve_shares; "
            "print('altair' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]
    overview = (REPO / "optimus" / "app" / "pages" / "overview.py").read_text()
    assert "import charts," not in overview and "charts." not in overview.replace("charts_sieve.", "")


def test_sieve_heatmap_over_batches_and_primes():
    history = _history(3)
    history["divisible_share"] = [{"3": 1 / 3, "5": 0.2}, {"3": 0.1, "5": 0.1}, {"3": 0.0, "5": 0.0}]
    frame = charts.divisible_share_frame(history)
    assert len(frame) == 6
    assert frame.set_index(["batch", "p"]).loc[(1, 3), "vs_chance"] == pytest.approx(1.0)
    assert frame.set_index(["batch", "p"]).loc[(2, 5), "vs_chance"] == pytest.approx(0.5)
    spec = charts.sieve_heatmap(history).to_dict()
    assert spec["mark"]["type"] == "rect" and spec["encoding"]["color"]["field"] == "vs_chance"
    # A history written before the field existed (the shipped models') draws a message instead.
    assert charts.sieve_heatmap(_history(3)).to_dict()["mark"]["type"] == "text"
    mixed = history.copy()
    mixed.loc[0, "divisible_share"] = None
    assert len(charts.divisible_share_frame(mixed)) == 4


def _relative_luminance(hex_colour: str) -> float:
    r, g, b = (int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_sieve_heatmap_has_a_fixed_column_per_planned_batch_and_a_dark_sieve():
    """Issue 22: one fixed-width column per planned batch (the axis holds every planned batch
    from the first, so columns never stretch and narrow), a palette whose darkest colour is 0 (a
    perfect sieve) and whose chance (1) is the lightest, and a legend that names both ends."""
    history = _history(3)
    history["divisible_share"] = [{"3": 1 / 3, "5": 0.2}, {"3": 0.1, "5": 0.1}, {"3": 0.0, "5": 0.0}]
    spec = charts.sieve_heatmap(history, planned=20).to_dict()
    x = spec["encoding"]["x"]
    assert x["scale"]["domain"] == list(range(1, 21))  # 20 columns while only 3 batches are done
    colour = spec["encoding"]["color"]
    domain, palette = colour["scale"]["domain"], colour["scale"]["range"]
    assert domain == [0.0, 1.0, 2.0]
    lum = [_relative_luminance(c) for c in palette]
    assert lum[0] == min(lum) and lum[1] == max(lum)  # 0 darkest, chance lightest
    legend = json.dumps(colour["legend"])
    assert "perfect sieve" in legend and "chance" in legend
    # resumed model: the axis starts at the first recorded batch and runs to the planned end
    history["batch"] = [41, 42, 43]
    later = charts.sieve_heatmap(history, planned=60).to_dict()
    assert later["encoding"]["x"]["scale"]["domain"] == list(range(41, 61))
    # without a plan (a finished model) the recorded batches are the columns
    assert charts.sieve_heatmap(history).to_dict()["encoding"]["x"]["scale"]["domain"] == [41, 42, 43]


@pytest.mark.parametrize("builder", [charts.losses_chart, charts.sieve_heatmap])
def test_spec_is_the_validated_chart_without_an_altair_theme(builder):
    """charts.spec (what the pages send, unvalidated) is exactly the dict Altair's validating
    to_dict gives under the "none" theme Streamlit uses for st.altair_chart."""
    import altair as alt

    chart = builder(_history(40))
    with alt.theme.enable("none"), alt.data_transformers.enable("default", max_rows=None):
        expected = chart.to_dict()  # validates against the Vega-Lite schema
    assert charts.spec(chart) == expected
    assert alt.theme.active == "default"  # spec leaves Altair's globals as it found them


def test_altair_class_table_built_once_equals_altairs_own():
    """charts shares Altair's schema-to-class table between `_FromDict`s (built once, not on
    every shorthand): the shared table is the one Altair would build."""
    from collections import defaultdict

    from altair.utils import schemapi

    classes = tuple(schemapi.SchemaBase._default_wrapper_classes())
    first, second = schemapi._FromDict(classes), schemapi._FromDict(iter(classes))
    assert first.class_dict is second.class_dict
    fresh = defaultdict(list)
    for tp in classes:
        if tp._schema is not None:
            fresh[schemapi._FromDict.hash_schema(tp._schema)].append(tp)
    assert {k: v for k, v in first.class_dict.items() if v} == dict(fresh)


def test_records_are_json_rows_with_null_for_nan():
    rows = charts._records({"a": np.array([1, 2]), "b": pd.Series([0.5, float("nan")]), "c": ["x", None]})
    assert rows == [{"a": 1, "b": 0.5, "c": "x"}, {"a": 2, "b": None, "c": None}]
    assert type(rows[0]["a"]) is int and json.dumps(rows, allow_nan=False)


def test_roc_chart_with_a_model_without_a_curve_sends_no_nan():
    """Three models, one with one class only: its row has no rates, and the others' first
    vertex (threshold None) goes to the browser as null (Altair's frame sent NaN, not JSON)."""
    rocs = {"default": {"fpr": [0, 0.5, 1], "tpr": [0, 1, 1], "threshold": [None, 0.7, 0.1]},
            "seed": {"fpr": [0, 1], "tpr": [0, 1], "threshold": [None, 0.5]},
            "empty": {"fpr": [], "tpr": [], "threshold": []}}
    spec = _valid(charts.roc_chart(rocs, {"default": 1.0, "seed": 0.5, "empty": float("nan")}))
    assert [r["threshold"] for r in _roc_rows(spec, "default")] == [None, 0.7, 0.1]
    assert [(r["fpr"], r["tpr"]) for r in _roc_rows(spec, "empty")] == [(None, None)]
    curves = list(_layers(spec))[1:]
    assert [c["encoding"]["color"]["scale"]["range"] for c in curves][0] == ["#6c3bd1", "#9e9e9e", "#2a9d8f"]
    assert spec["datasets"][curves[-1]["data"]["name"]][0]["model"].startswith("default")  # picked: on top


def test_tests_per_prime_chart_is_valid():
    summary = {"tests_per_prime": 5.0, "random_odd_tests_per_prime": 100.0, "sieve_tests_per_prime": 10.0,
               "density_exact": False}
    spec = _valid(charts.tests_per_prime_chart(summary))
    assert [r["method"] for r in spec["datasets"][spec["data"]["name"]]] == list(charts.TESTS_SERIES)
    assert _valid(charts.tests_per_prime_chart({**summary, "tests_per_prime": None}))["mark"]["type"] == "text"


def test_spec_writes_a_layered_charts_datasets_into_its_layers():
    """Streamlit converts each named dataset to Arrow on every page run; charts.spec writes the
    data of the views below the top into them instead (the same chart, still valid Vega-Lite)."""
    import altair as alt
    import jsonschema
    from altair.vegalite.v6.schema.core import load_schema

    sieve = pd.DataFrame({"p": [3, 5], "y": [0.1, 0.2]})
    layered = alt.Chart(sieve).mark_line().encode(x="p:O", y="y:Q") + alt.Chart(
        pd.DataFrame({"y": [1.0]})).mark_rule().encode(y="y:Q")
    with alt.theme.enable("none"), alt.data_transformers.enable("default", max_rows=None):
        named = layered.to_dict()
    spec = charts.spec(layered)
    jsonschema.validate(spec, load_schema())
    assert "datasets" not in spec and len(named["datasets"]) == 2
    assert [layer["data"] for layer in spec["layer"]] == [{"values": named["datasets"][layer["data"]["name"]]}
                                                          for layer in named["layer"]]
    assert {k: v for k, v in spec.items() if k != "layer"} == {
        k: v for k, v in named.items() if k not in ("layer", "datasets")}
    single = charts.spec(charts.losses_chart(_history(5)))  # top-level data stays named (Streamlit reads it there)
    assert set(single["datasets"]) == {single["data"]["name"]}


def test_spec_inlines_the_layers_data_of_a_chart_written_as_a_dict():
    """The Sample and Discriminator pages' layered charts are dicts; spec writes their named
    datasets into the layers (no Arrow conversion per run), the same chart, still valid."""
    rocs = {"default": {"fpr": [0, 0.5, 1], "tpr": [0, 1, 1], "threshold": [None, 0.7, 0.1]}}
    named = charts.roc_chart(rocs, {"default": 1.0})
    inlined = _valid(charts.spec(named))
    assert "datasets" not in inlined
    assert [layer["data"]["values"] for layer in inlined["layer"]] == [
        named["datasets"][layer["data"]["name"]] for layer in named["layer"]]
