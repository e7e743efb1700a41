"""Drawing from a trained generator without TensorFlow's forward.

* `sieve`: the learned sieve as NumPy residue tables (`learned_sieve`, `LearnedSieve`,
  `build_tables`): the Keras forward's draws, faster; the one `window_logits` (a generator's
  layer, or a `LearnedSieve` at any size, `window_batch`) and the one Gumbel draw (`gumbel_keys`);
* `anysize`: primes of any size with the learned sieve (`size_range`, `sample_any`,
  `sample_models`, `evaluate_at`); its big-integer number theory (exact residues, BPSW,
  certainty) lives in `optimus.primes.bigint`.
"""

from optimus.sampling.sieve import (
    LearnedSieve,
    build_tables,
    gumbel_keys,
    learned_sieve,
    window_logits,
)

__all__ = ["LearnedSieve", "build_tables", "gumbel_keys", "learned_sieve", "window_logits"]
