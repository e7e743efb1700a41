"""Altair chart builders for the app: small pure functions from data to a chart spec.

Each function takes plain data (a pandas DataFrame, a dict or a list of numbers) and returns an
`altair` chart; nothing here reads files, imports Streamlit or TensorFlow, or computes primes,
so every chart can be built and checked in a unit test with `chart.to_dict()`.
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
    builder here returns."""
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


def _model_scale(models) -> alt.Scale:
    """A colour scale that gives `default` and `seed` their fixed colours."""
    names = list(dict.fromkeys(models))
    return alt.Scale(domain=names, range=model_colors(names))


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


# --- the generator's outputs ------------------------------------------------------------


def output_histogram(samples: pd.DataFrame, bins: int | None = None) -> alt.Chart:
    """Outputs per magnitude bin (log bins), with the prime share among them and the chance curve.

    `samples` has columns `n` and `is_prime`. Bars: outputs per bin (left axis). Lines (right
    axis): the share of the bin's outputs that are prime, and 2 / ln(x), the density of primes
    among odd integers near x (the prime number theorem), which is what random odd numbers of
    that size would give.
    """
    if samples.empty:
        return _empty("no samples")
    if bins is None:  # about 4 outputs per bin's prime share at least, at most 30 bins
        bins = int(min(30, max(5, math.sqrt(len(samples)) / 2)))
    edges, index = magnitude_bins(samples["n"].to_numpy(dtype=np.int64), bins)  # the one log binning
    bins = len(edges) - 1  # fewer where the outputs span fewer integers
    grouped = (
        pd.DataFrame({"bin": index, "is_prime": samples["is_prime"].astype(bool).to_numpy()})
        .groupby("bin", observed=True)["is_prime"]
        .agg(["size", "mean"])
        .reindex(range(bins), fill_value=0)
    )
    table = pd.DataFrame(
        {
            "bin_lo": edges[:-1],
            "bin_hi": edges[1:],
            "outputs": grouped["size"].to_numpy(),
            "prime share": grouped["mean"].where(grouped["size"] > 0).to_numpy(),
        }
    )
    table["mid"] = [math.sqrt(a * b) for a, b in zip(table["bin_lo"], table["bin_hi"], strict=True)]
    table["chance (2 / ln x)"] = [min(1.0, 2.0 / math.log(m)) if m > math.e else 1.0 for m in table["mid"]]
    x_scale = alt.Scale(type="log")
    bars = (
        alt.Chart(table)
        .mark_bar(opacity=0.55, color="#6c3bd1")
        .encode(
            x=alt.X("bin_lo:Q", title="output n (log scale)", scale=x_scale),
            x2="bin_hi:Q",
            y=alt.Y("outputs:Q", title="outputs per bin"),
            y2=alt.datum(0),  # without it a bar with x and x2 is a horizontal range
            tooltip=[
                alt.Tooltip("bin_lo:Q", format=",.0f", title="from"),
                alt.Tooltip("bin_hi:Q", format=",.0f", title="to"),
                "outputs:Q",
                alt.Tooltip("prime share:Q", format=".3f"),
            ],
        )
    )
    shares = table.melt(
        id_vars=["mid"], value_vars=["prime share", "chance (2 / ln x)"], var_name="curve", value_name="share"
    ).dropna()
    lines = (
        alt.Chart(shares)
        .mark_line(point=True)
        .encode(
            x=alt.X("mid:Q", scale=x_scale),
            y=alt.Y("share:Q", title="share prime", axis=alt.Axis(format="%")),
            color=alt.Color(
                "curve:N",
                title=None,
                scale=alt.Scale(domain=["prime share", "chance (2 / ln x)"], range=["#2a9d8f", CHANCE_COLOR]),
            ),
            tooltip=[alt.Tooltip("mid:Q", format=",.0f", title="x"), "curve:N", alt.Tooltip("share:Q", format=".3f")],
        )
    )
    return (
        alt.layer(bars, lines)
        .resolve_scale(y="independent")
        .properties(title="Outputs over magnitude", width=WIDTH, height=HEIGHT + 40)
    )


def residue_chart(residues: pd.DataFrame) -> alt.Chart:
    """"What the network learned": share of outputs in each residue class mod small primes.

    `residues` has columns model, p, residue, share (one row per model, prime and residue).
    One heatmap per model, side by side: a row per prime p, a column per residue r, coloured by
    share * p, the share relative to chance (random odd integers put 1/p in every class, so 1.0
    is chance). Residue 0 (a multiple of p: never prime unless n == p) is outlined; a generator
    that learned divisibility by p leaves that cell near 0.
    """
    if residues.empty:
        return _empty("no outputs")
    data = residues.copy()
    data["vs_chance"] = data["share"] * data["p"]
    data["class"] = data["residue"].map(lambda r: "0: multiple of p" if r == 0 else "non-zero")
    models = list(dict.fromkeys(data["model"]))
    primes = sorted(int(p) for p in data["p"].unique())
    base = alt.Chart().encode(
        x=alt.X("residue:O", title="n mod p", axis=alt.Axis(labelAngle=0, labelFontSize=9)),
        y=alt.Y("p:O", title="p", sort=primes, axis=alt.Axis(labelOverlap=False)),
    )
    cells = base.mark_rect().encode(
        color=alt.Color(
            "vs_chance:Q",
            title=["share / chance", "(1 = random)"],
            scale=alt.Scale(scheme="purpleorange", domain=[0, 2], domainMid=1, clamp=True, reverse=True),
        ),
        tooltip=["model:N", "p:O", "residue:O", "class:N", alt.Tooltip("share:Q", format=".2%"),
                 alt.Tooltip("vs_chance:Q", format=".2f", title="share / chance")],
    )
    zero = (
        base.transform_filter(alt.datum.residue == 0)
        .mark_rect(fill=None, stroke=CHANCE_COLOR, strokeWidth=2)
    )
    return (
        alt.layer(cells, zero, data=data)
        .properties(width=alt.Step(13 if len(models) <= 2 else 8), height=alt.Step(18))
        .facet(column=alt.Column("model:N", sort=models, title=None, header=alt.Header(labelFontSize=13)))
        .properties(title="Share of outputs per residue class, relative to chance (residue 0 outlined)")
    )


def model_comparison_chart(table: pd.DataFrame,
                           metrics=("hit_rate", "distinct_prime_rate", "baseline")) -> alt.Chart:
    """Grouped bars of a few generator metrics for several models.

    `table` has a `model` column and one column per metric.
    """
    present = [m for m in metrics if m in table.columns]
    if table.empty or not present:
        return _empty("nothing to compare")
    long = table[["model", *present]].melt("model", var_name="metric", value_name="value")
    models = list(dict.fromkeys(table["model"]))
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            x=alt.X("metric:N", title=None, sort=list(present), axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("model:N", sort=models),
            y=alt.Y("value:Q", title=None),
            color=alt.Color("model:N", scale=_model_scale(models)),
            tooltip=["model:N", "metric:N", alt.Tooltip("value:Q", format=".4f")],
        )
        .properties(title="Models side by side", width=WIDTH, height=HEIGHT)
    )


# --- the discriminator ------------------------------------------------------------------


def confusion_heatmap(confusion: dict) -> alt.Chart:
    """2 x 2 heatmap of {tp, fp, fn, tn}, actual (sympy) in rows, predicted in columns."""
    cells = [
        ("prime", "prime", "tp"),
        ("prime", "not prime", "fn"),
        ("not prime", "prime", "fp"),
        ("not prime", "not prime", "tn"),
    ]
    data = pd.DataFrame(
        [{"actual": a, "predicted": p, "cell": c.upper(), "count": int(confusion.get(c, 0))} for a, p, c in cells]
    )
    total = max(int(data["count"].sum()), 1)
    data["share"] = data["count"] / total
    data["label"] = [f"{c}: {k:,}" for c, k in zip(data["cell"], data["count"], strict=True)]
    order = ["prime", "not prime"]
    base = alt.Chart(data).encode(
        x=alt.X("predicted:N", sort=order, title="predicted (discriminator)", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("actual:N", sort=order, title="actual (sympy)"),
    )
    heat = base.mark_rect().encode(
        color=alt.Color("count:Q", scale=alt.Scale(scheme="purples"), legend=None),
        tooltip=["actual:N", "predicted:N", "count:Q", alt.Tooltip("share:Q", format=".2%")],
    )
    text = base.mark_text(fontSize=16).encode(
        text="label:N",
        color=alt.condition(alt.datum.share > 0.4, alt.value("white"), alt.value("black")),
    )
    return (heat + text).properties(title="Confusion matrix", width=WIDTH, height=HEIGHT)


def roc_frame(rocs: dict[str, dict], aucs: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per ROC vertex: model (its legend label, with the AUC), step (the vertex's order
    along the curve), fpr, tpr, threshold. A model whose curve is empty (one class only) keeps one
    row with no rates, so its label still names it in the legend."""
    frames = []
    for model, roc in rocs.items():
        label = model
        if aucs and model in aucs and aucs[model] == aucs[model]:
            label = f"{model} (AUC {aucs[model]:.3f})"
        elif not roc["fpr"]:
            label = f"{model} (one class: no ROC)"
        fpr = list(roc["fpr"]) or [None]
        frames.append(pd.DataFrame({
            "model": label, "step": range(len(fpr)), "fpr": fpr, "tpr": list(roc["tpr"]) or [None],
            "threshold": list(roc.get("threshold") or [None] * len(fpr)),
        }))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["model", "step", "fpr", "tpr", "threshold"])


def roc_chart(rocs: dict[str, dict], aucs: dict[str, float] | None = None) -> alt.Chart:
    """ROC curves, one per model: `rocs` maps a model name to `metrics.roc_curve`'s {fpr, tpr,
    threshold}. Vertices are joined by straight lines in their order along the curve (`step`):
    tied scores are a diagonal segment, so a constant classifier draws the chance diagonal (a
    step-after line drew it as a perfect classifier's corner). The curves are drawn over the
    dashed chance line, each model in its fixed colour, the first model (the one picked) on top."""
    data = roc_frame(rocs, aucs)
    if data.empty:
        return _empty("no ROC curve")
    labels = list(dict.fromkeys(data["model"]))
    names = list(rocs)
    scale = alt.Scale(domain=labels, range=list(_model_scale(names).range))
    def curve(label: str) -> alt.Chart:
        return (
            alt.Chart(data[data["model"] == label])
            .mark_line(strokeWidth=2.5, point=alt.OverlayMarkDef(size=18, filled=True),
                       invalid="break-paths-filter-domains")
            .encode(
                x=alt.X("fpr:Q", title="false positive rate", scale=alt.Scale(domain=[0, 1])),
                y=alt.Y("tpr:Q", title="true positive rate (recall)", scale=alt.Scale(domain=[0, 1])),
                # legend on the right: below the plot it took the height the plot needs (Streamlit
                # fits the whole chart, legend included, into the spec's height)
                color=alt.Color("model:N", title=None, scale=scale, legend=alt.Legend(labelLimit=240)),
                order=alt.Order("step:Q"),
                tooltip=["model:N", alt.Tooltip("threshold:Q", format=".4f", title="threshold (score >=)"),
                         alt.Tooltip("fpr:Q", format=".3f"), alt.Tooltip("tpr:Q", format=".3f")],
            )
        )

    diagonal = (
        alt.Chart(pd.DataFrame({"fpr": [0, 1], "tpr": [0, 1]}))
        .mark_line(strokeDash=[4, 4], color=CHANCE_COLOR, strokeWidth=1.5)
        .encode(x="fpr:Q", y="tpr:Q")
    )
    # one layer per model, the picked one (first) drawn last: on top where the curves meet
    return alt.layer(diagonal, *(curve(label) for label in labels[::-1])).properties(
        title="ROC curve (dashed: chance)", width=WIDTH, height=HEIGHT + 40, padding=TITLE_PADDING)


def accuracy_by_magnitude_chart(rows: pd.DataFrame, metric: str = "balanced_accuracy") -> alt.Chart:
    """Accuracy per magnitude bin, one line per model.

    `rows` has columns model, bin_lo, bin_hi, count and `metric` (accuracy or balanced_accuracy).
    """
    if rows.empty or metric not in rows.columns:
        return _empty("no magnitude bins")
    data = rows.copy()
    data["mid"] = [math.sqrt(max(a, 1) * max(b, 1)) for a, b in zip(data["bin_lo"], data["bin_hi"], strict=True)]
    models = list(dict.fromkeys(data["model"]))
    log = float(data["bin_hi"].max()) >= 10 * max(float(data["bin_lo"].min()), 1.0)
    # NaN (a bin with one class: balanced accuracy undefined) breaks the line: a gap, not a 0
    data[metric] = data[metric].astype("float64")
    chart = (
        alt.Chart(data)
        .mark_line(point=True, invalid="break-paths-filter-domains")
        .encode(
            x=alt.X("mid:Q", title="n (bin centre)", scale=alt.Scale(type="log" if log else "linear")),
            y=alt.Y(f"{metric}:Q", title=metric.replace("_", " "), scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("model:N", scale=_model_scale(models)),
            tooltip=["model:N", alt.Tooltip("bin_lo:Q", format=",.0f"), alt.Tooltip("bin_hi:Q", format=",.0f"),
                     "count:Q", alt.Tooltip(f"{metric}:Q", format=".3f")],
        )
    )
    rule = alt.Chart(pd.DataFrame({"y": [0.5]})).mark_rule(strokeDash=[4, 4], color=CHANCE_COLOR).encode(y="y:Q")
    title = f"{metric.replace('_', ' ').capitalize()} by magnitude"
    if data[metric].isna().any():
        title = alt.TitleParams(title, subtitle="gaps: bins holding one class only, where it is undefined")
    return (chart + rule).properties(title=title, width=WIDTH, height=HEIGHT, padding=TITLE_PADDING)


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


def tests_per_prime_chart(summary: dict) -> alt.Chart:
    """Primality tests per prime found: random odd candidates, the model's learned sieve and a
    classic trial-division sieve by the same primes, with the tests the learned sieve saves.

    `summary` is `optimus.sampling.anysize.sample_any(...).summary` (keys tests_per_prime,
    random_odd_tests_per_prime, sieve_tests_per_prime, density_exact).
    """
    learned = summary.get("tests_per_prime")
    if not learned:
        return _empty("no prime found: no tests-per-prime figure")
    random_odd = summary["random_odd_tests_per_prime"]
    note = "" if summary.get("density_exact") else " (li(x) estimate)"
    data = pd.DataFrame({
        "method": list(TESTS_SERIES),
        "tests": [random_odd, learned, summary["sieve_tests_per_prime"]],
        "saved": [0.0, random_odd - learned, random_odd - summary["sieve_tests_per_prime"]],
        "kind": [f"expected{note}", "measured", f"expected{note}"],
    })
    saved = random_odd - learned
    return (
        alt.Chart(data)
        .mark_bar(size=22)
        .encode(
            x=alt.X("tests:Q", title="primality tests per prime found"),
            y=alt.Y("method:N", sort=list(TESTS_SERIES), title=None, axis=alt.Axis(labelLimit=220)),
            color=alt.Color("method:N", legend=None, scale=alt.Scale(
                domain=list(TESTS_SERIES), range=[CHANCE_COLOR, MODEL_COLORS["default"], "#2a9d8f"])),
            tooltip=["method:N", alt.Tooltip("tests:Q", format=",.1f"),
                     alt.Tooltip("saved:Q", format=",.1f", title="tests saved vs random"), "kind:N"],
        )
        .properties(title=f"Tests per prime: the learned sieve saves {saved:,.1f} of {random_odd:,.1f}",
                    width=WIDTH, height=alt.Step(34))
    )
