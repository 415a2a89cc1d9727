"""The canonical layer every dialect shares, pure translation.

Folding events into segments and a completion, event kinds, ids, tools and tool results, reasoning
efforts, content checks, SSE framing, the stats object.
"""
