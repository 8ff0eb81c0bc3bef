"""The example corpus plugin (examples/simecg-deepfake-corpus) installed by pip outside the project:
the corpus ``deepfake`` samples lead II of the deepfake-ecg package's Pulse2Pulse GAN.

The plugin is installed into a folder with pip (no isolation, no index), and deepfake-ecg beside it
when this interpreter lacks it (a 39-MB wheel from PyPI: skipped, saying why, when it cannot be
installed). The registry loads entry points once per process, so each check runs in a fresh
interpreter with that folder on ``PYTHONPATH``; this process's registry stays untouched.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "simecg-deepfake-corpus"


def _requirement(package: str) -> str:
    """The plugin's own pin of ``package`` (its pyproject), so the test installs what users get."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    (pin,) = [d for d in project["dependencies"] if d.split("=")[0].strip() == package]
    return pin


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the example plugin as pip installs it, and deepfake-ecg if this interpreter lacks it."""
    root = tmp_path_factory.mktemp("deepfake-plugin")
    source, site = root / "src", root / "site"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("*.egg-info", "build"))  # builds write there
    done = _pip("--no-deps", "--no-build-isolation", "--no-index", "--target", str(site), str(source))
    assert done.returncode == 0, done.stderr[-2000:]
    if importlib.util.find_spec("deepfakeecg") is None:
        done = _pip("--no-deps", "--target", str(site), _requirement("deepfake-ecg"))
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            pytest.skip(f"deepfake-ecg cannot be installed here (offline?): {last}")
    return site


def _python(site: Path, code: str, *args: str, timeout: int = 300) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, *(["-c", code] if code else []), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


PROBE = textwrap.dedent(
    """
    import hashlib, json, pickle, sys
    from importlib import metadata
    from pathlib import Path
    import numpy as np, torch
    torch.set_num_threads(1)
    from pretraining.config import PretrainConfig, build_corpus, encoder_identity
    from simecg.errors import ConfigError
    from simecg.registries import CORPORA

    def corpus(size=64, seed=0, **options):
        return build_corpus(PretrainConfig(corpus="deepfake", corpus_size=size, corpus_seed=seed,
                                           corpus_options=options))

    out = {"names": CORPORA.names()}
    torch.manual_seed(0); expected = torch.rand(3)
    torch.manual_seed(0)
    lead_ii = corpus(lead="ii")  # option text is resolved like any --set value
    x = lead_ii.get_batch(np.arange(8))
    out["global_rng_untouched"] = bool(torch.equal(torch.rand(3), expected))  # loading drew nothing from it
    out["lead"], out["shape"], out["dtype"] = lead_ii.options.lead, list(x.shape), str(x.dtype)
    out["max_off_microvolt_grid"] = float(np.abs(x * 1000 - np.round(x * 1000)).max())
    out["ptp_mv"] = np.ptp(x, axis=1).tolist()
    # determinism: another batching, another size, a pickled copy (a DataLoader worker) give the same ECGs
    again = np.concatenate([corpus(size=500).get_batch([5, 2]), pickle.loads(pickle.dumps(lead_ii)).get_batch([7])])
    out["same_in_any_batching"] = bool(np.array_equal(again, x[[5, 2, 7]]))
    out["seed_changes_ecgs"] = not np.array_equal(corpus(seed=1).get_batch([2]), x[[2]])
    # lead II is channel 1 of the package's generator (order I, II, V1-V6), in integer microvolts / 1000
    from deepfakeecg.models import Generator
    generator = Generator()
    weights = Path(sys.modules["deepfakeecg"].__file__).parent / "checkpoints" / "g_stat.pt"
    generator.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True)["stat_dict"])
    with torch.inference_mode():
        raw = generator.eval()(torch.from_numpy(lead_ii.noise(np.arange(8))))
    package_mv = ((raw[:, 1] * 6000).int().numpy() / 1000).astype(np.float32)  # 8 rows: the plugin's chunk
    out["max_diff_vs_package_lead_ii_mv"] = float(np.abs(package_mv - x).max())
    noise = lead_ii.noise(np.arange(8))
    out["noise_range"] = [float(noise.min()), float(noise.max())]
    v1 = corpus(lead="V1").get_batch(np.arange(8))
    skew = lambda s: float(np.median((((s - s.mean(1, keepdims=True)) / s.std(1, keepdims=True)) ** 3).mean(1)))
    out["skew_ii"], out["skew_v1"] = skew(x), skew(v1)  # QRS mostly upright in II, mostly negative in V1
    # identity: package version and checkpoint hash; changes with the seed and the lead, not with a store path
    identity = lead_ii.identity()
    out["identity"] = identity
    out["package_version"] = metadata.version("deepfake-ecg")
    out["checkpoint_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    out["identity_moves"] = [corpus(seed=1).identity() != identity, corpus(lead="V1").identity() != identity]
    config = PretrainConfig(corpus="deepfake", corpus_size=64, preset="tiny")
    out["encoder_holds_checkpoint"] = (encoder_identity(config).payload["corpus"]["checkpoint_sha256"]
                                       == out["checkpoint_sha256"])
    errors = []
    for options in ({"lead": "III"}, {"leads": "II"}):
        try:
            corpus(**options)
        except ConfigError as exc:
            errors.append(str(exc))
    out["errors"] = errors
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_deepfake_plugin_gives_deterministic_lead_ii_in_millivolts_with_the_checkpoint_in_its_identity(site: Path):
    result = json.loads(_python(site, PROBE).strip().splitlines()[-1])
    assert "deepfake" in result["names"] and {"sim", "ptbxl", "folder"} <= set(result["names"])
    assert result["global_rng_untouched"]
    assert result["lead"] == "II" and result["shape"] == [8, 5000] and result["dtype"] == "float32"
    assert result["max_off_microvolt_grid"] < 1e-3  # integer microvolts, as the package writes them
    assert all(0.2 < ptp < 12.0 for ptp in result["ptp_mv"])  # mV: tanh * 6000 uV bounds |x| by 6 mV
    assert result["same_in_any_batching"] and result["seed_changes_ecgs"]
    assert result["max_diff_vs_package_lead_ii_mv"] == 0.0
    assert -1.0 <= result["noise_range"][0] < -0.99 and 0.99 < result["noise_range"][1] < 1.0
    assert result["skew_ii"] > 0 > result["skew_v1"]
    identity = result["identity"]
    assert identity["package_version"] == result["package_version"]
    assert identity["checkpoint_sha256"] == result["checkpoint_sha256"]
    assert identity["size"] == 64 and identity["seed"] == 0 and "path" not in identity
    assert result["identity_moves"] == [True, True] and result["encoder_holds_checkpoint"]
    lead_error, key_error = result["errors"]
    assert "pretrain.corpus_options.lead='III'" in lead_error and "V6" in lead_error
    assert "unknown option pretrain.corpus_options.leads" in key_error and "lead, path" in key_error


@pytest.mark.slow
def test_corpus_compare_and_a_store_work_from_the_plugin_alone(site: Path, tmp_path: Path):
    """``corpus compare`` measures the plugin's ECGs beside a built-in corpus, and ``corpus build``
    materializes them into a store that ``path`` reads back (the same values); the CLI's ``main``
    runs in one interpreter with the plugin on its path, as the console script would."""
    report, store = tmp_path / "report", tmp_path / "store"
    check = textwrap.dedent(
        f"""
        import numpy as np
        from benchmark.cli import main
        from pretraining.config import PretrainConfig, build_corpus
        from simecg.errors import ConfigError

        assert main(["corpus", "compare", "sim", "deepfake", "--n", "10", "--no-mlflow", "--out", {str(report)!r},
                     "--format", "json"]) == 0
        assert main(["corpus", "build", "deepfake", "--n", "10", "--out", {str(store)!r}, "--workers", "1",
                     "--set", "pretrain.corpus_options.lead=V2"]) == 0

        def corpus(**options):
            return build_corpus(PretrainConfig(corpus="deepfake", corpus_size=20, corpus_options=options))

        stored = corpus(lead="V2", path={str(store)!r})
        assert np.array_equal(stored.get_batch(np.arange(12)), corpus(lead="V2").get_batch(np.arange(12)))
        assert stored.identity() == corpus(lead="V2").identity()
        try:
            corpus(path={str(store)!r}).get_batch([0])
        except ConfigError as exc:
            assert "holds other ECGs" in str(exc) and "lead" in str(exc), exc
        else:
            raise AssertionError("a lead-V2 store was read as lead II")
        print("ok")
        """
    )
    assert _python(site, check).strip().endswith("ok")
    rows = {row["corpus"]: row for row in json.loads((report / "corpus_report.json").read_text())["rows"]}
    assert set(rows) == {"sim", "deepfake"}
    deepfake = rows["deepfake"]
    assert deepfake["n"] == 10 and deepfake["nonfinite_share"] == 0 and deepfake["flat_share"] == 0
    assert deepfake["r_peak_share"] >= 0.5 and 30 < deepfake["hr_median"] < 200
    assert 0.3 < deepfake["amp_ptp_median"] < 6.0  # mV
