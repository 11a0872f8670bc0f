"""Which failures the event duties retry: an unreachable database is transient however it is reported."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError

from carepath.events.consumer import is_transient


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _dbapi_error(sqlstate: str) -> DBAPIError:
    return DBAPIError("SELECT 1", None, _DriverError(sqlstate))


@pytest.mark.parametrize("sqlstate", ["28000", "08006", "57P03", "53300"])
def test_a_refused_or_lost_connection_is_transient(sqlstate: str) -> None:
    # An error raised during an outage may be classified after the database is back: the SQLSTATE says it all.
    assert is_transient(_dbapi_error(sqlstate))


@pytest.mark.parametrize("sqlstate", ["23505", "42P01", "22P02"])
def test_a_data_or_schema_error_is_not_transient(sqlstate: str) -> None:
    assert not is_transient(_dbapi_error(sqlstate))
