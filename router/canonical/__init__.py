"""The canonical layer every dialect shares: folding events, ids, tools, content checks, SSE framing, the request runner."""
