"""`fleetgate models prepare`: the bundled SmolLM2-135M GGUF becomes a servable safetensors directory, and the
bundled all-MiniLM-L6-v2 zip a sentence-transformers directory, once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open
from transformers import AutoTokenizer

from fleetgate.replicas.bundled_model import (
    BUNDLED_MODELS,
    BUNDLED_SCHEME,
    CACHE_ENV,
    PREPARED_MARKER,
    resolve_model_path,
)

REPO = Path(__file__).resolve().parent.parent


def prepare(cache: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, CACHE_ENV: str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "fleetgate.launcher.cli", "models", "prepare", *flags],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=True,
    )


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fresh cache with the model prepared into it by the CLI: (cache root, model directory)."""
    cache = tmp_path_factory.mktemp("model-cache")
    prepare(cache)
    return cache, cache / "smollm2-135m"


def test_prepared_directory_holds_weights_tokenizer_and_chat_template(prepared):
    _, model_dir = prepared
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config  # dequantized: vLLM must not look for GGUF quantization
    with safe_open(model_dir / "model.safetensors", framework="pt") as weights:
        names = set(weights.keys())
        embedding = weights.get_tensor("model.embed_tokens.weight")
    assert len([n for n in names if n.endswith("self_attn.q_proj.weight")]) == config["num_hidden_layers"]
    assert tuple(embedding.shape) == (config["vocab_size"], config["hidden_size"])
    assert str(embedding.dtype) == "torch.float32"

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.eos_token == "<|im_end|>"


def test_the_embedding_model_is_extracted_as_a_sentence_transformers_directory(prepared):
    cache, _ = prepared
    model_dir = cache / "all-minilm-l6-v2"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == ["BertModel"] and config["hidden_size"] == 384
    modules = json.loads((model_dir / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] is True
    with safe_open(model_dir / "model.safetensors", framework="pt") as weights:
        embedding = weights.get_tensor("embeddings.word_embeddings.weight")
    assert tuple(embedding.shape) == (config["vocab_size"], 384)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer("Hello there")["input_ids"][0] == tokenizer.cls_token_id
    assert (model_dir / PREPARED_MARKER).is_file()


def test_prepare_is_idempotent_and_leaves_no_temporary_files(prepared):
    cache, model_dir = prepared
    before = {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()}
    output = prepare(cache).stdout
    assert "ready" in output and "converting" not in output
    assert {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()} == before
    assert sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) == sorted(BUNDLED_MODELS)


def test_an_incomplete_directory_is_converted_again(prepared):
    cache, model_dir = prepared
    (model_dir / PREPARED_MARKER).unlink()
    output = prepare(cache).stdout
    assert "converting" in output
    assert (model_dir / PREPARED_MARKER).is_file()


def test_model_specs_resolve_to_the_prepared_directory(prepared, monkeypatch):
    cache, model_dir = prepared
    monkeypatch.setenv(CACHE_ENV, str(cache))
    assert resolve_model_path(f"{BUNDLED_SCHEME}smollm2-135m") == str(model_dir)
    assert resolve_model_path("openai/gpt-oss-120b") == "openai/gpt-oss-120b"
    with pytest.raises(KeyError, match="unknown bundled model"):
        resolve_model_path(f"{BUNDLED_SCHEME}nope")
