"""One module per benchmark part: ``overhead`` (a, with LiteLLM for d), ``e2e`` (b, with LiteLLM for d),
``scaleout`` (c).
"""
