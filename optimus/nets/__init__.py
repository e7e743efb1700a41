"""The networks, as registered Keras 3 objects (they load with `safe_mode=True`).

* `layers`: the custom layers (sieve window, factor encoding and dense, residue features, ...);
* `networks`: the generator and discriminator built from a `TrainConfig`; `propose`/`choose`;
* `encoding`: the discriminators' exact input features in NumPy (Fourier, divisibility bits,
  factor lists);
* `gln`: the Bernoulli Gated Linear Network discriminator;
* `serialisables`: every module that registers Keras serialisables (the loader imports them);
* `forward`: the saved networks' forward passes in NumPy, read from `.keras` files without
  Keras (what the Streamlit server runs; equal to the Keras forward, tests/test_forward.py).

Everything here imports TensorFlow except `encoding` and `forward`.
"""
