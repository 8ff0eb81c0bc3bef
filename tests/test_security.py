"""Security: no file we read can run code, and nothing a server sends is written outside its folder.

* Checkpoints (encoders, generators) are read with ``torch.load(weights_only=True)``: a file
  holding a pickled object whose ``__reduce__`` would run code is refused with the suite's
  :class:`CheckpointError`, and the code does not run. A source scan keeps it that way: no
  ``torch.load`` without ``weights_only=True``, no ``np.load(allow_pickle=True)``, no pickle,
  joblib or MLflow model loading anywhere in the packages.
* Downloads: the suite extracts no archive; its analogue is the server's file list
  (``SHA256SUMS.txt``, ``RECORDS``, signal names in headers), and a listed path leading outside
  the dataset folder is refused before anything is fetched. Downloads are verified before they
  are renamed into place, and a mismatch is deleted and named.
"""

from __future__ import annotations

import ast
import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.data.download import download
from pretraining import checkpoint
from pretraining.generators import common as generators
from simecg.errors import CheckpointError, ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmark", "pretraining", "baselines", "simecg")


class RunsCode:
    """Unpickling this object creates ``marker``: proof that loading a file ran code from it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# ---- checkpoints -----------------------------------------------------------------------------------

def _encoder_payload(marker: Path) -> dict:
    return {"format": checkpoint.FORMAT, "kind": "encoder", "model_config": {}, "encoder": RunsCode(marker)}


def _generator_payload(marker: Path) -> dict:
    return {"format": generators.FORMAT, "kind": "generator", "model": "vae", "config": {},
            "sampler": {"weight": RunsCode(marker)}, "extra": {}}


@pytest.mark.parametrize("payload", ["object", "nested"])
def test_encoder_file_with_a_pickled_object_is_refused_without_running_it(tmp_path, payload):
    marker = tmp_path / "code-ran"
    path = tmp_path / "encoder.pt"
    torch.save(RunsCode(marker) if payload == "object" else _encoder_payload(marker), path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="encoder.pt") as caught:
        checkpoint.load_encoder(path)
    assert "\n" not in str(caught.value)
    with pytest.raises(CheckpointError):
        checkpoint.read(path)  # the resume path of pretraining reads the same way
    assert not marker.exists(), "loading the checkpoint ran code from it"


@pytest.mark.parametrize("payload", ["object", "nested"])
def test_generator_file_with_a_pickled_object_is_refused_without_running_it(tmp_path, payload):
    marker = tmp_path / "code-ran"
    path = tmp_path / generators.GENERATOR_FILE
    torch.save(RunsCode(marker) if payload == "object" else _generator_payload(marker), path)
    with pytest.raises(CheckpointError, match="generator.pt") as caught:
        generators.load_sampler(path)
    assert "\n" not in str(caught.value)
    assert not generators.is_complete(tmp_path, "any")
    assert not marker.exists(), "loading the generator file ran code from it"


def test_the_refusal_is_weights_only_not_luck(tmp_path):
    """Control: the same file *does* run code when unpickled without weights_only, so the test above can fail."""
    marker = tmp_path / "code-ran"
    path = tmp_path / "encoder.pt"
    torch.save(_encoder_payload(marker), path)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_numpy_object_arrays_in_a_folder_corpus_are_refused_without_running_code(tmp_path):
    from benchmark.corpora.folder import FolderCorpus, FolderOptions

    marker = tmp_path / "code-ran"
    folder = tmp_path / "ecgs"
    folder.mkdir()
    np.save(folder / "a.npy", np.array([RunsCode(marker)], dtype=object), allow_pickle=True)
    with pytest.raises((DataError, ConfigError), match="a.npy"):
        FolderCorpus(size=None, seed=0, options=FolderOptions(path=str(folder)))
    assert not marker.exists()


def _calls(tree: ast.AST) -> Iterator[tuple[str, ast.Call]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield ast.unparse(node.func), node


def _keyword(call: ast.Call, name: str) -> object:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value.value if isinstance(keyword.value, ast.Constant) else "<expression>"
    return None


def test_no_code_in_the_packages_unpickles_a_file():
    """torch.load only with weights_only=True; np.load never with allow_pickle=True; no pickle/joblib/MLflow loads."""
    forbidden = ("pickle.load", "pickle.loads", "cloudpickle.", "dill.", "joblib.load", "pd.read_pickle",
                 "pandas.read_pickle", "load_model", "torch.jit.load", "shelve.open", "marshal.load")
    problems = []
    files = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    assert len(files) > 50
    for file in files:
        for name, call in _calls(ast.parse(file.read_text(), str(file))):
            where = f"{file.relative_to(ROOT)}:{call.lineno} {name}"
            if name == "torch.load" and _keyword(call, "weights_only") is not True:
                problems.append(f"{where} without weights_only=True")
            if name in ("np.load", "numpy.load") and _keyword(call, "allow_pickle") not in (None, False):
                problems.append(f"{where} with allow_pickle")
            if any(name == f or name.startswith(f) or name.endswith("." + f) for f in forbidden):
                problems.append(where)
    assert not problems, problems


# ---- downloads -------------------------------------------------------------------------------------

class Site(BaseHTTPRequestHandler):
    """Serves ``files`` (URL path -> bytes); ``short`` paths announce 10 bytes more than they send."""

    files: dict[str, bytes] = {}
    short: set[str] = set()
    served: list[str] = []

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):  # noqa: N802 - http.server API
        Site.served.append(self.path)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) + (10 if self.path in self.short else 0)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def site():
    Site.files, Site.short, Site.served = {}, set(), []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


BASE = "/files/challenge-2020/1.0.2/"


def _publish(files: dict[str, bytes], listed: dict[str, bytes] | None = None) -> None:
    """Serve ``files`` under the G12EC project with a SHA256SUMS.txt of ``listed`` (default: the files)."""
    Site.files = {BASE + name: body for name, body in files.items()}
    sums = "".join(f"{hashlib.sha256(body).hexdigest()}  {name}\n" for name, body in (listed or files).items())
    Site.files[BASE + "SHA256SUMS.txt"] = sums.encode()


@pytest.mark.parametrize("evil", ["training/georgia/../../../../evil.txt", "training/georgia/g1/../../../evil.txt",
                                  "training/georgia/..\\..\\evil.txt", "training/georgia//evil.txt"])
def test_a_file_list_pointing_outside_the_dataset_folder_is_refused(site, tmp_path, evil):
    good = {"training/georgia/g1/E00001.hea": b"E00001 12 500 5000\n"}
    _publish(good, {**good, evil: b"owned\n"})
    dest = tmp_path / "deep" / "er" / "data"
    with pytest.raises(DataError, match="outside the dataset folder") as caught:
        download("g12ec", dest, mirror=site)
    assert repr(evil)[1:-1] in str(caught.value)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "nothing is fetched from a hostile listing"
    assert Site.served == [BASE + "SHA256SUMS.txt"]


def test_a_header_naming_a_signal_file_outside_the_folder_is_refused(site, tmp_path):
    """Without SHA256SUMS.txt the list comes from RECORDS and the headers' signal file names."""
    Site.files = {BASE + "RECORDS": b"training/georgia/g1/\n",
                  BASE + "training/georgia/g1/RECORDS": b"E00001\n",
                  BASE + "training/georgia/g1/E00001.hea": b"E00001 1 500 5000\n../../../../../evil.mat 16 1000/mV\n"}
    with pytest.raises(DataError, match="outside the dataset folder"):
        download("g12ec", tmp_path / "data", mirror=site)
    assert not list(tmp_path.rglob("evil*"))


def test_a_download_is_used_only_once_verified_and_a_mismatch_is_deleted_and_named(site, tmp_path):
    files = {"training/georgia/g1/E00001.hea": b"E00001 12 500 5000\n", "training/georgia/g1/E00001.mat": b"x" * 100}
    _publish(files, {**files, "training/georgia/g1/E00001.mat": b"y" * 100})  # the served .mat is not the listed one
    dest = tmp_path / "data"
    with pytest.raises(DataError, match=r"E00001\.mat: SHA-256 does not match.*deleted"):
        download("g12ec", dest, mirror=site)
    assert (dest / "g12ec/g1/E00001.hea").read_bytes() == files["training/georgia/g1/E00001.hea"]
    assert not (dest / "g12ec/g1/E00001.mat").exists() and not (dest / "g12ec/g1/E00001.mat.part").exists()


def test_a_download_shorter_than_announced_is_not_used(site, tmp_path):
    """No SHA256SUMS.txt: a body shorter than its Content-Length never becomes the file."""
    Site.files = {BASE + "RECORDS": b"training/georgia/g1/\n",
                  BASE + "training/georgia/g1/RECORDS": b"E00001\n",
                  BASE + "training/georgia/g1/E00001.hea": b"E00001 1 500 5000\nE00001.mat 16 1000/mV\n",
                  BASE + "training/georgia/g1/E00001.mat": b"z" * 1000}
    Site.short = {BASE + "training/georgia/g1/E00001.mat"}
    dest = tmp_path / "data"
    with pytest.raises(DataError, match=r"E00001\.mat: size 1000 bytes does not match the 1010 bytes the server "
                       "announced after two downloads; the download was deleted"):
        download("g12ec", dest, mirror=site)
    assert not (dest / "g12ec/g1/E00001.mat").exists()


@pytest.mark.parametrize("mirror", ["notaurl", "ftp://mirror.example/physionet", "http://", "https://a b.org",
                                    "http://host:port/", "https://[::1", "file:///srv/physionet", "https://h/?q=1"])
def test_a_mirror_that_is_not_an_http_address_is_refused_before_anything_happens(tmp_path, mirror):
    with pytest.raises(ConfigError, match="is not a web address; a mirror is the http") as caught:
        download("g12ec", tmp_path / "data", mirror=mirror)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "data").exists()
