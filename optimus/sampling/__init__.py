"""Drawing from a trained generator without TensorFlow's forward.

* `sieve`: the learned sieve as NumPy residue tables (`learned_sieve`, `LearnedSieve`,
  `build_tables`): the Keras forward's draws, faster;
* `anysize`: primes of any size with the learned sieve (`size_range`, exact big-integer
  `residues`, `is_prime_any`/`bpsw` with `certainty`, `sample_any`, `sample_models`, `evaluate_at`).
"""

from optimus.sampling.sieve import LearnedSieve, build_tables, learned_sieve

__all__ = ["LearnedSieve", "build_tables", "learned_sieve"]
