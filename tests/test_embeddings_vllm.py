"""``POST /v1/embeddings`` of the bundled all-MiniLM-L6-v2 on vLLM CPU (its pooling runner) through a real router,
with the openai SDK: paraphrases are closer than unrelated texts, vectors are unit length, usage counts the
model's own tokens. One engine per test session (``vllm_embedding_replica`` in conftest.py)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import openai
import pytest

from conftest import VLLM_EMBED_CONFIG, VLLM_EMBED_MODEL
from router_process import RouterProcess


@pytest.fixture(scope="module")
def router(vllm_embedding_replica, redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    router = RouterProcess(VLLM_EMBED_CONFIG, redis_server.url,
                           log_path=tmp_path_factory.mktemp("vllm-embed-router") / "router.log")
    with router:
        router.wait_for_replicas(VLLM_EMBED_MODEL, 1, timeout=30)
        yield router


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_paraphrases_are_closer_than_unrelated_texts(router):
    texts = ["A man is playing a guitar.", "Someone is strumming a guitar.",
             "The central bank raised interest rates again.", "Kittens sleep in a basket by the fire."]
    client = router.openai()
    answer = client.embeddings.create(model=VLLM_EMBED_MODEL, input=texts)  # the SDK's default: base64, decoded
    vectors = [d.embedding for d in answer.data]
    assert [d.index for d in answer.data] == [0, 1, 2, 3]
    assert all(len(v) == 384 and abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-3 for v in vectors)
    paraphrase = cosine(vectors[0], vectors[1])
    unrelated = max(cosine(vectors[0], vectors[2]), cosine(vectors[0], vectors[3]), cosine(vectors[1], vectors[2]))
    assert paraphrase > 0.6 > unrelated + 0.2, (paraphrase, unrelated)
    # BERT's [CLS] ... [SEP] around each text's word pieces: "a man is playing a guitar ." is 7 of them.
    single = client.embeddings.create(model=VLLM_EMBED_MODEL, input=texts[0], encoding_format="float")
    assert single.usage.prompt_tokens == 9
    assert single.data[0].embedding == pytest.approx(vectors[0], abs=1e-5)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 4 * 5


def test_its_limits_are_400s_naming_the_field(router):
    client = router.openai()
    with pytest.raises(openai.BadRequestError) as too_long:
        client.embeddings.create(model=VLLM_EMBED_MODEL, input=["fine", "word " * 300])
    error = too_long.value.response.json()["error"]
    assert error["param"] == "input[1]" and error["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as dimensions:
        client.embeddings.create(model=VLLM_EMBED_MODEL, input="x", dimensions=128)
    assert dimensions.value.response.json()["error"]["param"] == "dimensions"
    with pytest.raises(openai.BadRequestError) as vocabulary:
        client.embeddings.create(model=VLLM_EMBED_MODEL, input=[[101, 999999]])
    assert vocabulary.value.response.json()["error"]["param"] == "input[0]"
    with pytest.raises(openai.BadRequestError) as chat:
        client.chat.completions.create(model=VLLM_EMBED_MODEL, messages=[{"role": "user", "content": "hi"}])
    assert chat.value.response.json()["error"]["param"] == "model"
