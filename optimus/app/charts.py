"""Altair chart builders for the app: small pure functions from data to a chart spec.

Each function takes plain data (a pandas DataFrame, a dict or a list of numbers) and returns an
`altair` chart, or (the Sample and Discriminator pages' charts) the Vega-Lite dict itself; nothing
here reads files, imports Streamlit or TensorFlow, or computes primes, so every chart can be built
and checked in a unit test (`chart.to_dict()`, or the dict against the Vega-Lite schema).
"""

from __future__ import annotations

import math
import threading

import altair as alt
import numpy as np
import pandas as pd
from altair.utils import schemapi

from optimus.app.chart_style import (
    CHANCE_COLOR,
    HEIGHT,
    MODEL_COLORS,
    TITLE_PADDING,
    WIDTH,
    model_colors,
)
from optimus.primes.bins import magnitude_bins


def _share_altair_class_tables() -> None:
    """Build Altair's schema-to-class table once, not on every channel given as a string.

    Each shorthand in `encode` ("fpr:Q", a tooltip's "model:N") goes through
    `SchemaBase.from_dict`, which builds a `_FromDict` whose constructor serialises the schema of
    every Altair class to JSON to hash it (hundreds of classes) on every call: about 0.01 s per
    shorthand, most of a chart's build. The table depends only on the classes, so it is kept per
    tuple of classes and shared (lookups only). Where Altair's internals differ, nothing is changed."""
    from_dict_class = getattr(schemapi, "_FromDict", None)
    if from_dict_class is None or getattr(from_dict_class, "_optimus_shared", False):
        return
    build = from_dict_class.__init__
    tables: dict = {}

    def __init__(self, wrapper_classes, /):
        classes = tuple(wrapper_classes)
        table = tables.get(classes)
        if table is None:
            build(self, classes)
            tables[classes] = self.class_dict
        else:
            self.class_dict = table

    from_dict_class.__init__ = __init__
    from_dict_class._optimus_shared = True


_share_altair_class_tables()

# Altair's theme and data transformer are process-wide, and each session's page runs in its own
# thread: `spec` switches them under this lock.
_ALTAIR_GLOBALS = threading.Lock()


def spec(chart) -> dict:
    """`chart` as the Vega-Lite dict `st.vega_lite_chart` draws, the same chart st.altair_chart
    would draw: no Altair theme (Streamlit's own applies), the data inline. Not validated
    against the Vega-Lite schema on every page run: that cost up to 0.15 s of the server's CPU
    per chart (measured: the accuracy matrices), and tests/test_charts.py validates what every
    builder here returns. A chart this module already wrote as a dict only has its layers'
    data inlined."""
    if isinstance(chart, dict):
        return inline_datasets(chart)
    with _ALTAIR_GLOBALS, alt.theme.enable("none"), alt.data_transformers.enable("default", max_rows=None):
        return inline_datasets(chart.to_dict(validate=False))


def inline_datasets(vega_lite: dict) -> dict:
    """The same chart with each named dataset written into the views below the top that use it
    (`"data": {"values": rows}`), the top level's left named. Streamlit turns every named dataset
    into a pandas frame and then Arrow on every page run (about 3 ms each: the Continual page's
    three charts hold twelve), but sends data inside a layer as part of the spec's JSON."""
    datasets = vega_lite.get("datasets")
    if not datasets:
        return vega_lite
    used_below: set[str] = set()

    def inline(node, depth: int):
        if isinstance(node, list):
            return [inline(item, depth) for item in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            if (key == "data" and depth > 0 and isinstance(value, dict) and set(value) == {"name"}
                    and value["name"] in datasets):
                used_below.add(value["name"])
                out[key] = {"values": datasets[value["name"]]}
            else:
                out[key] = inline(value, depth + 1)
        return out

    result = inline({k: v for k, v in vega_lite.items() if k != "datasets"}, 0)
    top = result.get("data") if isinstance(result.get("data"), dict) else {}
    kept = {name: rows for name, rows in datasets.items() if name == top.get("name") or name not in used_below}
    if kept:
        result["datasets"] = kept
    return result


def _empty(message: str) -> alt.Chart:
    """A chart that only says why there is nothing to draw."""
    return (
        alt.Chart(pd.DataFrame({"text": [message]}))
        .mark_text(size=14, color="#888")
        .encode(text="text:N")
        .properties(width=WIDTH, height=60)
    )


# --- training history -------------------------------------------------------------------


def _history_lines(history: pd.DataFrame, columns: dict[str, str], title: str, y_title: str,
                   rule: float | None = None, y_domain=None) -> alt.Chart:
    """Lines of several `history` columns against the global batch number.

    `columns` maps a column name to its legend label. `rule` draws a dashed reference line.
    """
    present = [c for c in columns if c in history.columns]
    if history.empty or not present:
        return _empty(f"{title}: no batches yet")
    long = history[["batch", *present]].melt("batch", var_name="series", value_name="value")
    long["series"] = long["series"].map(columns)
    y = alt.Y("value:Q", title=y_title)
    if y_domain is not None:
        y = alt.Y("value:Q", title=y_title, scale=alt.Scale(domain=list(y_domain)))
    lines = (
        alt.Chart(long)
        .mark_line(point=len(history) <= 30)
        .encode(
            x=alt.X("batch:Q", title="online batch", axis=alt.Axis(tickMinStep=1)),
            y=y,
            color=alt.Color("series:N", title=None, sort=list(columns.values())),
            tooltip=["batch:Q", "series:N", alt.Tooltip("value:Q", format=".4f")],
        )
    )
    chart = lines
    if rule is not None:
        chart = lines + alt.Chart(pd.DataFrame({"y": [rule]})).mark_rule(
            strokeDash=[4, 4], color=CHANCE_COLOR
        ).encode(y="y:Q")
    return chart.properties(title=title, width=WIDTH, height=HEIGHT)


def losses_chart(history: pd.DataFrame) -> alt.Chart:
    """Discriminator and generator loss per online batch."""
    return _history_lines(
        history, {"d_loss": "discriminator loss", "g_loss": "generator loss"}, "Losses", "loss"
    )


def hit_rate_chart(history: pd.DataFrame) -> alt.Chart:
    """Share of the generator's outputs that are prime, against the chance baseline."""
    return _history_lines(
        history,
        {"hit_rate": "prime hit rate", "baseline": "chance baseline"},
        "Prime hit rate vs chance",
        "share of outputs",
    )


def lift_chart(history: pd.DataFrame) -> alt.Chart:
    """Hit rate divided by the baseline; the dashed line at 1 is chance."""
    return _history_lines(history, {"lift": "lift"}, "Lift over chance", "hit rate / baseline", rule=1.0)


def balanced_accuracy_chart(history: pd.DataFrame) -> alt.Chart:
    """The discriminator's balanced accuracy; the dashed line at 0.5 is chance."""
    return _history_lines(
        history,
        {"d_balanced_accuracy": "balanced accuracy"},
        "Discriminator balanced accuracy",
        "balanced accuracy",
        rule=0.5,
        y_domain=(0, 1),
    )


# --- plain Vega-Lite dicts ----------------------------------------------------------------
# The Sample and Discriminator pages' charts are built as the Vega-Lite dicts Altair's to_dict
# gave for them, without Altair: building and serialising an Altair chart (deep copies, a schema
# look-up per shorthand, a DataFrame sanitised per layer) took 17-25 ms of the server's CPU per
# chart, for a chart of a few dozen rows. tests/test_charts.py validates each against the
# Vega-Lite schema.


def _q(field: str, **props) -> dict:
    return {"field": field, "type": "quantitative", **props}


def _n(field: str, **props) -> dict:
    return {"field": field, "type": "nominal", **props}


def _o(field: str, **props) -> dict:
    return {"field": field, "type": "ordinal", **props}


def _records(columns: dict) -> list[dict]:
    """Rows from equal-length columns, as JSON: NumPy scalars as Python numbers, NaN as null."""
    names = list(columns)
    values = []
    for name in names:
        column = columns[name]
        column = column.tolist() if isinstance(column, (np.ndarray, pd.Series)) else list(column)
        values.append([None if isinstance(v, float) and v != v else v for v in column])
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


def _empty_spec(message: str) -> dict:
    """`_empty` as a dict: a chart that only says why there is nothing to draw."""
    return {"data": {"values": [{"text": message}]}, "mark": {"type": "text", "color": "#888", "size": 14},
            "encoding": {"text": _n("text")}, "height": 60, "width": WIDTH}


# --- the generator's outputs ------------------------------------------------------------


def output_histogram(samples: pd.DataFrame, bins: int | None = None) -> dict:
    """Outputs per magnitude bin (log bins), with the prime share among them and the chance curve.

    `samples` has columns `n` and `is_prime`. Bars: outputs per bin (left axis). Lines (right
    axis): the share of the bin's outputs that are prime, and 2 / ln(x), the density of primes
    among odd integers near x (the prime number theorem), which is what random odd numbers of
    that size would give.
    """
    if samples.empty:
        return _empty_spec("no samples")
    if bins is None:  # about 4 outputs per bin's prime share at least, at most 30 bins
        bins = int(min(30, max(5, math.sqrt(len(samples)) / 2)))
    edges, index = magnitude_bins(samples["n"].to_numpy(dtype=np.int64), bins)  # the one log binning
    bins = len(edges) - 1  # fewer where the outputs span fewer integers
    outputs = np.bincount(index, minlength=bins)
    primes_in = np.bincount(index, weights=samples["is_prime"].to_numpy(dtype=bool), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(outputs > 0, primes_in / outputs, np.nan)
    mid = [math.sqrt(a * b) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    chance = [min(1.0, 2.0 / math.log(m)) if m > math.e else 1.0 for m in mid]
    table = _records({"bin_lo": edges[:-1], "bin_hi": edges[1:], "outputs": outputs, "prime share": share,
                      "mid": mid, "chance (2 / ln x)": chance})
    curves = [{"mid": r["mid"], "curve": "prime share", "share": r["prime share"]}
              for r in table if r["prime share"] is not None]
    curves += [{"mid": m, "curve": "chance (2 / ln x)", "share": c} for m, c in zip(mid, chance, strict=True)]
    x_scale = {"type": "log"}
    bars = {
        "data": {"name": "bins"},
        "mark": {"type": "bar", "color": "#6c3bd1", "opacity": 0.55},
        "encoding": {
            "tooltip": [_q("bin_lo", format=",.0f", title="from"), _q("bin_hi", format=",.0f", title="to"),
                        _q("outputs"), _q("prime share", format=".3f")],
            "x": _q("bin_lo", scale=x_scale, title="output n (log scale)"),
            "x2": {"field": "bin_hi"},
            "y": _q("outputs", title="outputs per bin"),
            "y2": {"datum": 0},  # without it a bar with x and x2 is a horizontal range
        },
    }
    lines = {
        "data": {"name": "curves"},
        "mark": {"type": "line", "point": True},
        "encoding": {
            "color": _n("curve", scale={"domain": ["prime share", "chance (2 / ln x)"],
                                        "range": ["#2a9d8f", CHANCE_COLOR]}, title=None),
            "tooltip": [_q("mid", format=",.0f", title="x"), _n("curve"), _q("share", format=".3f")],
            "x": _q("mid", scale=x_scale),
            "y": _q("share", axis={"format": "%"}, title="share prime"),
        },
    }
    return {"layer": [bars, lines], "height": HEIGHT + 40, "resolve": {"scale": {"y": "independent"}},
            "title": "Outputs over magnitude", "width": WIDTH, "datasets": {"bins": table, "curves": curves}}


def residue_chart(residues: pd.DataFrame) -> dict:
    """"What the network learned": share of outputs in each residue class mod small primes.

    `residues` has columns model, p, residue, share (one row per model, prime and residue).
    One heatmap per model, side by side: a row per prime p, a column per residue r, coloured by
    share * p, the share relative to chance (random odd integers put 1/p in every class, so 1.0
    is chance). Residue 0 (a multiple of p: never prime unless n == p) is outlined; a generator
    that learned divisibility by p leaves that cell near 0.
    """
    if residues.empty:
        return _empty_spec("no outputs")
    p, residue, share = (residues[c].to_numpy() for c in ("p", "residue", "share"))
    rows = _records({"model": residues["model"], "p": p, "residue": residue, "share": share,
                     "vs_chance": share * p,
                     "class": np.where(residue == 0, "0: multiple of p", "non-zero")})
    models = list(dict.fromkeys(residues["model"]))
    primes = sorted(int(v) for v in np.unique(p))
    position = {
        "x": _o("residue", axis={"labelAngle": 0, "labelFontSize": 9}, title="n mod p"),
        "y": _o("p", axis={"labelOverlap": False}, sort=primes, title="p"),
    }
    cells = {
        "mark": {"type": "rect"},
        "encoding": {
            "color": _q("vs_chance", scale={"clamp": True, "domain": [0, 2], "domainMid": 1, "reverse": True,
                                            "scheme": "purpleorange"},
                        title=["share / chance", "(1 = random)"]),
            "tooltip": [_n("model"), _o("p"), _o("residue"), _n("class"), _q("share", format=".2%"),
                        _q("vs_chance", format=".2f", title="share / chance")],
            **position,
        },
    }
    zero = {"mark": {"type": "rect", "fill": None, "stroke": CHANCE_COLOR, "strokeWidth": 2},
            "encoding": position, "transform": [{"filter": "(datum.residue === 0)"}]}
    return {
        "data": {"name": "residues"},
        "facet": {"column": _n("model", header={"labelFontSize": 13}, sort=models, title=None)},
        "spec": {"layer": [cells, zero], "height": {"step": 18}, "width": {"step": 13 if len(models) <= 2 else 8}},
        "title": "Share of outputs per residue class, relative to chance (residue 0 outlined)",
        "datasets": {"residues": rows},
    }


def model_comparison_chart(table: pd.DataFrame,
                           metrics=("hit_rate", "distinct_prime_rate", "baseline")) -> dict:
    """Grouped bars of a few generator metrics for several models.

    `table` has a `model` column and one column per metric.
    """
    present = [m for m in metrics if m in table.columns]
    if table.empty or not present:
        return _empty_spec("nothing to compare")
    models = list(dict.fromkeys(table["model"]))
    rows = [{"model": model, "metric": metric, "value": value}
            for metric in present for model, value in zip(table["model"], table[metric].tolist(), strict=True)]
    return {
        "data": {"name": "metrics"},
        "mark": {"type": "bar"},
        "encoding": {
            "color": _n("model", scale={"domain": models, "range": model_colors(models)}),
            "tooltip": [_n("model"), _n("metric"), _q("value", format=".4f")],
            "x": _n("metric", axis={"labelAngle": 0}, sort=list(present), title=None),
            "xOffset": _n("model", sort=models),
            "y": _q("value", title=None),
        },
        "height": HEIGHT, "title": "Models side by side", "width": WIDTH,
        "datasets": {"metrics": _records({"model": [r["model"] for r in rows], "metric": [r["metric"] for r in rows],
                                          "value": [r["value"] for r in rows]})},
    }


# --- the discriminator ------------------------------------------------------------------


def confusion_heatmap(confusion: dict) -> dict:
    """2 x 2 heatmap of {tp, fp, fn, tn}, actual (sympy) in rows, predicted in columns."""
    cells = [
        ("prime", "prime", "tp"),
        ("prime", "not prime", "fn"),
        ("not prime", "prime", "fp"),
        ("not prime", "not prime", "tn"),
    ]
    counts = [int(confusion.get(c, 0)) for _, _, c in cells]
    total = max(sum(counts), 1)
    rows = [{"actual": a, "predicted": p, "cell": c.upper(), "count": k, "share": k / total,
             "label": f"{c.upper()}: {k:,}"} for (a, p, c), k in zip(cells, counts, strict=True)]
    order = ["prime", "not prime"]
    position = {
        "x": _n("predicted", axis={"labelAngle": 0}, sort=order, title="predicted (discriminator)"),
        "y": _n("actual", sort=order, title="actual (sympy)"),
    }
    heat = {"mark": {"type": "rect"},
            "encoding": {"color": _q("count", legend=None, scale={"scheme": "purples"}),
                         "tooltip": [_n("actual"), _n("predicted"), _q("count"), _q("share", format=".2%")],
                         **position}}
    text = {"mark": {"type": "text", "fontSize": 16},
            "encoding": {"color": {"condition": {"test": "(datum.share > 0.4)", "value": "white"}, "value": "black"},
                         "text": _n("label"), **position}}
    return {"layer": [heat, text], "data": {"name": "confusion"}, "height": HEIGHT, "title": "Confusion matrix",
            "width": WIDTH, "datasets": {"confusion": rows}}


def roc_label(model: str, roc: dict, aucs: dict[str, float] | None) -> str:
    """A model's legend label: its name with its AUC, or why it has no curve."""
    if aucs and model in aucs and aucs[model] == aucs[model]:
        return f"{model} (AUC {aucs[model]:.3f})"
    if not roc["fpr"]:
        return f"{model} (one class: no ROC)"
    return model


def roc_chart(rocs: dict[str, dict], aucs: dict[str, float] | None = None) -> dict:
    """ROC curves, one per model: `rocs` maps a model name to `metrics.roc_curve`'s {fpr, tpr,
    threshold}. Vertices are joined by straight lines in their order along the curve (`step`):
    tied scores are a diagonal segment, so a constant classifier draws the chance diagonal (a
    step-after line drew it as a perfect classifier's corner). The curves are drawn over the
    dashed chance line, each model in its fixed colour, the first model (the one picked) on top.
    A model whose curve is empty (one class only) keeps one row with no rates, so its label
    still names it in the legend."""
    if not rocs:
        return _empty_spec("no ROC curve")
    labels = [roc_label(model, roc, aucs) for model, roc in rocs.items()]
    datasets = {"chance": [{"fpr": 0, "tpr": 0}, {"fpr": 1, "tpr": 1}]}
    color = _n("model", legend={"labelLimit": 240}, scale={"domain": labels, "range": model_colors(rocs)},
               title=None)
    curves = []
    # one layer per model, the picked one (first) drawn last: on top where the curves meet
    for i, (label, roc) in reversed(list(enumerate(zip(labels, rocs.values(), strict=True)))):
        fpr = list(roc["fpr"]) or [None]
        datasets[f"roc-{i}"] = _records({"model": [label] * len(fpr), "step": range(len(fpr)), "fpr": fpr,
                                         "tpr": list(roc["tpr"]) or [None],
                                         "threshold": list(roc.get("threshold") or [None] * len(fpr))})
        curves.append({
            "data": {"name": f"roc-{i}"},
            "mark": {"type": "line", "invalid": "break-paths-filter-domains", "point": {"filled": True, "size": 18},
                     "strokeWidth": 2.5},
            "encoding": {
                # legend on the right: below the plot it took the height the plot needs (Streamlit
                # fits the whole chart, legend included, into the spec's height)
                "color": color,
                "order": _q("step"),
                "tooltip": [_n("model"), _q("threshold", format=".4f", title="threshold (score >=)"),
                            _q("fpr", format=".3f"), _q("tpr", format=".3f")],
                "x": _q("fpr", scale={"domain": [0, 1]}, title="false positive rate"),
                "y": _q("tpr", scale={"domain": [0, 1]}, title="true positive rate (recall)"),
            },
        })
    diagonal = {"data": {"name": "chance"},
                "mark": {"type": "line", "color": CHANCE_COLOR, "strokeDash": [4, 4], "strokeWidth": 1.5},
                "encoding": {"x": _q("fpr"), "y": _q("tpr")}}
    return {"layer": [diagonal, *curves], "height": HEIGHT + 40, "padding": TITLE_PADDING,
            "title": "ROC curve (dashed: chance)", "width": WIDTH, "datasets": datasets}


def accuracy_by_magnitude_chart(rows: pd.DataFrame, metric: str = "balanced_accuracy") -> dict:
    """Accuracy per magnitude bin, one line per model.

    `rows` has columns model, bin_lo, bin_hi, count and `metric` (accuracy or balanced_accuracy).
    """
    if rows.empty or metric not in rows.columns:
        return _empty_spec("no magnitude bins")
    lo, hi = rows["bin_lo"].to_numpy(dtype=np.float64), rows["bin_hi"].to_numpy(dtype=np.float64)
    mid = np.sqrt(np.maximum(lo, 1) * np.maximum(hi, 1))
    models = list(dict.fromkeys(rows["model"]))
    log = float(hi.max()) >= 10 * max(float(lo.min()), 1.0)
    # NaN (a bin with one class: balanced accuracy undefined) breaks the line: a gap, not a 0
    values = rows[metric].to_numpy(dtype=np.float64)
    data = _records({**{c: rows[c] for c in rows.columns if c != metric}, metric: values, "mid": mid})
    line = {
        "data": {"name": "bins"},
        "mark": {"type": "line", "invalid": "break-paths-filter-domains", "point": True},
        "encoding": {
            "color": _n("model", scale={"domain": models, "range": model_colors(models)}),
            "tooltip": [_n("model"), _q("bin_lo", format=",.0f"), _q("bin_hi", format=",.0f"), _q("count"),
                        _q(metric, format=".3f")],
            "x": _q("mid", scale={"type": "log" if log else "linear"}, title="n (bin centre)"),
            "y": _q(metric, scale={"domain": [0, 1]}, title=metric.replace("_", " ")),
        },
    }
    rule = {"data": {"name": "half"}, "mark": {"type": "rule", "color": CHANCE_COLOR, "strokeDash": [4, 4]},
            "encoding": {"y": _q("y")}}
    title = f"{metric.replace('_', ' ').capitalize()} by magnitude"
    if np.isnan(values).any():
        title = {"text": title, "subtitle": "gaps: bins holding one class only, where it is undefined"}
    return {"layer": [line, rule], "height": HEIGHT, "padding": TITLE_PADDING, "title": title, "width": WIDTH,
            "datasets": {"bins": data, "half": [{"y": 0.5}]}}


# --- prime density ----------------------------------------------------------------------


def density_chart(table: pd.DataFrame, measure: str = "count", log_x: bool = False,
                  model_share: pd.Series | None = None, model_name: str | None = None) -> alt.Chart:
    """Exact primes per bin against x/ln x and li(x), optionally with a model's outputs.

    `table` has columns bin_lo, bin_hi, count, expected_x_ln_x, expected_li (expected counts per
    bin) and width. `measure` is "count" (primes per bin) or "density" (primes per integer).
    `model_share` (same length as `table`) is the share of the model's outputs in each bin,
    drawn on its own right-hand axis.
    """
    if measure not in ("count", "density"):
        raise ValueError(f"measure must be 'count' or 'density', got {measure!r}")
    if table.empty:
        return _empty("no bins")
    data = pd.DataFrame({"bin_lo": table["bin_lo"], "bin_hi": table["bin_hi"]})
    width = table["width"] if "width" in table.columns else (table["bin_hi"] - table["bin_lo"])
    width = width.astype("float64").where(width > 0, 1.0)
    divide = width if measure == "density" else 1.0
    data["exact (sympy / sieve)"] = table["count"] / divide
    # bins the counting budget left to li(x) are drawn lighter and say so
    data["count kind"] = (table["exact"].map({True: "exact", False: "li(x) estimate"})
                          if "exact" in table.columns else "exact")
    data["x / ln x"] = table["expected_x_ln_x"] / divide
    data["li(x)"] = table["expected_li"] / divide
    data["mid"] = (data["bin_lo"] + data["bin_hi"]) / 2
    y_title = "primes per bin" if measure == "count" else "primes per integer"
    x_scale = alt.Scale(type="log") if log_x else alt.Scale(zero=False)
    bars = (
        alt.Chart(data)
        .mark_bar(color="#6c3bd1")
        .encode(
            x=alt.X("bin_lo:Q", title="x", scale=x_scale),
            x2="bin_hi:Q",
            y=alt.Y("exact (sympy / sieve):Q", title=y_title),
            y2=alt.datum(0),
            opacity=alt.Opacity("count kind:N", title=None, scale=alt.Scale(
                domain=["exact", "li(x) estimate"], range=[0.35, 0.12])),
            tooltip=[alt.Tooltip("bin_lo:Q", format=",.0f", title="from"),
                     alt.Tooltip("bin_hi:Q", format=",.0f", title="to"),
                     alt.Tooltip("exact (sympy / sieve):Q", format=",.6g", title="count"),
                     alt.Tooltip("count kind:N", title="count is"),
                     alt.Tooltip("x / ln x:Q", format=",.6g"), alt.Tooltip("li(x):Q", format=",.6g")],
        )
    )
    curves = data.melt(id_vars=["mid"], value_vars=["exact (sympy / sieve)", "x / ln x", "li(x)"],
                       var_name="series", value_name="value")
    lines = (
        alt.Chart(curves)
        .mark_line(point=len(data) <= 40)
        .encode(
            x=alt.X("mid:Q", scale=x_scale),
            y=alt.Y("value:Q", title=y_title),
            color=alt.Color("series:N", title=None,
                            scale=alt.Scale(domain=["exact (sympy / sieve)", "x / ln x", "li(x)"],
                                            range=["#6c3bd1", CHANCE_COLOR, "#2a9d8f"])),
            strokeDash=alt.StrokeDash("series:N", title=None,
                                      scale=alt.Scale(domain=["exact (sympy / sieve)", "x / ln x", "li(x)"],
                                                      range=[[1, 0], [6, 3], [2, 2]])),
            tooltip=[alt.Tooltip("mid:Q", format=",.0f", title="x"), "series:N",
                     alt.Tooltip("value:Q", format=",.6g")],
        )
    )
    chart = alt.layer(bars, lines)
    if model_share is not None:
        overlay = pd.DataFrame({"mid": data["mid"], "share": list(model_share)})
        label = f"{model_name or 'model'} outputs"
        overlay["series"] = label
        model_line = (
            alt.Chart(overlay)
            .mark_line(point=alt.OverlayMarkDef(color="#f4a261"), color="#f4a261")
            .encode(
                x=alt.X("mid:Q", scale=x_scale),
                y=alt.Y("share:Q", title=f"share of {label} per bin", axis=alt.Axis(format="%", titleColor="#f4a261")),
                tooltip=[alt.Tooltip("mid:Q", format=",.0f", title="x"), "series:N",
                         alt.Tooltip("share:Q", format=".3%")],
            )
        )
        chart = alt.layer(alt.layer(bars, lines), model_line).resolve_scale(y="independent")
    title = "Primes per bin" if measure == "count" else "Prime density"
    return chart.properties(title=f"{title}: exact vs x/ln x and li(x)", width=WIDTH, height=HEIGHT + 140)


# --- the learned sieve (Overview, Train) --------------------------------------------------


def divisible_share_frame(history: pd.DataFrame) -> pd.DataFrame:
    """Long form of the history's per-batch `divisible_share` ({"3": share, ...}): one row per
    (batch, p) with `divisible` and `vs_chance` = divisible * p. Batches recorded before the
    history had the field are left out."""
    rows = []
    if "divisible_share" in history.columns:
        for batch, shares in zip(history["batch"], history["divisible_share"], strict=True):
            if not isinstance(shares, dict):
                continue
            for p, share in shares.items():
                if share is None or share != share:
                    continue
                rows.append({"batch": int(batch), "p": int(p), "divisible": float(share),
                             "vs_chance": float(share) * int(p)})
    return pd.DataFrame(rows, columns=["batch", "p", "divisible", "vs_chance"])


# The heatmap's palette: a perfect sieve (0) darkest, chance (1) neutral, above chance (the
# generator prefers multiples of p) in a second hue, so "dark" can only mean "learned".
SIEVE_PALETTE = {"domain": [0.0, 1.0, 2.0], "range": ["#1b0a4a", "#f2f0ea", "#c26a00"]}


def sieve_heatmap(history: pd.DataFrame, planned: int | None = None) -> alt.Chart:
    """The sieve emerging batch by batch: a cell per (online batch, prime p) coloured by the
    share of that batch's outputs divisible by p relative to chance (share * p): 1 = chance
    (neutral), 0 = the generator avoids every multiple of p (a perfect sieve, darkest), 2 or more
    = twice chance (orange).

    `planned`: the model's last planned batch (its batches so far plus what the running run has
    left). The x axis holds one column for every batch from the first recorded one to `planned`,
    so a column keeps its width from the first batch to the last instead of stretching across
    the chart and narrowing as batches arrive."""
    frame = divisible_share_frame(history)
    if frame.empty:
        return _empty("Learned preferences: no batches with divisible_share yet")
    primes = sorted(frame["p"].unique().tolist())
    first, last = int(frame["batch"].min()), int(frame["batch"].max())
    last = max(last, int(planned or 0))
    columns = list(range(first, last + 1))
    every = max(1, len(columns) // 15)  # about 15 labels however many batches are planned
    ticks = [b for b in columns if (b - first) % every == 0 or b == last]
    return (
        alt.Chart(frame)
        .mark_rect()
        .encode(
            x=alt.X("batch:O", title="online batch (one column per planned batch)",
                    scale=alt.Scale(domain=columns, paddingInner=0.06),
                    axis=alt.Axis(labelAngle=0, values=ticks, labelOverlap=True)),
            y=alt.Y("p:O", title="p", sort=primes, axis=alt.Axis(labelOverlap=False)),
            color=alt.Color(
                "vs_chance:Q",
                title=["multiples of p / chance"],
                scale=alt.Scale(domain=SIEVE_PALETTE["domain"], range=SIEVE_PALETTE["range"], clamp=True,
                                interpolate="lab"),
                legend=alt.Legend(
                    values=[0, 1, 2], gradientLength=150, labelLimit=200,
                    labelExpr="datum.value == 0 ? '0: perfect sieve (dark)' : datum.value == 1 ? "
                              "'1: chance' : '2+: twice chance'"),
            ),
            tooltip=["batch:O", "p:O", alt.Tooltip("divisible:Q", format=".2%", title="divisible by p"),
                     alt.Tooltip("vs_chance:Q", format=".2f", title="share / chance (1 = chance, 0 = sieve)")],
        )
        .properties(title="Learned sieve per batch: multiples of p / chance (dark = avoided, light = chance)",
                    width=WIDTH, height=alt.Step(11))
    )


# --- primes of any size ------------------------------------------------------------------


TESTS_SERIES = ("random odd candidates", "learned sieve", "classic sieve (same primes)")


def tests_per_prime_chart(summary: dict) -> dict:
    """Primality tests per prime found: random odd candidates, the model's learned sieve and a
    classic trial-division sieve by the same primes, with the tests the learned sieve saves.

    `summary` is `optimus.sampling.anysize.sample_any(...).summary` (keys tests_per_prime,
    random_odd_tests_per_prime, sieve_tests_per_prime, density_exact).
    """
    learned = summary.get("tests_per_prime")
    if not learned:
        return _empty_spec("no prime found: no tests-per-prime figure")
    random_odd = summary["random_odd_tests_per_prime"]
    note = "" if summary.get("density_exact") else " (li(x) estimate)"
    rows = _records({
        "method": list(TESTS_SERIES),
        "tests": [random_odd, learned, summary["sieve_tests_per_prime"]],
        "saved": [0.0, random_odd - learned, random_odd - summary["sieve_tests_per_prime"]],
        "kind": [f"expected{note}", "measured", f"expected{note}"],
    })
    saved = random_odd - learned
    return {
        "data": {"name": "tests"},
        "mark": {"type": "bar", "size": 22},
        "encoding": {
            "color": _n("method", legend=None, scale={"domain": list(TESTS_SERIES),
                                                      "range": [CHANCE_COLOR, MODEL_COLORS["default"], "#2a9d8f"]}),
            "tooltip": [_n("method"), _q("tests", format=",.1f"),
                        _q("saved", format=",.1f", title="tests saved vs random"), _n("kind")],
            "x": _q("tests", title="primality tests per prime found"),
            "y": _n("method", axis={"labelLimit": 220}, sort=list(TESTS_SERIES), title=None),
        },
        "height": {"step": 34},
        "title": f"Tests per prime: the learned sieve saves {saved:,.1f} of {random_odd:,.1f}",
        "width": WIDTH,
        "datasets": {"tests": rows},
    }
