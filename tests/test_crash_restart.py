"""A worker killed with SIGKILL mid-stream, then restarted, ends with the same totals."""

import time

import psycopg

from projections import postgres
from projections.offsets import projection_lags
from projections.replay import replay_and_compare
from tests.conftest import RETAIL_SAMPLE
from tests.retail_truth import compute

KILLS = 3


def _kill_mid_stream(space, worker, start_fraction: float) -> None:
    """SIGKILL the worker once it has applied part of the backlog, and before it has applied all."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        lags = projection_lags(space.settings)
        done = sum(lag.applied for lag in lags) / sum(lag.total for lag in lags)
        if done >= 1.0:
            raise AssertionError(f"worker finished before it could be killed (kill at {start_fraction:.0%})")
        if done >= start_fraction:
            worker.kill()
            return
        time.sleep(0.02)
    raise AssertionError(f"worker never reached {start_fraction:.0%} of the backlog:\n{worker.log()[-2000:]}")


def test_killed_worker_loses_and_repeats_nothing(namespace):
    # Small batches and many of them, so that a kill lands between and inside batches.
    namespace.env["CIE_BATCH_SIZE"] = "7"
    result = namespace.run_cli("import-retail", "--data-dir", str(RETAIL_SAMPLE))
    assert result.returncode == 0, result.stderr

    for kill, fraction in enumerate([0.15, 0.4, 0.7][:KILLS]):
        worker = namespace.start_worker()
        _kill_mid_stream(namespace, worker, fraction)
        assert all(process.returncode == -9 for process in worker.processes), f"kill {kill + 1} did not land"

    namespace.start_worker()
    namespace.wait_caught_up()

    truth = compute(RETAIL_SAMPLE)
    with postgres.connect(namespace.settings, row_factory=psycopg.rows.dict_row) as conn:
        profiles = {row["customer_id"]: row for row in conn.execute("SELECT * FROM customers")}
    assert {cid: p["order_count"] for cid, p in profiles.items()} == {cid: len(t.orders) for cid, t in truth.customers.items()}
    assert {cid: p["net_revenue"] for cid, p in profiles.items()} == {
        cid: t.gross_revenue - t.cancelled_revenue for cid, t in truth.customers.items()}

    report = replay_and_compare(namespace.settings, progress=False, live_timeout=60)
    assert report.matches, report.render()
