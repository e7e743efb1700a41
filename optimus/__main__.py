import os

# TensorFlow's C++ start-up chatter (oneDNN notes, CPU feature lines) is not for CLI users.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from optimus.cli import main  # noqa: E402

raise SystemExit(main())
