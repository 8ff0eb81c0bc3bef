"""Download the downstream datasets from PhysioNet: resumable, SHA-256 verified, with progress.

Each dataset is a file set of a PhysioNet project version. The file list and the expected
digests come from the project's published ``SHA256SUMS.txt``; every file is fetched over HTTPS
to ``<file>.part``, resumed with an HTTP ``Range`` request after an interruption, verified, and
only then renamed into place, so a killed download is resumed by rerunning the same command and
a finished file is never fetched twice. Projects without ``SHA256SUMS.txt`` are listed through
their ``RECORDS`` files instead and their files are not checksum-verified (a warning says so),
only size-verified against the length the server announced.

Nothing a server sends is trusted further than that: a file is renamed into place only once
verified (a mismatching download is deleted, and the error names it); a listed path that would
land outside the dataset folder (absolute, ``..``, backslashes) is refused before anything is
fetched; and ``--mirror`` must be an http(s) address, checked before any folder is created.

Resulting layout under ``--dir`` (what the readers expect)::

    ptbxl/      ptbxl_database.csv, scp_statements.csv, records500/NNNNN/NNNNN_hr.{hea,dat}   (ptb-xl 1.0.3)
    g12ec/      g1/ .. g11/ E*.hea + E*.mat      (challenge-2020 1.0.2 training/georgia/)
    cpsc2018/   g1/ .. g7/  A*.hea + A*.mat      (challenge-2020 1.0.2 training/cpsc_2018/)
"""

from __future__ import annotations

import http.client
import logging
import posixpath
import shutil
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from simecg import integrity, paths
from simecg.errors import ConfigError, DataError

log = logging.getLogger(__name__)

PHYSIONET = "https://physionet.org"
CHUNK = 1 << 20
TIMEOUT_S = 60


@dataclass(frozen=True)
class Source:
    """A dataset as files of one PhysioNet project version."""

    project: str
    version: str
    prefix: str  # folder of the project holding the dataset ("" = project root)
    include: tuple[str, ...]  # kept paths (relative to prefix): names or folders ending in "/"; () = all
    folder: str  # destination sub-folder of the data root

    def base_url(self, mirror: str | None) -> str:
        return f"{(mirror or PHYSIONET).rstrip('/')}/files/{self.project}/{self.version}/"

    def wanted(self, relative: str) -> bool:
        if not self.include:
            return True
        return any(relative == item or (item.endswith("/") and relative.startswith(item)) for item in self.include)


SOURCES = {
    "ptbxl": Source("ptb-xl", "1.0.3", "", ("ptbxl_database.csv", "scp_statements.csv", "LICENSE.txt",
                                             "records500/"), "ptbxl"),
    "g12ec": Source("challenge-2020", "1.0.2", "training/georgia/", (), "g12ec"),
    "cpsc2018": Source("challenge-2020", "1.0.2", "training/cpsc_2018/", (), "cpsc2018"),
}


def download(name: str, data_dir: Path | str | None = None, mirror: str | None = None, workers: int = 4) -> list[Path]:
    """Download ``name`` ("ptbxl", "g12ec", "cpsc2018" or "all") into ``data_dir``; return the dataset folders."""
    names = list(SOURCES) if name == "all" else [name]
    for item in names:
        if item not in SOURCES:
            raise ConfigError(f"unknown dataset {item!r} to download; expected one of {', '.join(SOURCES)} or all")
    mirror = check_mirror(mirror)
    root = paths.data_dir(data_dir)
    for item in names:  # an unwritable destination is one line before anything is fetched
        paths.require_writable(root / SOURCES[item].folder)
    return [_download_source(SOURCES[item], root, mirror, max(1, workers)) for item in names]


def check_mirror(mirror: str | None) -> str | None:
    """``mirror`` when it is an http(s) base address (``https://host[:port][/path]``); else :class:`ConfigError`."""
    if mirror is None:
        return None
    text = mirror.strip()
    try:
        parts = urllib.parse.urlsplit(text)
        valid = (parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
                 and not parts.query and not parts.fragment and not any(c.isspace() for c in text))
    except ValueError:  # e.g. a port that is not a number, an unclosed IPv6 bracket
        valid = False
    if not valid:
        raise ConfigError(
            f"--mirror {mirror!r} is not a web address; a mirror is the http(s) base URL of a copy of "
            f"physionet.org's layout (files under <mirror>/files/<project>/<version>/), e.g. {PHYSIONET} "
            "or http://127.0.0.1:8000"
        )
    return text


def _download_source(source: Source, root: Path, mirror: str | None, workers: int) -> Path:
    base = source.base_url(mirror)
    dest = root / source.folder
    dest.mkdir(parents=True, exist_ok=True)
    files = _listing(source, base)
    if not files:
        raise DataError(f"{base}{source.prefix}: no files listed for {source.folder}; check --mirror")
    targets = {relative: _target(dest, relative, len(source.prefix), base) for relative in files}
    progress = tqdm(total=len(files), desc=f"download {source.folder}", unit="file", disable=None)
    failures: list[str] = []

    def fetch(item: tuple[str, str | None]) -> None:
        relative, digest = item
        try:
            _fetch_file(base + urllib.parse.quote(relative), targets[relative], digest)
        except DataError as exc:
            failures.append(str(exc))
        except OSError as exc:  # writing: a full disk, a read-only folder
            failures.append(f"{targets[relative]}: cannot write ({exc.strerror or exc})")
        progress.update(1)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fetch, sorted(files.items())))
    progress.close()
    if failures:
        more = f" (+{len(failures) - 3} more)" if len(failures) > 3 else ""
        raise DataError(f"{len(failures)} of {len(files)} files of {source.folder} failed (rerun to resume): "
                        f"{'; '.join(sorted(failures)[:3])}{more}")
    log.info("%s: %d files in %s", source.folder, len(files), dest)
    return dest


def _target(dest: Path, listed: str, prefix_length: int, base: str) -> Path:
    """Where a listed file (its path in the project, dataset prefix first) goes under ``dest``.

    A listing comes from the server (``SHA256SUMS.txt``, ``RECORDS``, the signal file names in
    headers): a hostile or broken one must not write ``../../.bashrc``, so a path that is empty,
    absolute, has ``.``/``..``/empty parts, backslashes or control characters is a :class:`DataError`.
    """
    relative = listed[prefix_length:]
    parts = relative.split("/")
    if (not relative or "\\" in relative or any(p in ("", ".", "..") for p in parts)
            or any(ord(c) < 32 for c in relative)):
        raise DataError(f"{base}: the file list names {listed[:120]!r}, a path outside the dataset folder "
                        f"{dest}; refusing to download from this listing")
    return dest.joinpath(*parts)


def _listing(source: Source, base: str) -> dict[str, str | None]:
    """Project-relative path -> expected SHA-256 (None when the project publishes no sums)."""
    try:
        text = _get_text(base + "SHA256SUMS.txt")
    except FileNotFoundError:
        log.warning("%sSHA256SUMS.txt not published: listing via RECORDS, files NOT checksum-verified", base)
        return {path: None for path in _records_listing(source, base)}
    out: dict[str, str | None] = {}
    for line in text.splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2:
            continue
        digest, path = parts[0].lower(), parts[1].lstrip("*").strip()
        if path.startswith(source.prefix) and source.wanted(path[len(source.prefix):]):
            out[path] = digest
    return out


def _records_listing(source: Source, base: str) -> list[str]:
    """Files reachable from the project's ``RECORDS`` index, restricted to ``source.prefix``.

    PhysioNet's root ``RECORDS`` lists records (``records500/00000/00001_hr``) or group folders
    (``training/georgia/g1/``, each with its own ``RECORDS``), relative to the listing's folder.
    """
    out: list[str] = []
    pending = [""]
    while pending:
        folder = pending.pop()
        try:
            lines = _get_text(base + folder + "RECORDS").split()
        except FileNotFoundError:
            raise DataError(f"{base}{folder}: neither SHA256SUMS.txt nor RECORDS found; cannot list files") from None
        for entry in lines:
            full = folder + entry
            if full.endswith("/"):
                if full.startswith(source.prefix) or source.prefix.startswith(full):
                    pending.append(full)
                continue
            header = full + ".hea"
            if not header.startswith(source.prefix) or not source.wanted(header[len(source.prefix):]):
                continue
            out.append(header)
            folder_of_header = posixpath.dirname(header)
            for line in _get_text(base + header).splitlines()[1:]:
                if line.strip() and not line.startswith("#"):
                    out.append(posixpath.join(folder_of_header, line.split()[0]))
    for name in source.include:
        if name and not name.endswith("/"):
            out.append(source.prefix + name)
    return sorted(set(out))


def _get_text(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise FileNotFoundError(url) from None
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # HTTPException: a broken reply
        raise DataError(f"{url}: cannot connect ({exc}); check the network or use --mirror") from None


def _fetch_file(url: str, target: Path, digest: str | None) -> None:
    """Fetch ``url`` to ``target`` unless already there and verified; resume a ``.part`` file.

    The download is renamed to ``target`` only once verified: its SHA-256 against the published
    one, or (no sums published) its size against the length the server announced. A download
    that fails verification is deleted and fetched once more, then named in the error.
    """
    if target.is_file() and (digest is None or integrity.digest(target) == digest):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    if part.is_symlink() or (part.exists() and not part.is_file()):  # never write through a link or into a folder
        _remove(part)
    problem = ""
    for attempt in (1, 2):
        size = _fetch_part(url, part)
        if digest is not None:
            problem = "" if integrity.digest(part) == digest else "SHA-256 does not match PhysioNet's SHA256SUMS.txt"
        elif size is not None and part.stat().st_size != size:
            problem = f"size {part.stat().st_size} bytes does not match the {size} bytes the server announced"
        if not problem:
            part.replace(target)
            return
        log.warning("%s: %s (attempt %d); deleted, downloading again", url, problem, attempt)
        part.unlink()
    raise DataError(f"{url}: {problem} after two downloads; the download was deleted")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _fetch_part(url: str, part: Path) -> int | None:
    """Fetch ``url`` into ``part`` (resuming it); return the file's full size if the server said it."""
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the part is already complete (or longer than the file: verified next)
            return _total_size(exc.headers.get("Content-Range"), None)
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise DataError(f"{url}: cannot connect ({exc}); rerun to resume") from None
    with response:
        resumed = offset and response.status == 206
        if resumed:
            size = _total_size(response.headers.get("Content-Range"), None)
        else:
            size = _total_size(None, response.headers.get("Content-Length"))
        with part.open("ab" if resumed else "wb") as out:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as exc:  # IncompleteRead: fewer bytes than announced
                    raise DataError(f"{url}: connection lost ({exc}); rerun to resume") from None
                if not chunk:
                    break
                out.write(chunk)  # a full disk is an OSError, reported by the caller with the file's name
    return size


def _total_size(content_range: str | None, content_length: str | None) -> int | None:
    """The full size from ``Content-Range: bytes a-b/N`` (or ``*/N``) or ``Content-Length: N``; None if absent."""
    text = content_range.rpartition("/")[2] if content_range else content_length
    try:
        return int(text) if text is not None and text.strip().isdigit() else None
    except ValueError:
        return None
