"""The look every chart of the app shares: its size, title room and colours (a model keeps its
colour across charts). Plain values, no Altair: the Overview's chart (optimus/app/charts_sieve.py)
is drawn without importing it."""

WIDTH = "container"
HEIGHT = 220
# Room above a chart's title: at Vega's default 5 px its top was cut off in the page.
TITLE_PADDING = {"top": 14, "left": 5, "right": 5, "bottom": 5}

# Series colours kept the same on every page: a model keeps its colour across charts.
MODEL_COLORS = {"default": "#6c3bd1", "seed": "#9e9e9e"}
CHANCE_COLOR = "#e4572e"
_PALETTE = ["#2a9d8f", "#e9c46a", "#264653", "#f4a261", "#8ab17d"]


def model_colors(models) -> list[str]:
    """A colour per model (in order, without repeats): `default` and `seed` their own, others
    from a palette."""
    extra = iter(_PALETTE * 4)
    return [MODEL_COLORS.get(m) or next(extra) for m in dict.fromkeys(models)]
