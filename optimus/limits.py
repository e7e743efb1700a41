"""Per-request limits, in one place, shared by the CLI and the app.

They keep one request (a visitor's click or one CLI call) from exhausting this 2-core, 24 GiB
machine's memory or holding it for hours. The app shows them next to its widgets.
"""

import numpy as np

EXACT_LIMIT = 2**53  # every integer below this is exact in float64, so in our pipelines
EXACT_REAL_LIMIT = 2**52  # reals x below this give odd n = to_odd(x) = 2*floor(x)+1 below EXACT_LIMIT


def exact_reals(reals) -> bool:
    """Whether every real of a generator's outputs is finite and below EXACT_REAL_LIMIT (so its
    odd integer is exact); True for none. The one check before outputs become integers."""
    reals = np.asarray(reals)
    return reals.size == 0 or bool(np.all(np.isfinite(reals)) and reals.max() < EXACT_REAL_LIMIT)

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
MAX_METHOD_LAMBDA = 1e9  # a continual-learning method's penalty strength (TrainConfig.method_lambda)

# Integer arguments (CLI flags, URL parameters, pasted lists). The largest integer any request
# accepts is far below this, so a text is refused once its value would exceed it, before the
# value is computed: `7**30000000` is 84 million bits and took 43 s of CPU to build.
MAX_INT_BITS = 4096
MAX_INT_DIGITS = 1234  # decimal digits of 2**MAX_INT_BITS
# Rejected input is echoed up to this many characters (a 52 MB token made a 52 MB error line).
ECHO_CHARS = 40
# classify reads stdin in chunks of this many characters: memory stays bounded whatever the input.
READ_CHUNK = 1 << 16

# Network sizes, checked in TrainConfig.validate() before anything is allocated:
# `disc_hidden = 10**9` used to end in a ResourceExhaustedError on every command. A parameter
# costs up to 44 bytes while training (float32 weight, Adam's two moments, "separate" EWC's
# three float64 sums and its float64 mean anchor), so 20 M parameters per network stay under
# 1 GB each; the shipped networks have 0.2 M (seed) and 40 k (default).
MAX_PARAMETERS = 20_000_000
MAX_WIDTH = 10_000  # units in one layer
MAX_DEPTH = 100  # layers in the dense generator, and in the dense discriminator's widths
MAX_LEARNING_RATE = 10.0
MAX_L2 = 1e9  # |opposite_l2| and disc_l2: the seed's opposite L2 is 1e6
MAX_TEMPERATURE = 1e6

# Model archives: their members' uncompressed sizes (from the zip's central directory) are
# checked before anything is inflated (a 1.3 MB state.npz inflated to +1 GB). A model's
# archives are capped by its config's parameter count: state.npz holds at most 36 bytes per
# parameter (Adam's two float32 moments, "separate" EWC's three float64 sums), a .keras file
# 8 (float64 weights); ARCHIVE_SLACK_BYTES covers headers, configs and fixed tables.
STATE_BYTES_PER_PARAMETER = 36
KERAS_BYTES_PER_PARAMETER = 8
ARCHIVE_SLACK_BYTES = 64 << 20
# A replay buffer (optimus.continual.replay), per network: its capacity shrinks to fit. The
# default generator's sample through a GLN discriminator (a 64-candidate window of 3,400
# divisibility bits) is 0.9 MB, so 500 of them made a 442 MB state.npz that no cap admitted.
MAX_REPLAY_BYTES = 32 << 20
# Without a config to derive them from: the caps for the largest networks allowed.
MAX_STATE_BYTES = 2 * MAX_PARAMETERS * STATE_BYTES_PER_PARAMETER + 2 * MAX_REPLAY_BYTES + ARCHIVE_SLACK_BYTES
MAX_KERAS_BYTES = MAX_PARAMETERS * KERAS_BYTES_PER_PARAMETER + ARCHIVE_SLACK_BYTES
MAX_FISHER_SAMPLES = 10_000  # per-sample gradients per Fisher estimate (chunked in optimus.continual.fisher)
