"""The canonical layer every dialect shares, pure translation: folding events into segments and a completion, event kinds, ids, tools, content checks, SSE framing, the stats object."""
