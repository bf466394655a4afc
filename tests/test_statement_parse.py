"""Reading M-Pesa statement exports: columns by name, money-in rows only, Nairobi time to UTC, errors by line."""
from datetime import datetime

import pytest

from gateway.reconciliation.statement import StatementError, parse
from tests.conftest import FIXTURES

SAMPLE = (FIXTURES / "mpesa_statement.csv").read_bytes()
HEADER_LINE = 7  # the sample has six metadata rows


def test_sample_keeps_the_two_money_in_lines_and_skips_the_charge():
    statement = parse(SAMPLE)
    assert [line.receipt for line in statement.lines] == ["RKTQDM7W6S", "RKTQDM7W6T"]
    assert statement.skipped == 1
    assert statement.header_line == HEADER_LINE
    first, second = statement.lines
    assert (first.line_no, first.amount, first.account, first.channel) == (8, 10, "482913", "c2b")
    assert first.completed_at == datetime(2026, 11, 22, 3, 38, 45)  # 06:38:45 in Nairobi
    assert (second.amount, second.account, second.channel) == (1200, "12345", "stk")
    assert (second.phone_prefix, second.phone_suffix, second.phone) == ("25472", "904", "")
    assert second.details.startswith("Pay Bill Online from 25472****904")
    assert second.other_party == "254722****04 - MARY W"


def test_sample_period_comes_from_the_metadata():
    statement = parse(SAMPLE)
    assert statement.metadata["organization short code"] == ["600638"]
    assert statement.period() == (datetime(2026, 11, 21, 21, 0, 0), datetime(2026, 11, 22, 20, 59, 59))
    assert statement.period_text() == "22-11-2026 00:00:00 to 22-11-2026 23:59:59"


def test_without_a_period_the_lines_give_it():
    text = SAMPLE.decode().replace("Time Period:,From,22-11-2026 00:00:00,To,22-11-2026 23:59:59\n", "")
    statement = parse(text.encode())
    assert statement.period_start is None
    assert statement.period() == (datetime(2026, 11, 22, 3, 38, 45), datetime(2026, 11, 22, 6, 12, 3))


def test_utf8_bom_and_windows_line_ends_are_read():
    data = b"\xef\xbb\xbf" + SAMPLE.replace(b"\n", b"\r\n")
    assert [line.receipt for line in parse(data).lines] == ["RKTQDM7W6S", "RKTQDM7W6T"]


def test_header_first_with_a_bom_is_found():
    body = SAMPLE.decode().split("\n", 6)[6]  # the header and rows only
    statement = parse(("\ufeff" + body).encode())
    assert statement.header_line == 1
    assert len(statement.lines) == 2


def test_cp1252_export_is_read():
    data = SAMPLE.decode().replace("MARY W", "MÁRÍA Wé").encode("cp1252")
    line = parse(data).lines[1]
    assert "MÁRÍA Wé" in line.details
    assert line.account == "12345"


def test_till_style_upper_case_headers_in_another_order():
    data = (
        "RECEIPT_NUMBER,TRANSACTION_STATUS,CREDIT_AMOUNT,DEBIT_AMOUNT,COMPLETION_TIME,DETAILS,REASON_TYPE,"
        "ACCOUNT_NUMBER,OTHER_PARTY_INFO\n"
        'QAB1CD2EF3,Completed,"2,500.00",,01-03-2026 14:00:00,Buy Goods from 254711000222 - ALI,'
        "Buy Goods,,254711000222 - ALI\n"
        "QAB1CD2EF4,Completed,,15.00,01-03-2026 14:00:00,Merchant Charge,Merchant Charge,,\n"
        "QAB1CD2EF5,Failed,300.00,,01-03-2026 14:05:00,Buy Goods from 254711000333 - BO,Buy Goods,,\n"
    ).encode()
    statement = parse(data)
    assert statement.skipped == 2
    (line,) = statement.lines
    assert (line.receipt, line.amount, line.channel, line.phone) == ("QAB1CD2EF3", 2500, "c2b", "254711000222")
    assert line.completed_at == datetime(2026, 3, 1, 11, 0, 0)


def test_account_falls_back_to_details_when_the_column_is_empty():
    data = SAMPLE.decode().replace(",true,Pay Bill Online,254722****04 - MARY W,,12345",
                                   ",true,Pay Bill Online,254722****04 - MARY W,,").replace(
        "Acc. 12345", "Acc. inv-19").encode()
    assert parse(data).lines[1].account == "INV-19"


def _broken(old: str, new: str) -> StatementError:
    with pytest.raises(StatementError) as caught:
        parse(SAMPLE.decode().replace(old, new, 1).encode())
    return caught.value


def test_no_header_names_line_and_column():
    with pytest.raises(StatementError) as caught:
        parse(b"name,amount\nalice,10\nbob,20\n")
    assert (caught.value.line_no, caught.value.column) == (1, "Receipt No.")
    assert "Line 1, column Receipt No.: no header row" in str(caught.value)


def test_missing_required_column_names_the_header_line():
    error = _broken("Receipt No.,Completion Time", "Reference,Completion Time")
    assert (error.line_no, error.column) == (HEADER_LINE, "Receipt No.")
    assert "column Receipt No.: this required column is missing" in str(error)
    error = _broken("Paid In,", "Money,")
    assert (error.line_no, error.column) == (HEADER_LINE, "Paid In")


def test_impossible_date_names_line_and_column():
    error = _broken("22-11-2026 09:12:03,22-11-2026 09:11:58", "31-02-2026 10:00:00,22-11-2026 09:11:58")
    assert (error.line_no, error.column) == (9, "Completion Time")
    assert "'31-02-2026 10:00:00' is not a real date" in error.message


def test_unreadable_date_names_line_and_column():
    error = _broken("22-11-2026 06:38:45,22-11-2026 06:38:45", "yesterday,22-11-2026 06:38:45")
    assert (error.line_no, error.column) == (8, "Completion Time")


def test_fractional_amount_names_line_and_column():
    error = _broken('"1,200.00"', "12.50")
    assert (error.line_no, error.column) == (9, "Paid In")
    assert "not a whole number of shillings" in str(error)


def test_junk_amount_names_line_and_column():
    error = _broken("Completed,10.00,", "Completed,abc,")
    assert (error.line_no, error.column) == (8, "Paid In")
    assert str(error) == "Line 8, column Paid In: 'abc' is not an amount"


def test_amounts_with_thousands_separators_and_zero_cents():
    data = SAMPLE.decode().replace('"1,200.00"', '"1,020.0"').encode()
    assert parse(data).lines[1].amount == 1020


def test_large_statement_parses_quickly():
    import time

    from bench.recon_data import make_dataset

    data = make_dataset(20_000).csv_bytes
    started = time.perf_counter()
    statement = parse(data)
    assert len(statement.lines) == 20_000
    assert time.perf_counter() - started < 5  # about 0.2 s here; generous for a loaded CI box
