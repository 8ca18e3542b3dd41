"""The results store's frame: what the report reads every row from."""
from __future__ import annotations

import harness.plugins  # noqa: F401  (every task's metrics are declared)
from harness.metrics import Metric
from harness.store import JOB_COLUMNS, JobRecord, ResultStore


def test_rows_with_the_same_params_read_back_equal_and_independent(tmp_path):
    store = ResultStore(tmp_path / "results.sqlite")
    run_id = store.start_run()
    columns = dict.fromkeys(JOB_COLUMNS) | {"suite": "s", "model": "m", "task": "latency", "dataset": "d"}
    setting, nested = {"batch_size": 8, "precision": "fp32"}, {"batch_size": 8, "sizes": [224, 256]}
    for key in ("a", "b"):
        store.save(JobRecord(key, columns, "ok", [Metric("latency_ms_mean", 5.0, 10, setting),
                                                  Metric("params_m", 1.0, 1),
                                                  Metric("throughput_img_s", 50.0, 10, nested)]), run_id)
    frame = store.frame()
    store.close()
    params = list(frame["params"])
    assert params == [setting, {}, nested] * 2
    params[0]["batch_size"] = 1  # a report that edits one row's params must leave every other row as stored
    params[2]["sizes"].append(320)
    assert params[3:] == [setting, {}, nested] and params[1] is not params[4]
