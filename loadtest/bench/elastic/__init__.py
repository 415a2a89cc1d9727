"""``fleetgate bench elastic``: a bursty load on the sim, the elastic fleet against a fixed fleet sized for the
burst (``run.py``; its arithmetic and report in ``report.py``)."""
