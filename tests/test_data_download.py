"""``data download`` end to end against a loopback HTTP server serving real files in PhysioNet's layout."""

from __future__ import annotations

import hashlib
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.data.datacheck import check_folder
from benchmark.data.download import SOURCES, download
from benchmark.data.tasks import load_task
from simecg.errors import DataError

pytestmark = pytest.mark.realdata

PTBXL_IDS = range(1, 31)
G12EC = ("E00001", "E00002", "E00004", "E00005", "E00271", "E07500", "E07501", "E07503", "E00015")
CPSC = tuple(f"A{i:04d}" for i in range(1, 31))


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single-range ``Range: bytes=N-`` support; records every request."""

    requests: list[tuple[str, str | None]] = []

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):  # noqa: N802 - http.server API
        RangeHandler.requests.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        spec = self.headers.get("Range")
        if not spec or not path.is_file():
            return super().do_GET()
        start = int(spec.split("=")[1].split("-")[0])
        data = path.read_bytes()
        if start >= len(data):
            self.send_error(416)
            return
        self.send_response(206)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        self.wfile.write(data[start:])


def _publish(project_dir: Path) -> None:
    lines = []
    for path in sorted(p for p in project_dir.rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest} {path.relative_to(project_dir).as_posix()}")
    (project_dir / "SHA256SUMS.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def mirror(shared_data, tmp_path):
    """A copy of part of ../shared/data laid out as physionet.org/files/..., served on 127.0.0.1."""
    site = tmp_path / "site"
    ptbxl = site / "files/ptb-xl/1.0.3"
    (ptbxl / "records500/00000").mkdir(parents=True)
    lines = (shared_data / "ptbxl/ptbxl_database.csv").read_text().splitlines(keepends=True)
    (ptbxl / "ptbxl_database.csv").write_text("".join(lines[: len(PTBXL_IDS) + 1]))
    for name in ("scp_statements.csv", "LICENSE.txt"):
        shutil.copy(shared_data / "ptbxl" / name, ptbxl / name)
    for i in PTBXL_IDS:
        for ext in (".hea", ".dat"):
            name = f"records500/00000/{i:05d}_hr{ext}"
            shutil.copy(shared_data / "ptbxl" / name, ptbxl / name)
    (ptbxl / "RECORDS").write_text("".join(f"records500/00000/{i:05d}_hr\n" for i in PTBXL_IDS))
    challenge = site / "files/challenge-2020/1.0.2/training"
    for folder, names, source in (("georgia", G12EC, "g12ec"), ("cpsc_2018", CPSC, "cpsc2018/challenge2020_dx_abbrev")):
        (challenge / folder / "g1").mkdir(parents=True)
        for name in names:
            for ext in (".hea", ".mat"):
                shutil.copy(shared_data / source / f"{name}{ext}", challenge / folder / "g1" / f"{name}{ext}")
    (challenge.parent / "RECORDS").write_text("training/georgia/g1/\ntraining/cpsc_2018/g1/\n")
    (challenge / "georgia/g1/RECORDS").write_text("".join(f"{n}\n" for n in G12EC))
    _publish(ptbxl)
    _publish(site / "files/challenge-2020/1.0.2")
    RangeHandler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", site
    server.shutdown()
    server.server_close()


def test_download_all_then_load_and_check(mirror, tmp_path):
    url, _ = mirror
    dest = tmp_path / "data"
    assert main(["data", "download", "all", "--dir", str(dest), "--mirror", url]) == 0
    assert (dest / "ptbxl/records500/00000/00001_hr.dat").is_file()
    assert (dest / "g12ec/g1/E00271.mat").is_file() and (dest / "cpsc2018/g1/A0030.hea").is_file()
    assert not list(dest.rglob("*.part"))
    assert check_folder(dest / "g12ec", progress=False).counts == {"ok": 4, "repaired": 4, "rejected": 1}
    data = load_task("cpsc2018/AF", dest, cache_dir=tmp_path / "cache")
    assert data.labels.sum() > 0 and (data.labels == 0).sum() > 0
    ptbxl = load_task("ptbxl/ABQRS", dest, cache_dir=tmp_path / "cache")
    assert ptbxl.n_records > 5
    # a rerun fetches no data file again (only the checksum list)
    RangeHandler.requests = []
    download("g12ec", dest, mirror=url)
    assert [p for p, _ in RangeHandler.requests] == ["/files/challenge-2020/1.0.2/SHA256SUMS.txt"]


def test_interrupted_download_resumes_with_range(mirror, tmp_path):
    url, site = mirror
    dest = tmp_path / "data"
    original = site / "files/challenge-2020/1.0.2/training/georgia/g1/E00271.mat"
    part = dest / "g12ec/g1/E00271.mat.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(original.read_bytes()[:1000])
    download("g12ec", dest, mirror=url, workers=1)
    assert (dest / "g12ec/g1/E00271.mat").read_bytes() == original.read_bytes()
    assert ("/files/challenge-2020/1.0.2/training/georgia/g1/E00271.mat", "bytes=1000-") in RangeHandler.requests


def test_checksum_mismatch_is_an_error_naming_the_file(mirror, tmp_path):
    url, site = mirror
    served = site / "files/challenge-2020/1.0.2/training/georgia/g1/E00001.mat"
    served.write_bytes(served.read_bytes()[:-10] + b"0123456789")  # content no longer matches SHA256SUMS
    with pytest.raises(DataError, match="E00001.mat: SHA-256 does not match"):
        download("g12ec", tmp_path / "data", mirror=url)
    assert not (tmp_path / "data/g12ec/g1/E00001.mat").exists()


def test_without_sha256sums_records_index_is_used(mirror, tmp_path):
    url, site = mirror
    (site / "files/ptb-xl/1.0.3/SHA256SUMS.txt").unlink()
    (site / "files/challenge-2020/1.0.2/SHA256SUMS.txt").unlink()
    download("ptbxl", tmp_path / "data", mirror=url)
    got = sorted(p.name for p in (tmp_path / "data/ptbxl/records500/00000").iterdir())
    assert len(got) == 2 * len(PTBXL_IDS) and (tmp_path / "data/ptbxl/ptbxl_database.csv").is_file()
    download("g12ec", tmp_path / "data", mirror=url)
    got = sorted(p.name for p in (tmp_path / "data/g12ec/g1").iterdir())
    assert got == sorted(f"{n}{ext}" for n in G12EC for ext in (".hea", ".mat"))


def test_sources_point_at_physionet_projects():
    assert SOURCES["ptbxl"].base_url(None) == "https://physionet.org/files/ptb-xl/1.0.3/"
    assert SOURCES["g12ec"].prefix == "training/georgia/"
