"""Altair charts for the continual-learning page: pure functions of `forgetting.run_benchmark`'s
result (a plain dict), so they can be built and checked in tests with `chart.to_dict()`.

Only altair and pandas here: no Streamlit, no TensorFlow.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

CELL = 34  # pixels per cell of an accuracy matrix: three 5-task matrices fit a 920 px column
# The page's main column is about 920 px wide at 1400 px and 820 px at 1280 px (layout "wide"
# minus the sidebar): a chart wider than that is cut off (the BWT panel once measured 1,116 px
# in 920 px; the pair at 880 px overflowed the 820 px column by its last bar).
COLUMN_WIDTH = 780
AXIS_ALLOWANCE = 90  # pixels a panel's y axis, its title and padding take beside its plot
# Balanced accuracy 0.5 is chance for every task, so the colour scale starts there.
ACCURACY_DOMAIN = (0.5, 1.0)
METRICS = {"acc": "ACC", "bwt": "BWT", "forgetting": "Forgetting"}


def method_order(result: dict) -> list[str]:
    """The methods in the order they were asked for (a saved JSON file's keys come back sorted)."""
    asked = (result.get("config") or {}).get("methods") or []
    return [m for m in asked if m in result["methods"]] + [m for m in result["methods"] if m not in asked]


def matrix_frame(R, tasks) -> pd.DataFrame:
    """Long form of an accuracy matrix: one row per (after training on, evaluated on) pair."""
    rows = []
    for i, row in enumerate(R):
        for j, value in enumerate(row):
            rows.append({"after": f"{i + 1}. {tasks[i]}", "on": f"{j + 1}. {tasks[j]}", "i": i, "j": j,
                         "accuracy": float(value), "seen": j <= i})
    return pd.DataFrame(rows)


def accuracy_matrix_chart(R, tasks, title: str = "") -> alt.Chart:
    """Heatmap of R[i][j]: rows = after training on task i, columns = evaluated on task j.
    Cells above the diagonal (tasks not trained yet) are drawn faded."""
    frame = matrix_frame(R, tasks)
    order_after = list(dict.fromkeys(frame["after"]))
    order_on = list(dict.fromkeys(frame["on"]))
    base = alt.Chart(frame).encode(
        x=alt.X("on:N", sort=order_on, title="evaluated on task", axis=alt.Axis(labelAngle=-30)),
        y=alt.Y("after:N", sort=order_after, title="after training on task"),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("accuracy:Q", title="balanced accuracy",
                        scale=alt.Scale(domain=list(ACCURACY_DOMAIN), scheme="viridis", clamp=True)),
        opacity=alt.condition("datum.seen", alt.value(1.0), alt.value(0.45)),
        tooltip=[alt.Tooltip("after:N", title="after"), alt.Tooltip("on:N", title="on"),
                 alt.Tooltip("accuracy:Q", format=".3f")],
    )
    labels = base.mark_text(fontSize=11).encode(
        text=alt.Text("accuracy:Q", format=".2f"),
        color=alt.condition("datum.accuracy > 0.8", alt.value("black"), alt.value("white")),
    )
    size = CELL * max(len(tasks), 1)
    return (cells + labels).properties(title=title, width=size, height=size)


def accuracy_matrices_chart(result: dict, columns: int = 3) -> alt.Chart:
    """One accuracy-matrix heatmap per method, `columns` per row, on a shared colour scale."""
    charts = []
    for method in method_order(result):
        r = result["methods"][method]
        title = f"{method}: ACC {r['acc']:.2f}, BWT {r['bwt']:+.2f}"
        if "lambda" in r:
            title += f" (λ {r['lambda']:g})"
        charts.append(accuracy_matrix_chart(r["R"], result["tasks"], title))
    if not charts:
        return alt.Chart(pd.DataFrame({"text": ["no methods"]})).mark_text().encode(text="text:N")
    # the colour legend below the matrices: on their right it was cut off past the column
    return alt.concat(*charts, columns=columns).resolve_scale(color="shared").configure_legend(
        orient="bottom", direction="horizontal", gradientLength=240)


def summary_frame(result: dict) -> pd.DataFrame:
    """One row per method with ACC, BWT, forgetting, seconds and lambda (if any)."""
    rows = []
    for method in method_order(result):
        r = result["methods"][method]
        rows.append({"method": method, "ACC": r["acc"], "BWT": r["bwt"], "Forgetting": r["forgetting"],
                     "seconds": r["seconds"], "lambda": r.get("lambda")})
    return pd.DataFrame(rows, columns=["method", "ACC", "BWT", "Forgetting", "seconds", "lambda"])


def summary_chart(result: dict, metrics=("acc", "bwt")) -> alt.Chart:
    """Bars per method, one panel per metric (ACC, BWT by default) with its own y scale:
    ACC is in [0, 1], BWT is usually negative (forgetting)."""
    methods = method_order(result)
    panels = []
    for key in metrics:
        frame = pd.DataFrame({"method": methods, "value": [result["methods"][m][key] for m in methods]})
        bars = alt.Chart(frame).mark_bar().encode(
            x=alt.X("method:N", sort=methods, title=None),
            y=alt.Y("value:Q", title=METRICS[key]),
            color=alt.Color("method:N", sort=methods, legend=None),
            tooltip=["method:N", alt.Tooltip("value:Q", format=".3f", title=METRICS[key])],
        )
        text = bars.mark_text(dy=-6).encode(text=alt.Text("value:Q", format=".2f"))
        zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="#888").encode(y="y:Q")
        panels.append((bars + text + zero).properties(title=METRICS[key], width=_panel_width(len(methods), len(metrics)),
                                                      height=220))
    return alt.hconcat(*panels).resolve_scale(y="independent")


def task_curves_frame(result: dict) -> pd.DataFrame:
    """Long form of every method's R: one row per (method, after task i, task j) with j <= i."""
    rows = []
    tasks = result["tasks"]
    for method in method_order(result):
        r = result["methods"][method]
        for i, row in enumerate(r["R"]):
            for j, value in enumerate(row[: i + 1]):
                rows.append({"method": method, "after": i + 1, "task": f"{j + 1}. {tasks[j]}",
                             "accuracy": float(value)})
    return pd.DataFrame(rows, columns=["method", "after", "task", "accuracy"])


def task_curves_chart(result: dict, columns: int = 3) -> alt.Chart:
    """Accuracy on each task over time: per method, a line per task from the moment it is
    trained (x: tasks trained so far); a line that falls is a task being forgotten."""
    frame = task_curves_frame(result)
    if frame.empty:
        return alt.Chart(pd.DataFrame({"text": ["no methods"]})).mark_text().encode(text="text:N")
    methods = method_order(result)
    tasks = list(dict.fromkeys(frame["task"]))
    chart = alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("after:O", title="after training on task", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("accuracy:Q", title="balanced accuracy", scale=alt.Scale(domain=[0.4, 1.0], clamp=True)),
        color=alt.Color("task:N", title="task", sort=tasks),
        tooltip=["method:N", "task:N", "after:O", alt.Tooltip("accuracy:Q", format=".3f")],
    ).properties(width=200, height=160)
    return chart.facet(facet=alt.Facet("method:N", sort=methods, title=None), columns=columns).properties(
        title="Accuracy per task over time (a falling line is forgetting)")


def spread_frame(saved: dict) -> pd.DataFrame:
    """One row per (method, metric, seed) from `forgetting.run_seeds`'s per-seed results."""
    rows = []
    for seed, run in zip(saved["seeds"], saved["runs"], strict=True):
        for method, r in run["methods"].items():
            for key in ("acc", "bwt"):
                rows.append({"method": method, "metric": METRICS[key], "seed": seed, "value": float(r[key])})
    return pd.DataFrame(rows, columns=["method", "metric", "seed", "value"])


def spread_chart(saved: dict) -> alt.Chart:
    """ACC and BWT per method over seeds: a dot per seed, a bar at the mean and a rule from min
    to max; one panel per metric with its own y scale."""
    frame = spread_frame(saved)
    methods = method_order(saved["runs"][0]) if saved.get("runs") else []
    panels = []
    for key in ("acc", "bwt"):
        data = frame[frame["metric"] == METRICS[key]]
        base = alt.Chart(data).encode(x=alt.X("method:N", sort=methods, title=None,  # every method named
                                              axis=alt.Axis(labelAngle=-45, labelOverlap=False)))
        mean = base.mark_bar(opacity=0.55).encode(
            y=alt.Y("mean(value):Q", title=f"{METRICS[key]} (mean, min-max over seeds)"),
            color=alt.Color("method:N", sort=methods, legend=None),
            tooltip=["method:N", alt.Tooltip("mean(value):Q", format=".3f", title="mean"),
                     alt.Tooltip("min(value):Q", format=".3f", title="min"),
                     alt.Tooltip("max(value):Q", format=".3f", title="max"),
                     alt.Tooltip("count(value):Q", title="seeds")],
        )
        span = base.mark_rule(strokeWidth=2).encode(y="min(value):Q", y2="max(value):Q")
        dots = base.mark_circle(size=40, color="black").encode(
            y="value:Q", tooltip=["method:N", "seed:O", alt.Tooltip("value:Q", format=".3f")])
        zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="#888").encode(y="y:Q")
        panels.append((mean + span + dots + zero).properties(
            title=f"{METRICS[key]} over {len(saved['seeds'])} seed(s)", width=_panel_width(len(methods), 2),
            height=220))
    return alt.hconcat(*panels).resolve_scale(y="independent")


def _panel_width(bars: int, panels: int, total: int = COLUMN_WIDTH) -> int:
    """A panel's plot width: 60 px a bar, at least 180, and no more than its share of the column."""
    return max(min(60 * bars, total // panels - AXIS_ALLOWANCE), 120)
