"""
Finding a model's files: a local folder, or a repository on the Hugging Face Hub fetched into mingpt's cache.

The one idea: a Hub repository is just a folder behind a URL. Every file of revision `rev` of repo `owner/name`
is served at ``{endpoint}/{owner/name}/resolve/{rev}/{filename}``, so "downloading a model" is a few plain HTTP
GETs (streamed, retried and written atomically by :mod:`mingpt.io.download`) into
``<cache>/hub/{owner/name}/{rev}/{filename}``. A file enters the cache only once it is verified: its size, the
checksum the Hub sends with it (the ETag: sha256 for large LFS files, the git blob id for small ones) and any
format check the caller passes. A file that is in the cache is used as it is, with no request at all; one that
then fails to load is removed and fetched again once (``ModelSource.refetch``). Delete a folder to fetch a fresh
copy (e.g. after the `main` branch moved on).

    from mingpt.io.hub import hub_file
    path = hub_file("openai-community/gpt2", "config.json")   # a pathlib.Path inside the cache

The endpoint is https://huggingface.co unless $MINGPT_HF_ENDPOINT (or $HF_ENDPOINT, Hugging Face's own name for
it) says otherwise: a mirror, or the tests' loopback server.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import re
import socket
import urllib.parse
from typing import Callable

from mingpt.io import download
from mingpt.io.download import git_blob_sha1

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
ENDPOINT_ENV_VARS = ("MINGPT_HF_ENDPOINT", "HF_ENDPOINT")  # the first one set wins

# Short names for the official checkpoints, as in the original minGPT, and the Hub repositories that hold them.
KNOWN_MODELS = {
    "gpt2": "openai-community/gpt2",  # 124M parameters
    "gpt2-medium": "openai-community/gpt2-medium",  # 350M
    "gpt2-large": "openai-community/gpt2-large",  # 774M
    "gpt2-xl": "openai-community/gpt2-xl",  # 1558M
    "distilgpt2": "distilbert/distilgpt2",  # 82M, distilled from gpt2
}

# A repo id is "owner/name" (the Hub's own rule: letters, digits, '-', '_', '.'; no '..', no leading '.').
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
# A revision is a branch, tag or commit; branches may contain '/', e.g. "refs/pr/1".
_REVISION = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


def hub_endpoint(endpoint: str | None = None) -> str:
    """The Hub's base URL: the argument, else $MINGPT_HF_ENDPOINT, else $HF_ENDPOINT, else huggingface.co."""
    if endpoint is None:
        endpoint = next((os.environ[v] for v in ENDPOINT_ENV_VARS if os.environ.get(v)), DEFAULT_ENDPOINT)
    if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"the Hub endpoint must be an http(s) URL such as {DEFAULT_ENDPOINT!r}, got {endpoint!r}")
    return endpoint.rstrip("/")


def hub_unreachable(endpoint: str | None = None) -> bool:
    """
    True when this machine cannot reach the Hub: HF_HUB_OFFLINE=1, or the endpoint's host name does not resolve
    (no network or no DNS). One name lookup, answered at once, logged in one line. Another client's retries
    cannot help there (transformers' from_pretrained retries a failed lookup for about 20 seconds), so a caller
    asks first and goes offline at once, e.g. ``from_pretrained("gpt2", local_files_only=hub_unreachable())``.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return True
    url = urllib.parse.urlsplit(hub_endpoint(endpoint))
    try:
        socket.getaddrinfo(url.hostname, url.port or (443 if url.scheme == "https" else 80))
    except OSError as e:  # socket.gaierror: "Name or service not known", "Temporary failure in name resolution"
        logger.warning("the Hugging Face Hub is unreachable: cannot resolve %s (%s); using local files only",
                       url.hostname, e.strerror or e)
        return True
    return False


def check_repo_id(repo_id: str) -> str:
    """Return repo_id if it has the Hub's 'owner/name' form, else raise ValueError saying what was expected."""
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise ValueError(f"a Hub repo id looks like 'owner/name' (e.g. 'openai-community/gpt2'), got {repo_id!r}")
    return repo_id


def check_revision(revision: str) -> str:
    """Return revision (a branch, tag or commit hash) if it is safe to use in a URL and a cache path."""
    if not isinstance(revision, str) or not _REVISION.match(revision) or ".." in revision.split("/"):
        raise ValueError(f"revision must be a branch, tag or commit hash such as 'main', got {revision!r}")
    return revision


def hub_url(repo_id: str, filename: str, revision: str = "main", endpoint: str | None = None) -> str:
    """The URL at which the Hub serves one file of one revision of a repository."""
    return f"{hub_endpoint(endpoint)}/{check_repo_id(repo_id)}/resolve/{check_revision(revision)}/{filename}"


def hub_cache_path(
    repo_id: str, filename: str, revision: str = "main", cache_dir: str | os.PathLike | None = None
) -> pathlib.Path:
    """Where hub_file keeps a file: <cache>/hub/{owner/name}/{revision}/{filename}."""
    root = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else download.cache_dir()
    return root / "hub" / check_repo_id(repo_id) / check_revision(revision) / filename


def hub_file(
    repo_id: str,
    filename: str,
    revision: str = "main",
    endpoint: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
    timeout: float = 30.0,
    retries: int = 3,
    validate: Callable[[pathlib.Path], None] | None = None,
) -> pathlib.Path:
    """
    Path of `filename` from a Hub repo, downloading it into the cache first if it is not there yet.
    validate: a format check run on the downloaded bytes before they enter the cache (raises ValueError).

    Raises FileNotFoundError when the Hub answers 404 (no such repo, revision or file), PermissionError for
    401/403 (a private or gated repo, or one that does not exist: the Hub does not say which), and
    mingpt.io.download.DownloadError (an OSError) when the network fails; each message says what to try next.
    """
    dest = hub_cache_path(repo_id, filename, revision, cache_dir)
    if dest.is_file():
        return dest
    url = hub_url(repo_id, filename, revision, endpoint)
    try:
        return download.download(url, dest, timeout=timeout, retries=retries, progress=progress, hub_checksums=True,
                                 validate=validate)
    except download.DownloadError as e:
        status = e.status_code
        where = f"{filename!r} of Hub repo {repo_id!r} at revision {revision!r}"
        if status == 404:
            raise FileNotFoundError(
                f"{where} was not found (HTTP 404 from {url}): check the repo id and the revision "
                f"(a branch, tag or commit hash that exists on the Hub)"
            ) from e
        if status in (401, 403):
            raise PermissionError(
                f"{where} could not be read (HTTP {status}): the repo does not exist, or it is private or gated, "
                f"which mingpt does not support; download its files by hand and pass their local directory"
            ) from e
        raise type(e)(
            f"could not download {where}: {e} Alternatively, download the model's config.json and model.safetensors "
            f"on a machine with internet access, put them in one local directory and pass that directory's path "
            f"instead of the name.", status_code=e.status_code
        ) from e


class ModelSource:
    """
    Where one model's files live: a local directory, or a repo on the Hub at a revision (fetched into the cache).

    Both kinds answer the same two questions, so the loader does not care which it has:
    ``cached(filename)`` (the path if the file is already on this machine, else None, with no request) and
    ``fetch(filename)`` (the path, downloading if needed; FileNotFoundError if the model has no such file).
    """

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        repo_id: str | None = None,
        revision: str = "main",
        endpoint: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        **download_options,
    ):
        if (directory is None) == (repo_id is None):
            raise ValueError(f"give a directory or a repo_id, not both or neither (got {directory!r}, {repo_id!r})")
        self.directory = pathlib.Path(directory) if directory is not None else None
        self.repo_id = check_repo_id(repo_id) if repo_id is not None else None
        self.revision = check_revision(revision)
        self.endpoint = endpoint
        self.cache_dir = cache_dir
        self.download_options = download_options  # timeout=, retries= for mingpt.io.download

    def __repr__(self) -> str:
        if self.directory is not None:
            return f"local directory {str(self.directory)!r}"
        return f"Hub repo {self.repo_id!r} at revision {self.revision!r}"

    def cached(self, filename: str) -> pathlib.Path | None:
        if self.directory is not None:
            path = self.directory / filename
        else:
            path = hub_cache_path(self.repo_id, filename, self.revision, self.cache_dir)
        return path if path.is_file() else None

    def fetch(self, filename: str, progress: bool = False, validate=None) -> pathlib.Path:
        path = self.cached(filename)
        if path is not None:
            return path
        if self.directory is not None:
            raise FileNotFoundError(f"{self!r} has no {filename}")
        options = dict(progress=progress, validate=validate, **self.download_options)
        return hub_file(self.repo_id, filename, self.revision, self.endpoint, self.cache_dir, **options)

    def refetch(self, filename: str, damage: str, progress: bool = False, validate=None) -> pathlib.Path:
        """
        A cached Hub file failed to load: remove it and download it again, once. `damage` says what was wrong;
        it is logged and, should the download fail (e.g. offline), opens the DamagedCacheError. A local
        directory is the user's own: nothing is removed, and the problem is raised as a ValueError.
        """
        path = self.cached(filename)
        if self.directory is not None or path is None:
            raise ValueError(damage)
        return download.redownload_damaged(path, damage, lambda: self.fetch(filename, progress, validate))


def model_source(
    name_or_path: str | os.PathLike,
    revision: str = "main",
    endpoint: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    **download_options,
) -> ModelSource:
    """
    Decide where a model name points. The rule, in order:

    1. an existing directory is used as it is (a local model in Hugging Face layout);
    2. a known short name ('gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl', 'distilgpt2') is its Hub repo;
    3. anything shaped like 'owner/name' is a Hub repo id;
    4. anything else is an error: a name without '/' lists the known names, a path says it does not exist.

    download_options (timeout=, retries=) are passed on to mingpt.io.download for Hub files.
    """
    if not isinstance(name_or_path, (str, os.PathLike)) or not str(name_or_path):
        raise TypeError(f"the model must be a name, a Hub repo id or a directory path, got {name_or_path!r}")
    name = str(name_or_path)
    path = pathlib.Path(name).expanduser()
    if path.is_dir():
        return ModelSource(directory=path)
    hub_options = dict(revision=revision, endpoint=endpoint, cache_dir=cache_dir, **download_options)
    if name in KNOWN_MODELS:
        return ModelSource(repo_id=KNOWN_MODELS[name], **hub_options)
    looks_like_path = isinstance(name_or_path, os.PathLike) or name.startswith((".", "/", "~", "\\"))
    if "/" in name and not looks_like_path and _REPO_ID.match(name) and ".." not in name:
        return ModelSource(repo_id=name, **hub_options)
    if path.is_file():  # e.g. ./my-model/config.json: the model is the folder around it
        raise FileNotFoundError(
            f"{name!r} is a file, but a local model is the directory holding config.json and model.safetensors "
            f"(or pytorch_model.bin); give the directory: {str(path.parent)!r}"
        )
    if "/" in name or "\\" in name or looks_like_path:
        raise FileNotFoundError(
            f"no directory {name!r} exists (looked in {path.resolve()}); a local model is a directory holding "
            f"config.json and model.safetensors (or pytorch_model.bin)"
        )
    raise ValueError(
        f"unknown model {name!r}: it is not a known name ({', '.join(KNOWN_MODELS)}) nor an existing directory. "
        f"Give one of those names, a Hub repo id such as 'openai-community/gpt2', or a local directory."
    )



def dataset_metadata(repo_id: str, revision: str = "main", endpoint: str | None = None,
                     cache_dir: str | os.PathLike | None = None) -> dict[str, dict]:
    """
    ``{filename: {'size', 'blobId', 'lfs': {'sha256', ...}}}`` for every file of a Hub dataset repo at `revision`,
    from the Hub API (``/api/datasets/{owner/name}/revision/{revision}?blobs=true``), cached beside the files.
    Large files are stored with Git LFS and carry their sha256; small ones carry git's blob id.
    """
    root = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else download.cache_dir()
    dest = root / "hub" / "datasets" / check_repo_id(repo_id) / check_revision(revision) / ".metadata.json"
    if not dest.is_file():
        url = f"{hub_endpoint(endpoint)}/api/datasets/{repo_id}/revision/{revision}?blobs=true"
        try:
            download.download(url, dest)
        except download.DownloadError as e:
            if e.status_code == 404:
                raise FileNotFoundError(f"dataset repo {repo_id!r} at revision {revision!r} was not found "
                                        f"(HTTP 404 from {url})") from e
            raise
    with open(dest, encoding="utf-8") as f:
        siblings = json.load(f).get("siblings") or []
    return {entry["rfilename"]: entry for entry in siblings if "rfilename" in entry}


def dataset_file(
    repo_id: str,
    filename: str,
    revision: str = "main",
    endpoint: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
    verify: bool = True,
) -> pathlib.Path:
    """
    Path of `filename` from a Hub *dataset* repo (served under ``{endpoint}/datasets/{owner/name}/resolve/...``),
    downloaded atomically into ``<cache>/hub/datasets/{owner/name}/{revision}/`` on first use. A cached file is used
    as it is, so fetching many files after an interruption resumes at the first one not yet complete.
    verify: check the download against the repo's listing (`dataset_metadata`): the LFS sha256 of a large file,
    git's blob id of a small one; a mismatch raises ChecksumError and nothing is kept.
    """
    parts = pathlib.PurePosixPath(filename).parts
    if not parts or filename.startswith("/") or ".." in parts:
        raise ValueError(f"filename must be a relative path inside the dataset repo, got {filename!r}")
    root = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else download.cache_dir()
    dest = root / "hub" / "datasets" / check_repo_id(repo_id) / check_revision(revision) / filename
    if dest.is_file():
        return dest
    sha256 = blob_id = None
    if verify:
        listing = dataset_metadata(repo_id, revision, endpoint, cache_dir)
        if filename not in listing:
            near = ", ".join(sorted(listing)[:10])
            raise FileNotFoundError(f"{filename!r} is not a file of dataset repo {repo_id!r} at revision "
                                    f"{revision!r}; its files include: {near}")
        sha256 = (listing[filename].get("lfs") or {}).get("sha256")
        blob_id = None if sha256 else listing[filename].get("blobId")
    url = f"{hub_endpoint(endpoint)}/datasets/{repo_id}/resolve/{revision}/{filename}"
    try:
        path = download.download(url, dest, sha256=sha256, progress=progress)
    except download.DownloadError as e:
        if e.status_code == 404:
            raise FileNotFoundError(f"{filename!r} of dataset repo {repo_id!r} at revision {revision!r} was not "
                                    f"found (HTTP 404 from {url}); check the file name on the dataset's page") from e
        raise
    if blob_id and (actual := git_blob_sha1(path)) != blob_id:
        os.remove(path)
        raise download.ChecksumError(f"{url} downloaded with git blob id {actual}, but the Hub lists {blob_id}: the "
                                     "file is corrupted or changed; it was not kept")
    return path
