"""OpenAI legacy Completions: ``POST /v1/completions`` (a raw prompt, no chat template)."""
