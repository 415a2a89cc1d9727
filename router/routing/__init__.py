"""Routing: which replica serves a request. One small interface, one file per policy, a factory by config.

A ``RoutingPolicy`` chooses one replica from the healthy candidates of a model
given the request's ``RoutingFacts`` (the model, an affinity hint). The policy
is chosen by ``router.routing_policy`` (``factory.py``): ``power_of_two`` (the
default, ``power_of_two.py``). The router's own count of open calls per
replica, which policies read as part of a replica's load, is kept apart from
them (``in_flight.py``): the dispatcher acquires and releases it.
"""
