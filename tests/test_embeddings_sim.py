"""``POST /v1/embeddings`` through a real router (auth on), Redis and sim replicas over gRPC, with the openai SDK.

The models are tests/configs/embeddings-sim.yaml's: ``emb-sim`` (64 dimensions, Matryoshka, 32 tokens per input),
``emb-fixed`` (16 dimensions, no ``dimensions``) and the chat model ``emb-chat``. The sim's vectors are a hash of
the input's words (replicas/sim_engine/embedding.py), so identical texts give identical vectors; a sim token is a
word, so the token counts below are word counts.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from keys_helpers import create_key
from replica_process import ReplicaProcess
from router_process import REPO, RouterProcess
from test_router_rate_limits import unique
from test_usage import key_id, wait_for_row

CONFIG = REPO / "tests" / "configs" / "embeddings-sim.yaml"
MODELS = ("emb-sim", "emb-fixed", "emb-chat")


@pytest.fixture(scope="module")
def router(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    logs: Path = tmp_path_factory.mktemp("embeddings")
    replicas = [ReplicaProcess(CONFIG, model, redis_server.url, log_path=logs / f"{model}.log") for model in MODELS]
    router = RouterProcess(CONFIG, redis_server.url, env={"FLEETGATE_ROUTER__AUTH": "true"},
                           log_path=logs / "router.log")
    try:
        for replica in replicas:
            replica.start()
        router.start()
        for model in MODELS:
            router.wait_for_replicas(model, 1)
        yield router
    finally:
        router.stop()
        for replica in replicas:
            replica.stop()


@pytest.fixture()
def secret(redis_server) -> str:
    return create_key(redis_server.url, unique("emb"))


def client(router: RouterProcess, secret: str) -> openai.OpenAI:
    return router.openai(api_key=secret)


def post(router: RouterProcess, secret: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{router.base_url}/v1/embeddings", json=body, headers={"Authorization": f"Bearer {secret}"},
                      timeout=30.0)


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


def assert_error(response: httpx.Response, status: int, param: str | None, code: str | None = None) -> str:
    """The response is OpenAI's error shape with ``status`` and ``param`` (and ``code``); returns its message."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    assert error["message"]
    return str(error["message"])


# ------------------------------------------------------------------ shapes


def test_one_string_answers_one_unit_vector_in_openais_shape(router, secret):
    raw = post(router, secret, {"model": "emb-sim", "input": "the quick brown fox", "encoding_format": "float"})
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert set(body) == {"object", "data", "model", "usage"}
    assert body["object"] == "list" and body["model"] == "emb-sim"
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    (item,) = body["data"]
    assert set(item) == {"object", "index", "embedding"}
    assert item["object"] == "embedding" and item["index"] == 0
    assert len(item["embedding"]) == 64 and abs(norm(item["embedding"]) - 1) < 1e-5
    assert raw.headers["x-fleetgate-replica"]

    typed = client(router, secret).embeddings.create(model="emb-sim", input="the quick brown fox",
                                                      encoding_format="float")
    assert typed.data[0].embedding == item["embedding"]  # deterministic: identical text, identical vector
    assert typed.usage.prompt_tokens == typed.usage.total_tokens == 4


def test_a_list_keeps_its_order_and_indexes_and_its_usage_adds_up(router, secret):
    texts = ["alpha beta", "gamma", "delta epsilon zeta", "alpha beta"]
    sdk = client(router, secret)
    batch = sdk.embeddings.create(model="emb-sim", input=texts, encoding_format="float")
    assert [d.index for d in batch.data] == [0, 1, 2, 3]
    singles = [sdk.embeddings.create(model="emb-sim", input=t, encoding_format="float") for t in texts]
    assert [d.embedding for d in batch.data] == [s.data[0].embedding for s in singles]
    assert batch.data[0].embedding == batch.data[3].embedding
    assert batch.data[0].embedding != batch.data[1].embedding
    assert batch.usage.prompt_tokens == batch.usage.total_tokens == 2 + 1 + 3 + 2
    assert batch.usage.prompt_tokens == sum(s.usage.prompt_tokens for s in singles)


def test_base64_is_little_endian_float32_and_the_sdk_decodes_its_default(router, secret):
    sdk = client(router, secret)
    floats = sdk.embeddings.create(model="emb-sim", input=["one two", "three"], encoding_format="float")
    # Asked for explicitly, base64 comes back as the string (the SDK leaves it as sent).
    encoded = sdk.embeddings.create(model="emb-sim", input=["one two", "three"], encoding_format="base64")
    for as_float, as_base64 in zip(floats.data, encoded.data, strict=True):
        assert isinstance(as_base64.embedding, str)
        raw = base64.b64decode(as_base64.embedding)
        assert len(raw) == 4 * 64
        assert list(struct.unpack("<64f", raw)) == as_float.embedding
    # Without encoding_format the SDK asks for base64 and decodes it itself.
    default = sdk.embeddings.create(model="emb-sim", input=["one two", "three"])
    assert [d.embedding for d in default.data] == [d.embedding for d in floats.data]


def test_token_arrays_are_inputs_too(router, secret):
    sdk = client(router, secret)
    many = sdk.embeddings.create(model="emb-sim", input=[[1, 2, 3], [4]], encoding_format="float")
    assert len(many.data) == 2 and many.usage.prompt_tokens == 4
    one = sdk.embeddings.create(model="emb-sim", input=[1, 2, 3], encoding_format="float")
    assert len(one.data) == 1 and one.data[0].embedding == many.data[0].embedding


def test_dimensions_truncate_and_renormalise_a_matryoshka_model(router, secret):
    sdk = client(router, secret)
    full = sdk.embeddings.create(model="emb-sim", input="cut me short", encoding_format="float").data[0].embedding
    cut = sdk.embeddings.create(model="emb-sim", input="cut me short", dimensions=8,
                                encoding_format="float").data[0].embedding
    assert len(cut) == 8 and abs(norm(cut) - 1) < 1e-5
    head = full[:8]
    assert cut == pytest.approx([v / norm(head) for v in head], abs=1e-6)
    same = sdk.embeddings.create(model="emb-fixed", input="x", dimensions=16, encoding_format="float")
    assert len(same.data[0].embedding) == 16  # a model's own size is always fine

    message = assert_error(post(router, secret, {"model": "emb-fixed", "input": "x", "dimensions": 8}),
                           400, "dimensions")
    assert "does not support `dimensions`" in message
    assert_error(post(router, secret, {"model": "emb-sim", "input": "x", "dimensions": 65}), 400, "dimensions")
    assert_error(post(router, secret, {"model": "emb-sim", "input": "x", "dimensions": 0}), 400, "dimensions")


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "emb-sim"}, "input"),
    ({"model": "emb-sim", "input": ""}, "input"),
    ({"model": "emb-sim", "input": []}, "input"),
    ({"model": "emb-sim", "input": ["fine", ""]}, "input[1]"),
    ({"model": "emb-sim", "input": ["fine", 3.5]}, "input[1]"),
    ({"model": "emb-sim", "input": [[1, 2], []]}, "input[1]"),
    ({"model": "emb-sim", "input": [[1, -2]]}, "input[0]"),
    ({"model": "emb-sim", "input": {"text": "no"}}, "input"),
    ({"model": "emb-sim", "input": ["x"] * 2049}, "input"),
    ({"model": "emb-sim", "input": "x", "encoding_format": "hex"}, "encoding_format"),
    ({"input": "x"}, "model"),
])
def test_bad_input_is_a_400_naming_the_field(router, secret, body, param):
    assert_error(post(router, secret, body), 400, param)


def test_an_input_over_the_models_length_is_a_400_naming_it(router, secret):
    too_long = " ".join(["word"] * 40)  # emb-sim embeds at most 32 tokens per input
    message = assert_error(post(router, secret, {"model": "emb-sim", "input": ["short", too_long]}),
                           400, "input[1]", "context_length_exceeded")
    assert "40 tokens" in message


def test_models_of_the_wrong_kind_and_unknown_models(router, secret):
    assert_error(post(router, secret, {"model": "nope", "input": "x"}), 404, "model", "model_not_found")
    message = assert_error(post(router, secret, {"model": "emb-chat", "input": "x"}), 400, "model",
                           "model_not_supported")
    assert "not an embedding model" in message
    with pytest.raises(openai.BadRequestError) as refused:  # and the reverse: chat with an embedding model
        client(router, secret).chat.completions.create(model="emb-sim", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.status_code == 400
    assert "embedding model" in refused.value.message and "/v1/embeddings" in refused.value.message
    chat = client(router, secret).chat.completions.create(model="emb-chat",
                                                           messages=[{"role": "user", "content": "hi"}])
    assert chat.choices[0].message.content  # the chat model still chats


def test_a_call_without_a_key_is_a_401(router):
    assert_error(httpx.post(f"{router.base_url}/v1/embeddings", json={"model": "emb-sim", "input": "x"}), 401,
                 None, "invalid_api_key")


# ------------------------------------------------------------------ usage and rate limits


def test_the_usage_ledger_counts_input_tokens(router, redis_server, secret):
    sdk = client(router, secret)
    first = sdk.embeddings.create(model="emb-sim", input=["a b c", "d e"], encoding_format="float")
    second = sdk.embeddings.create(model="emb-sim", input="f g h i", encoding_format="float")
    row = wait_for_row(redis_server.url, key_id(redis_server.url, secret), "emb-sim", 2)
    assert row["input_tokens"] == first.usage.prompt_tokens + second.usage.prompt_tokens == 9
    assert row["output_tokens"] == 0 and row["errors"] == 0


def test_a_token_rate_limit_counts_embedding_tokens(router, redis_server):
    limited = create_key(redis_server.url, unique("emb-tpm"), "--tpm", "5")
    ok = post(router, limited, {"model": "emb-sim", "input": "one two three four five six"})
    assert ok.status_code == 200, ok.text
    assert ok.headers["x-ratelimit-limit-tokens"] == "5"
    refused = post(router, limited, {"model": "emb-sim", "input": "seven"})
    assert_error(refused, 429, None, "rate_limit_exceeded")
    assert refused.headers["retry-after"]
