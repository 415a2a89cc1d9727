"""The interface every engine implements (``vllm_engine``, ``sim_engine``); ``engine_factory`` builds them.

An engine turns one canonical request (``fleetgate.v1.GenerateRequest``) into a
stream of canonical events. The stream always begins with ``started`` (or a
``finish`` carrying an error when the request is refused before generation) and
ends with ``usage`` then ``finish``. Closing or cancelling the iterator aborts the
request in the engine at once. An engine of a ``task: embed`` model answers ``embed``
instead (and refuses ``generate``); one of a generation model refuses ``embed``.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, Mapping

from fleetgate.core.registry import Capabilities, Load
from fleetgate.replicas.embeddings import NOT_AN_EMBEDDING_MODEL
from fleetgate.v1 import replica_pb2 as pb


class Engine(abc.ABC):
    """One model served by one replica."""

    kind: str

    @abc.abstractmethod
    async def start(self) -> None:
        """Load the model; return when the engine can serve."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Abort what runs and release the engine."""

    @property
    @abc.abstractmethod
    def max_context_length(self) -> int: ...

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities: ...

    @property
    def max_num_seqs(self) -> int:
        """Sequences the engine runs at once (its batch bound, published for the router's admission); 0: unknown."""
        return 0

    @abc.abstractmethod
    def load(self) -> Load:
        """Current running / waiting requests and KV-cache usage."""

    @abc.abstractmethod
    async def count_tokens(self, request: pb.GenerateRequest) -> int:
        """Tokens of the prompt ``request`` renders to, exactly as ``generate`` would render it."""

    @abc.abstractmethod
    def generate(
        self, request: pb.GenerateRequest, trace_headers: Mapping[str, str] | None = None
    ) -> AsyncGenerator[pb.GenerateEvent, None]:
        """Canonical events for ``request``; closing the generator aborts it. ``trace_headers`` (W3C
        ``traceparent`` / ``tracestate``, while tracing is on) parent the engine's own spans, if it makes any."""

    @abc.abstractmethod
    async def abort(self, request_id: str) -> bool:
        """Abort a running request; False when it is not running."""

    async def cached_prefix(self, request: pb.GenerateRequest) -> pb.CachedPrefixResponse:
        """Prompt tokens of ``request`` the KV cache holds right now (the ``oracle`` routing policy); an engine
        that cannot tell answers ``supported = false``."""
        return pb.CachedPrefixResponse(supported=False)

    async def embed(self, request: pb.EmbedRequest) -> pb.EmbedResponse:
        """One unit vector per input of ``request``, in input order, for a ``task: embed`` model; or a refusal
        (``replicas/embeddings.py``). An engine of a generation model refuses with ERROR_CODE_UNSUPPORTED."""
        return NOT_AN_EMBEDDING_MODEL.response()

    async def healthy(self) -> tuple[bool, str]:
        return True, ""
