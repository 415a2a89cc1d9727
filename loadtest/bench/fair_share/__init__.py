"""``fleetgate bench fair-share``: a heavy and a light API key on a saturated sim cluster, fair share against FIFO.

See ``run.py`` for what runs and how it is measured, ``report.py`` for what is written.
"""
