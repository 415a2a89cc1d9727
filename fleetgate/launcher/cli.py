"""The ``fleetgate`` command line: one entry point, each subcommand implemented where its part lives.

    fleetgate up [--config FILE] [--port N] [--with-prometheus [--prometheus-port N]]
                                                                  the local cluster, in the foreground
    fleetgate router [--config FILE] [--port N]                   one more router on the same Redis
    fleetgate replica --model NAME [--config FILE] [--port N]     one replica as a plain process (no Ray)
    fleetgate controller [--config FILE]                          replicas as Ray actors (inside a Ray cluster)
    fleetgate toolbox [--config FILE] [--port N] [--toolbox-id ID]
                                                                  one toolbox process (server-side tool calls)
    fleetgate models prepare                                      convert the bundled model once
    fleetgate models list|load MODEL|unload MODEL                 model states; load / unload by hand
    fleetgate keys create --name NAME [settings] | update KEY [--name NAME] [settings] | rotate KEY
                   | list [--format table|json] | revoke KEY | limit KEY [--rpm N] [--tpm N]
                                                                  API keys in Redis: limits, roles, budgets
    fleetgate audit [--since WHEN] [--limit N] [--key ID] [--format table|json]
                                                                  the audit log of key changes
    fleetgate usage [--key KEY] [--model M] [--since DAY] [--until DAY] [--daily] [--format table|json|csv]
                                                                  what each API key used, per model and day
    fleetgate bench ...                                           side-by-side benchmarks (loadtest/)
    fleetgate bench trace --trace FILE ...                        replay a request trace per routing policy
    fleetgate bench fair-share ...                                a heavy and a light key: fair share vs FIFO
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any


def _part_arguments(module: str, name: str) -> Callable[..., Any]:
    """The argument helper ``name`` of another part's ``module``; one that adds nothing when this install
    leaves that part out (each image holds only its own folders: the router's has no ``loadtest/``), so every
    other command still starts. Running a command of a missing part says so (``main``)."""
    try:
        helper: Callable[..., Any] = getattr(importlib.import_module(module), name)
    except ImportError:
        return lambda *args, **kwargs: None
    return helper


add_elastic_arguments = _part_arguments("fleetgate.loadtest.bench.elastic.options", "add_elastic_arguments")
add_fair_share_arguments = _part_arguments("fleetgate.loadtest.bench.fair_share.options", "add_fair_share_arguments")
add_trace_arguments = _part_arguments("fleetgate.loadtest.bench.trace.options", "add_trace_arguments")
add_audit_arguments = _part_arguments("fleetgate.router.audit_cli", "add_audit_arguments")
add_limit_arguments = _part_arguments("fleetgate.router.keys_cli", "add_limit_arguments")
add_settings_arguments = _part_arguments("fleetgate.router.keys_cli", "add_settings_arguments")
add_model_arguments = _part_arguments("fleetgate.router.model_admin", "add_model_arguments")
add_usage_arguments = _part_arguments("fleetgate.router.usage.cli", "add_usage_arguments")


def _add_config(p: argparse.ArgumentParser, *, subcommand: bool = False) -> None:
    """``--config``. On a subcommand (``keys create --config c.yaml``) it is also accepted after the subcommand's
    name; its default is then SUPPRESS, so a ``--config`` given before the name is not reset."""
    p.add_argument("--config", default=argparse.SUPPRESS if subcommand else None,
                   help="YAML config (default deploy/local.yaml)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleetgate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the local cluster (Redis, Ray, replicas, router) in the foreground")
    _add_config(up)
    up.add_argument("--port", type=int, default=None, help="router port (default from config, 8080)")
    up.add_argument("--with-prometheus", action="store_true", help="also start a local Prometheus scraping the cluster")
    up.add_argument("--prometheus-port", type=int, default=9090, help="port of that Prometheus (default 9090)")

    router = sub.add_parser("router", help="run one router process")
    _add_config(router)
    router.add_argument("--host", default=None)
    router.add_argument("--port", type=int, default=None)

    replica = sub.add_parser("replica", help="run one replica as a plain process (development, tests)")
    _add_config(replica)
    replica.add_argument("--model", required=True, help="model name from the config")
    replica.add_argument("--host", default=None)
    replica.add_argument("--port", type=int, default=None, help="gRPC port (0 picks a free one)")
    replica.add_argument("--metrics-port", type=int, default=None, help="HTTP metrics port (0 picks a free one)")
    replica.add_argument("--replica-id", default=None)

    controller = sub.add_parser("controller", help="start and supervise the configured replicas as Ray actors")
    _add_config(controller)
    controller.add_argument(
        "--ray-address", default=None, help="Ray cluster to join (default from config; 'auto' inside a RayCluster)"
    )

    toolbox = sub.add_parser("toolbox", help="run one toolbox process (sandboxed python / bash, web search, MCP)")
    _add_config(toolbox)
    toolbox.add_argument("--port", type=int, default=None, help="gRPC port (default tools.base_port; 0: a free one)")
    toolbox.add_argument("--toolbox-id", default=None, help="its id in the registry (default: a random one)")

    models = sub.add_parser("models", help="manage the bundled model")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    prepare = models_sub.add_parser("prepare", help="convert the bundled SmolLM2-135M GGUF to safetensors (once)")
    prepare.add_argument("--force", action="store_true")
    add_model_arguments(models_sub, _add_config)  # list / load / unload (router/model_admin.py)

    keys = sub.add_parser("keys", help="manage API keys")
    _add_config(keys)
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True)
    add_settings_arguments(create)
    update = keys_sub.add_parser("update", help="change a key's name and settings, by its id or name")
    update.add_argument("key")
    update.add_argument("--name", dest="new_name", default=None, help="a new name")
    add_settings_arguments(update)
    rotate = keys_sub.add_parser("rotate", help="a new secret for a key (same id and settings), printed once")
    rotate.add_argument("key")
    listing = keys_sub.add_parser("list", help="list keys, their limits, roles and budgets (never the secret)")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id or name")
    revoke.add_argument("key")
    limit = keys_sub.add_parser("limit", help="set or clear a key's own rate limits, by its id or name")
    limit.add_argument("key")
    add_limit_arguments(limit)
    for keys_command in (create, update, rotate, listing, revoke, limit):
        _add_config(keys_command, subcommand=True)

    audit = sub.add_parser("audit", help="the audit log of key changes (admin API and CLI), newest first")
    _add_config(audit)
    add_audit_arguments(audit)

    usage = sub.add_parser("usage", help="what each API key used, per model (the usage ledger in Redis)")
    _add_config(usage)
    add_usage_arguments(usage)

    bench = sub.add_parser("bench", help="side-by-side benchmarks into loadtest/results (router overhead, vLLM, "
                                         "scale-out, LiteLLM)")
    bench.add_argument("--quick", action="store_true", help="small durations and concurrency (smoke test)")
    bench.add_argument("--parts", default="a,b,c,d",
                       help="comma-separated: a router overhead, b end to end on vLLM, c scale-out, "
                            "d LiteLLM (measured within a and b), e prefix routing on vLLM CPU (two replicas, "
                            "prefix against power_of_two); default a,b,c,d")
    bench.add_argument(
        "--out", default=None, help="directory for latest.md, latest.json, PNGs (default loadtest/results)"
    )
    bench.add_argument("--work-dir", default=None, help="process logs and generated configs (default a temp dir)")
    bench_sub = bench.add_subparsers(dest="bench_command")
    trace = bench_sub.add_parser("trace", help="replay a Mooncake-format trace through routers to sim replicas, "
                                               "once per routing policy (loadtest/results/trace)")
    add_trace_arguments(trace)
    fair_share = bench_sub.add_parser("fair-share", help="a heavy and a light API key on a saturated sim cluster: "
                                                         "fair share against FIFO (loadtest/results/fair_share)")
    add_fair_share_arguments(fair_share)
    elastic = bench_sub.add_parser("elastic", help="a bursty load on the sim: the elastic fleet against a fixed "
                                                   "fleet sized for the burst (loadtest/results/elastic)")
    add_elastic_arguments(elastic)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("fleetgate."):
            raise
        print(f"fleetgate {args.command}: this installation has no {exc.name} (an image holds only its own part)",
              file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "up":
        from fleetgate.launcher.local_cluster import run_local_cluster

        return run_local_cluster(args)
    if args.command == "router":
        from fleetgate.router.main import run_router

        return run_router(args)
    if args.command == "replica":
        from fleetgate.replicas.main import run_replica

        return run_replica(args)
    if args.command == "controller":
        from fleetgate.replicas.controller import run_controller

        return run_controller(args)
    if args.command == "toolbox":
        from fleetgate.toolbox.server import run_toolbox

        return run_toolbox(args)
    if args.command == "models" and args.models_command != "prepare":
        from fleetgate.router.model_admin import models_cli

        return models_cli(args)
    if args.command == "models":
        from fleetgate.replicas.bundled_model import prepare_cli

        return prepare_cli(args)
    if args.command == "keys":
        from fleetgate.router.keys_cli import keys_cli

        return keys_cli(args)
    if args.command == "audit":
        from fleetgate.router.audit_cli import audit_cli

        return audit_cli(args)
    if args.command == "usage":
        from fleetgate.router.usage.cli import usage_cli

        return usage_cli(args)
    if args.command == "bench" and args.bench_command == "elastic":
        from fleetgate.loadtest.bench.elastic.run import run_elastic

        return run_elastic(args)
    if args.command == "bench" and args.bench_command == "fair-share":
        from fleetgate.loadtest.bench.fair_share.run import run_fair_share

        return run_fair_share(args)
    if args.command == "bench" and args.bench_command == "trace":
        from fleetgate.loadtest.bench.trace.run import run_trace

        return run_trace(args)
    if args.command == "bench":
        from fleetgate.loadtest.bench.run import run_bench

        return run_bench(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
