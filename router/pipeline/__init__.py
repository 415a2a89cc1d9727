"""The request pipeline every dialect route runs: the I/O around a pure dialect.

Auth, body, admission, dispatch, folding or streaming, finish hooks: named steps over one
``RequestContext`` (``context.py``), one module per step, run by ``runner.py``.
"""
