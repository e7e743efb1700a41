"""Per-request limits, in one place, shared by the CLI and the app.

They keep one request (a visitor's click or one CLI call) from exhausting this 2-core, 24 GiB
machine's memory or holding it for hours. The app shows them next to its widgets.
"""

EXACT_LIMIT = 2**53  # every integer below this is exact in float64, so in our pipelines
MAX_DENSITY_HI = 10**10  # prime counting range
MAX_BINS = 1_000
MAX_SAMPLES = 100_000  # generator samples per request
MAX_CLASSIFY = 100_000  # integers per classification request
MAX_BATCHES = 10_000  # online batches per training run
MAX_BATCH_SIZE = 20_000  # latent integers per online batch
MAX_STEPS = 1_000  # gradient steps per online batch
MAX_LATENT = 10**9  # latent integers are drawn from [lo, hi] with hi at most this
MAX_EWC_LAMBDA = 1e9
