"""The NumPy forwards (optimus.nets.forward) against the Keras forward, on models trained in
another process: every kind of network the project trains (sieve generator with and without
wide primes, with exp and with pow positions; the seed's dense generator; dense, residue-bit,
residue factor-list and GLN discriminators). The sieve generator's samples must be the same
bit for bit; the discriminators' probabilities within 1e-6.

The models are trained by one child process (`python -m optimus train` for each kind, the
way the app's Train page starts runs); this process loads them both ways.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from optimus import limits
from optimus.evaluation import report
from optimus.nets import forward
from tests.helpers import REPO, tiny

# name -> (preset, overrides): one tiny model per kind of network
KINDS = {
    "default": ("default", {}),  # sieve + wide primes + pow position, residue factor lists
    "gln": ("default", dict(discriminator="gln", out_density_power=1.0, gen_wide_prime_max=0)),  # exp position
    "residue_bits": ("default", dict(disc_factor_slots=0)),
    "dense_disc": ("default", dict(discriminator="dense", disc_widths=[16, 8])),
    "seed": ("seed", {}),
    "seed_residue": ("seed", dict(discriminator="residue", disc_prime_max=300)),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("forward")
    for name, (preset, overrides) in KINDS.items():
        (root / f"{name}.json").write_text(tiny(preset, batches=1, **overrides).to_json())
    script = textwrap.dedent(f"""
        import sys
        from optimus.cli import main
        for name in {list(KINDS)!r}:
            code = main(["train", "--model-dir", {str(root)!r} + "/" + name,
                         "--config", {str(root)!r} + "/" + name + ".json", "--quiet"])
            if code:
                sys.exit(f"training {{name}} failed: {{code}}")
    """)
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=900)
    return root


def _keras(model_dir):
    from optimus.store import checkpoint

    return checkpoint.load(model_dir)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_numpy_forward_equals_keras(trained, kind):
    from optimus.nets import networks

    model_dir = trained / kind
    ck = _keras(model_dir)
    models = report.load_models(model_dir)
    cfg = ck.config
    assert models.batches_done == ck.batches_done == 1
    latents = np.random.default_rng(5).integers(cfg.latent_lo, cfg.latent_hi + 1, size=4099)  # not a multiple of 4
    numpy_reals = forward.generate(models.generator, latents, np.random.default_rng(9), cfg.temperature)
    if cfg.generator == "sieve":
        # the Keras forward (propose, then the Gumbel-max choice) draws the same samples bit for bit
        keras_reals = networks.generate(ck.generator, latents, np.random.default_rng(9), cfg.temperature, fast=False)
        np.testing.assert_array_equal(numpy_reals, keras_reals)
        reals, logits = ck.generator(latents.reshape(-1, 1).astype(np.float64), training=False)
        np_reals, np_logits = models.generator(latents)
        np.testing.assert_array_equal(np_reals, np.asarray(reals))
        np.testing.assert_allclose(np_logits, np.asarray(logits), atol=1e-4)
        # a million latents (the range's ends included), in its own band: the same first candidates
        from optimus.sampling import sieve

        many = np.random.default_rng(6).integers(cfg.latent_lo, cfg.latent_hi + 1, size=10**6 + 3)
        many[:2] = cfg.latent_lo, cfg.latent_hi
        np.testing.assert_array_equal(sieve.first_candidates(models.generator.sieve, many),
                                      sieve.first_candidates(sieve.sieve_layer(ck.generator), many))
    else:
        # float32 matmuls summed in another order: the reals agree to float32 rounding
        keras_reals = networks.generate(ck.generator, latents, np.random.default_rng(9), cfg.temperature)
        np.testing.assert_allclose(numpy_reals, keras_reals, rtol=1e-6)
    n = 2 * np.random.default_rng(3).integers(5 * 10**5, 5 * 10**8, size=5003) + 1
    n[:4] = [3, 5, 7, 9]  # a prime equal to a feature prime, and a square
    keras_prob = np.asarray(ck.discriminator(((n - 1) // 2 + 0.5).reshape(-1, 1), training=False)).reshape(-1)
    np.testing.assert_allclose(report.discriminate(models, n), keras_prob, atol=1e-6, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["default", "gln"])
def test_moved_band_samples_are_the_same_bit_for_bit(trained, kind):
    """A band far up float64's range, where NumPy's own exp/pow would move windows (ulp >= 0.06)."""
    from optimus.nets import networks

    ck = _keras(trained / kind)
    models = report.load_models(trained / kind)
    latents = np.arange(1, 20_002)
    for lo, hi in ((1e13, 1e15), (1e15, 8e15)):
        a = networks.generate(ck.generator, latents, np.random.default_rng(1), out_lo=lo, out_hi=hi, fast=False)
        b = forward.generate(models.generator, latents, np.random.default_rng(1), out_lo=lo, out_hi=hi)
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_report_sample_and_evaluate_match_keras_on_the_shipped_default(tmp_path):
    """The pages' `sample` on the shipped default model: the Keras reference draws the same table."""
    from optimus.nets import networks

    model_dir = REPO / "models" / "default"
    if not model_dir.exists():
        pytest.skip("no shipped default model")
    ck = _keras(model_dir)
    models = report.load_models(model_dir)
    table = report.sample(models, 3000, seed=4)
    rng = np.random.default_rng([4, 7919])
    latents = rng.integers(ck.config.latent_lo, ck.config.latent_hi + 1, size=3000)
    reals = networks.generate(ck.generator, latents, rng, ck.config.temperature, fast=False)
    np.testing.assert_array_equal(table["n"].to_numpy(), 2 * np.floor(reals).astype(np.int64) + 1)
    keras_prob = np.asarray(ck.discriminator(reals.reshape(-1, 1), training=False)).reshape(-1)
    np.testing.assert_allclose(table["d_prob"].to_numpy(), keras_prob, atol=1e-6, rtol=0)


def test_eigen_exp_and_pow_are_exact_functions_of_ieee_operations():
    """Spot values of the transcriptions (checked against tf.exp / tf.pow in the slow tests
    above through the samples): exp(0) = 1, 2**10 = 1024 exactly, and a libm-accurate result."""
    assert forward.eigen_exp(np.array([0.0]))[0] == 1.0
    np.testing.assert_allclose(forward.eigen_exp(np.linspace(-50, 50, 101)), np.exp(np.linspace(-50, 50, 101)),
                               rtol=1e-15)
    x = np.linspace(0.5, 6000, 10_001)
    np.testing.assert_allclose(forward.eigen_pow(x, 4.0), x**4.0, rtol=4e-16)
    assert forward.eigen_pow(np.array([2.0, 2.0, 2.0, 2.0, 2.0]), 10.0).tolist() == [1024.0] * 5


def test_a_foreign_layer_class_is_refused(tmp_path):
    """Only the classes this project saves run: anything else is refused before any forward."""
    import json
    import zipfile

    import h5py

    path = tmp_path / "generator.keras"
    config = {"class_name": "Functional", "config": {"name": "generator", "layers": [
        {"class_name": "Lambda", "config": {"name": "evil"}, "inbound_nodes": []}],
        "input_layers": ["evil", 0, 0], "output_layers": ["evil", 0, 0]}}
    h5 = tmp_path / "w.h5"
    with h5py.File(h5, "w") as f:
        f.create_group("layers/lambda/vars")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.write(h5, "model.weights.h5")
    with pytest.raises(forward.ForwardError, match="Lambda"):
        forward.load_network(path, limits.MAX_KERAS_BYTES)


def test_an_archive_over_its_cap_is_refused_before_inflating(tmp_path):
    import zipfile

    path = tmp_path / "generator.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", "{}")
        z.writestr("model.weights.h5", b"\0" * (2 << 20))
    with pytest.raises(ValueError, match="would inflate"):
        forward.load_network(path, 1 << 20)


def test_shipped_models_load_without_tensorflow():
    """In a fresh process: load and use both shipped models, and TensorFlow is never imported."""
    code = textwrap.dedent("""
        import sys
        from optimus.evaluation import report
        for name in ("default", "seed"):
            models = report.load_models("models/" + name)
            table = report.sample(models, 2000, seed=1)
            rep = report.discriminator_report(models, table["n"].to_numpy())
            assert 0 <= rep["accuracy"] <= 1
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
        assert not bad, bad[:10]
    """)
    if not (REPO / "models" / "default").exists():
        pytest.skip("no shipped models")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=300)


@pytest.mark.parametrize("name", ["default", "seed"])
def test_outputs_are_the_samples_n_without_classifying(name):
    """report.outputs (the residue charts' draw) gives exactly the column n of report.sample."""
    if not (REPO / "models" / name).exists():
        pytest.skip("no shipped models")
    models = report.load_models(REPO / "models" / name)
    for seed in (0, 7):
        n = report.outputs(models, 3000, seed=seed)
        assert n.dtype == np.int64
        assert np.array_equal(n, report.sample(models, 3000, seed=seed)["n"].to_numpy())


def test_the_pages_top_level_imports_leave_tensorflow_out():
    """Every module app.py and the pages import at top level, in a fresh process: no TensorFlow
    (the e2e test, tests/test_server_e2e.py, checks the running server after every page)."""
    import ast

    names = set()
    for path in [REPO / "app.py", *sorted((REPO / "optimus" / "app" / "pages").glob("*.py"))]:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.update(f"{node.module}.{alias.name}" if node.module == "optimus" or
                             node.module.startswith("optimus.") else node.module for alias in node.names)
    code = textwrap.dedent(f"""
        import importlib, sys
        for name in {sorted(names)!r}:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError:  # `from optimus.x import CONSTANT`: the module is x
                importlib.import_module(name.rsplit(".", 1)[0])
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
        assert not bad, bad[:10]
    """)
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=300)


def test_a_weight_stored_in_another_file_is_refused(tmp_path):
    """An HDF5 dataset can keep its data in any file on disk (external storage): never read."""
    import zipfile

    import h5py

    src = REPO / "models" / "seed" / "generator.keras"
    if not src.exists():
        pytest.skip("no shipped seed model")
    with zipfile.ZipFile(src) as z:
        config = z.read("config.json")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\1" * 400)
    h5 = tmp_path / "w.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("layers/dense/vars/0", shape=(1, 100), dtype="<f4", external=[(str(secret), 0, 400)])
    path = tmp_path / "generator.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", config)
        z.write(h5, "model.weights.h5")
    with pytest.raises(forward.ForwardError, match="not a plain numeric array"):
        forward.load_network(path, limits.MAX_KERAS_BYTES)


def test_dense_on_a_sparse_encoding_sums_the_picked_kernel_rows():
    """Dense's sparse path (a divisibility encoding's few non-zeros per row) equals the dense
    product within float32 rounding, rows with several, one or no non-zeros included; a dense
    input takes the plain product."""
    encoding = forward.DivisibilityEncoding({"prime_max": 2000}, [])
    n = np.concatenate([np.random.default_rng(3).integers(10**6, 10**9, 700) | 1, [3 * 5 * 7 * 11 * 13 * 17, 1999]])
    features = encoding.features(n)
    features[5] = 0  # a row of zeros: the bias alone
    kernel = np.random.default_rng(4).standard_normal((features.shape[1], 37)).astype(np.float32)
    layer = forward.Dense({"units": 37, "activation": "linear"}, [kernel, np.full(37, 0.5, np.float32)])
    assert layer._sparse_product(features) is not None
    np.testing.assert_allclose(layer(features), features @ kernel + np.float32(0.5), atol=2e-5)
    assert np.array_equal(layer(features)[5], np.full(37, 0.5, np.float32))
    dense = np.random.default_rng(5).standard_normal(features.shape).astype(np.float32)
    assert layer._sparse_product(dense) is None
    assert np.array_equal(layer(dense), dense @ kernel + np.float32(0.5))


def test_blas_threads_set_and_read_back_and_the_shipped_forwards_do_not_change():
    """blas_threads(1) (what the server sets) is read back, and the shipped models' probabilities
    are the same with one BLAS thread as with two."""
    from optimus.evaluation import report as evaluation

    before = forward.blas_threads()
    if before is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS")
    n = evaluation.outputs(evaluation.load_models(REPO / "models" / "default"), 3_000, seed=3)
    try:
        probabilities = {}
        for threads in (2, 1):
            assert forward.blas_threads(threads) == threads
            probabilities[threads] = [evaluation.load_models(REPO / "models" / m).discriminator.probabilities(n)
                                      for m in ("default", "seed")]
        assert all(np.array_equal(a, b) for a, b in zip(probabilities[1], probabilities[2], strict=True))
    finally:
        forward.blas_threads(before)
