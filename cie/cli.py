"""Command line: ``cie <command>``. Run ``cie --help`` for the list."""

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from cie import keys_command
from cie.settings import REPO_ROOT, WORKER_ROLES, get_settings

DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"
DEFAULT_RETAIL_DIR = DEFAULT_DATA_ROOT / "online_retail"


def _init(args) -> int:
    from cie.apikeys import create_table
    from cie.kafka import ensure_topics
    from projections.wiring import create_stores

    settings = get_settings()
    topics = ensure_topics(settings)
    create_stores(settings)
    create_table(settings)
    print(f"topics ready: {', '.join(topics.event_topics + [topics.dead_letter, topics.import_ledger])}")
    print(f"stores ready: PostgreSQL schema {settings.postgres_schema}, ClickHouse database {settings.clickhouse_database}")
    return 0


def _import_retail(args) -> int:
    from cie.importers.publish import import_retail

    summary = import_retail(get_settings(), Path(args.data_dir), force=args.force, progress=not args.quiet)
    _print_summary(summary)
    return 0


def _import_reviews(args) -> int:
    from cie.importers.publish import import_reviews

    summary = import_reviews(get_settings(), Path(args.data_dir), force=args.force, progress=not args.quiet)
    _print_summary(summary)
    return 0


def _print_summary(summary) -> None:
    print(f"{summary.source}: files read: {summary.files} ({summary.files_skipped} already imported, not published again)")
    print(f"events published: {summary.events_published:,} in {summary.seconds:.1f} s "
          f"({summary.events_per_second:,.0f} events/s)")
    for event_type, count in sorted(summary.events_by_type.items()):
        print(f"  {event_type:<24} {count:>10,}")
    print("source records:")
    for name, count in sorted(summary.counts.items()):
        print(f"  {name:<38} {count:>10,}")


def _worker(args) -> int:
    from cie.kafka import ensure_topics
    from projections.wiring import create_stores

    settings = get_settings()
    ensure_topics(settings)
    if args.role == "recommender":
        from streams.recommender import run

        logging.getLogger().setLevel({"warn": "WARNING", "crit": "CRITICAL"}.get(args.loglevel, args.loglevel.upper()))
        return run(settings)
    create_stores(settings)
    os.environ["CIE_WORKER_ROLE"] = args.role
    from streams.app import app

    sys.argv = ["cie-worker", "worker", "--loglevel", args.loglevel, "--without-web"]
    app.main()
    return 0


def _lag(args) -> int:
    from projections.offsets import projection_lags, wait_for_exact_lists, wait_for_zero_lag

    settings = get_settings()
    if args.lists and args.wait is None:
        print("--lists requires --wait SECONDS, for example `cie lag --wait 600 --lists`", file=sys.stderr)
        return 2
    if args.wait is not None:
        started = time.perf_counter()
        before = projection_lags(settings)
        try:
            lags = wait_for_zero_lag(settings, timeout=args.wait, progress=not args.quiet)
        except TimeoutError as error:
            print(error, file=sys.stderr)
            return 1
        seconds = time.perf_counter() - started
        caught_up = sum(lag.lag for lag in before)
        if caught_up:
            print(f"applied {caught_up:,} records of backlog across the projections, the scorer and the recommender "
                  f"in {seconds:.1f} s ({caught_up / seconds:,.0f} records/s)")
        else:
            print("nothing to apply: every projection, the scorer and the recommender were already at lag 0")
        if args.lists:
            try:
                learned, _ = wait_for_exact_lists(settings, timeout=max(0.0, args.wait - seconds))
            except TimeoutError as error:
                print(error, file=sys.stderr)
                return 1
            print(f"every recommendation list is exact up to the {learned:,} events learned "
                  f"({time.perf_counter() - started - seconds:.1f} s after lag 0)")
    else:
        lags = projection_lags(settings)
    for lag in lags:
        print(f"{lag.projection:<16} applied {lag.applied:>9,} of {lag.total:>9,} records, lag {lag.lag:,}")
    return 0 if all(lag.lag == 0 for lag in lags) else 1


def _replay(args) -> int:
    from projections.replay import replay_and_compare

    report = replay_and_compare(get_settings(), progress=not args.quiet, keep=args.keep)
    print(report.render())
    return 0 if report.matches else 1


def _report(args) -> int:
    from cie.report import ReportError, demo_report

    try:
        print(demo_report(get_settings(), api_url=args.api_url, customer_id=args.customer))
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cie", description="Customer Insight and Enhancement platform")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("init", help="create the topics, the PostgreSQL schema and the ClickHouse database").set_defaults(run=_init)

    command = commands.add_parser("import-retail", help="publish the Online Retail CSV files as events")
    command.add_argument("--data-dir", default=str(DEFAULT_RETAIL_DIR), help="folder of transactions_*.csv.gz files")
    command.add_argument("--force", action="store_true", help="publish files again even if the import ledger lists them")
    command.set_defaults(run=_import_retail)

    command = commands.add_parser("import-reviews", help="publish the product review data sets as review events")
    command.add_argument("--data-dir", default=str(DEFAULT_DATA_ROOT),
                         help="folder that holds amazon_fine_food_reviews/ and datafiniti_amazon_reviews/")
    command.add_argument("--force", action="store_true", help="publish files again even if the import ledger lists them")
    command.set_defaults(run=_import_reviews)

    command = commands.add_parser("worker", help="run stream processors (a Faust worker) in the foreground")
    command.add_argument("--role", default="projections", choices=list(WORKER_ROLES),
                         help="projections: every projection agent; scorer: the sentiment scorer; recommender: the "
                              "online recommendation model (a second one waits as a standby). Run one of each.")
    command.add_argument("--loglevel", default="info", choices=["debug", "info", "warn", "error", "crit"],
                         help="least severe level that the worker logs")
    command.set_defaults(run=_worker)

    command = commands.add_parser("lag", help="print each projection's consumer lag; exit 1 if any is behind")
    command.add_argument("--wait", type=float, metavar="SECONDS", help="wait up to SECONDS for every lag to reach 0")
    command.add_argument("--lists", action="store_true",
                         help="with --wait, also wait until the recommender has rewritten every customer, country "
                              "and similar-products list exactly (about a minute after the whole retail history)")
    command.set_defaults(run=_lag)

    command = commands.add_parser("replay", help="rebuild every projection from offset 0 into empty tables and compare checksums with the live state")
    command.add_argument("--keep", action="store_true", help="keep the rebuilt schema and database for inspection")
    command.set_defaults(run=_replay)

    command = commands.add_parser("report", help="print what went through the pipeline, read from the API")
    command.add_argument("--api-url", default=None, help="API base URL (default: from CIE_API_HOST and CIE_API_PORT)")
    command.add_argument("--customer", default="12347", help="customer whose profile is shown")
    command.set_defaults(run=_report)

    keys_command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would bury the report
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
