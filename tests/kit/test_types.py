from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import StatementError

from rappit.kit.types import Money, UtcDateTime, format_money
from tests.conftest import TestDatabase

SQLITE = sqlite.dialect()
POSTGRESQL = postgresql.dialect()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("10.0000"), "10.00"),
        (Decimal("10"), "10.00"),
        (Decimal("1.2345"), "1.2345"),
        (Decimal("1.2000"), "1.20"),
        (Decimal("0.0000"), "0.00"),
        (Decimal("0"), "0.00"),
        (Decimal("-3.5000"), "-3.50"),
        # normalize() turns 100 into 1E+2: the formatting must not show an exponent.
        (Decimal("100.0000"), "100.00"),
        (Decimal("1234567.8900"), "1234567.89"),
    ],
)
def test_format_money(value: Decimal, expected: str) -> None:
    assert format_money(value) == expected


def test_money_binds_at_four_decimals() -> None:
    money = Money()
    assert money.process_bind_param(Decimal("1.23456"), POSTGRESQL) == Decimal("1.2346")
    # SQLite has no decimal type: text keeps the value exact.
    assert money.process_bind_param(Decimal("1.23456"), SQLITE) == "1.2346"
    assert money.process_bind_param(Decimal("10"), SQLITE) == "10.0000"
    assert money.process_bind_param(None, SQLITE) is None
    assert money.process_result_value("10.0000", SQLITE) == Decimal("10.0000")


def test_utc_datetime_rejects_naive_values() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        UtcDateTime().process_bind_param(datetime(2026, 1, 1, 12, 0), POSTGRESQL)


def test_utc_datetime_normalises_to_utc() -> None:
    berlin = datetime(2026, 1, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    column_type = UtcDateTime()
    assert column_type.process_bind_param(berlin, POSTGRESQL) == datetime(
        2026, 1, 1, 12, 0, tzinfo=UTC
    )
    # SQLite stores no offset: the value is written as naive UTC and read back as aware UTC.
    assert column_type.process_bind_param(berlin, SQLITE) == datetime(2026, 1, 1, 12, 0)
    assert column_type.process_result_value(datetime(2026, 1, 1, 12, 0), SQLITE) == datetime(
        2026, 1, 1, 12, 0, tzinfo=UTC
    )


async def test_round_trip_through_the_database(database: TestDatabase) -> None:
    metadata = MetaData()
    table = Table(
        "kit_types_probe",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("amount", Money),
        Column("at", UtcDateTime),
        prefixes=["TEMPORARY"],
    )
    berlin = datetime(2026, 3, 1, 10, 30, 15, 123456, tzinfo=timezone(timedelta(hours=1)))
    async with database.engine.connect() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.execute(
            insert(table),
            [
                {"id": 1, "amount": Decimal("10"), "at": berlin},
                {"id": 2, "amount": Decimal("-3.5"), "at": berlin},
                {"id": 3, "amount": Decimal("1.23456"), "at": berlin},
            ],
        )
        rows = (await connection.execute(select(table).order_by(table.c.id))).all()
        with pytest.raises(StatementError, match="naive datetime"):
            await connection.execute(insert(table).values(id=4, at=datetime(2026, 1, 1)))
        await connection.rollback()

    assert [format_money(row.amount) for row in rows] == ["10.00", "-3.50", "1.2346"]
    assert {row.at for row in rows} == {berlin}
    assert all(row.at.tzinfo is UTC for row in rows)
