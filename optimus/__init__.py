"""Optimus: a deep-learning lab for prime numbers.

Importing the package is cheap: nothing here imports TensorFlow or Streamlit. Modules that
need TensorFlow (models, ewc, training, evaluation, gln) import it themselves, so the CLI's
`density` command and the app's density page start in well under a second.
"""

__version__ = "0.1.0"
