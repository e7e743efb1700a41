import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory) -> Path:
    """Where tests leave things a person may want to look at (screenshots)."""
    path = Path(os.environ["OPTIMUS_ARTIFACTS"]) if os.environ.get("OPTIMUS_ARTIFACTS") else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    print(f"\n[optimus] test artifacts in {path}")
    return path
