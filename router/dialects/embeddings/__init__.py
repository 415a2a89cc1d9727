"""OpenAI Embeddings: ``POST /v1/embeddings`` (a ``task: embed`` model's vectors; unary on the replica)."""
