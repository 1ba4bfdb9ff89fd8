"""The row-to-model step of the API's reads."""

from __future__ import annotations

from dataclasses import fields

from job_ledger.web import queries
from job_ledger.web.rows import JobLog


def test_a_job_logs_row_unpacks_into_the_job_log_fields_in_order() -> None:
    # queries._job_log unpacks each row positionally into JobLog, for speed: the selected
    # columns must be JobLog's fields, in the same order.
    columns = [
        part.split(" AS ")[-1].split("::")[0].strip() for part in queries._JOB_COLUMNS.split(",")
    ]
    assert columns == [f.name for f in fields(JobLog) if f.name != "notifications"]
