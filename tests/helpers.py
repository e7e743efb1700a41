"""Small configs and a trained toy model directory shared by the library tests."""

from optimus.config import preset


def tiny(name: str = "default", **overrides):
    """A preset shrunk so a whole online batch takes well under a second."""
    small = dict(batches=2, batch_size=64, steps=3, fisher_samples=16, min_batch=16)
    if name == "default":
        small.update(window=8, disc_prime_max=200, disc_hidden=8)
    else:
        small.update(gen_depth=2, gen_width=8, disc_widths=[16, 8], opposite_l2=0.0)
    small.update(overrides)
    return preset(name, **small)
