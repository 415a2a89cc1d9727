"""Shipped data, not code: the local-cluster configs, Prometheus config and rules, Grafana dashboards.

Installed as ``fleetgate.deploy`` so an installed fleetgate finds them with
``importlib.resources`` (``fleetgate.core.shipped``); nothing here is imported
by the router or the replicas.
"""
