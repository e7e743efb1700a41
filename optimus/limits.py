"""Per-request limits, in one place, shared by the CLI and the app.

They keep one request (a visitor's click or one CLI call) from exhausting this 2-core, 24 GiB
machine's memory or holding it for hours. The app shows them next to its widgets.
"""

EXACT_LIMIT = 2**53  # every integer below this is exact in float64, so in our pipelines
MAX_DENSITY_HI = 10**18  # prime counting range (primecount: pi(10^18) in ~45 s on 2 cores)
MAX_COUNT_SECONDS = 60.0  # estimated prime-counting time a density request may take
MIN_DIGITS, MAX_DIGITS = 3, 1233  # any-size sampling: 1233 digits is the size of 4096 bits
MIN_BITS, MAX_BITS = 10, 4096  # 4096-bit BPSW tests take ~5 ms each on this machine
MAX_SAMPLE_SECONDS = 60.0  # estimated time an any-size sampling request may take
# distinct primes asked for, as a share of the primes of the range: random distinct draws slow
# down like a coupon collector near all of them
MAX_PRIME_SHARE = 0.5
MAX_BINS = 1_000
MAX_SAMPLES = 100_000  # generator samples per request
MAX_CLASSIFY = 100_000  # integers per classification request
MAX_BATCHES = 10_000  # online batches per training run
MAX_BATCH_SIZE = 20_000  # latent integers per online batch
MAX_STEPS = 1_000  # gradient steps per online batch
MAX_LATENT = 10**9  # latent integers are drawn from [lo, hi] with hi at most this
MAX_EWC_LAMBDA = 1e9
