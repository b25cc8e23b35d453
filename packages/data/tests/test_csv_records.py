"""CsvRecords: physical line numbers, per-field decoding and limits, and resync after a bad record."""

import csv

import pytest

from mgpt_data.csv_records import MAX_FIELD_CHARS, CsvRecords, printable, undecodable_at

HEADER = b"raw,sentids,split,filename,img_id\n"


def records(body: bytes, **kwargs) -> list[tuple[int, int, list[str], str | None]]:
    recs = CsvRecords((HEADER + body).decode("utf-8-sig", errors="surrogateescape"), **kwargs)
    out = []
    for r in recs:
        out.append((r.first_line, r.last_line, r.fields, r.error))
        if r.error is None and r.spans_lines and len(r.fields) != 5:  # what scan_annotations does
            recs.resume_at(r.first_line + 1)
    return out


def test_lines_count_physical_lines_including_quoted_newlines_and_crlf():
    body = b'"[""a""]",[0],train,1.jpg,1\r\n"[\n""b""\n]",[0],val,2.jpg,2\r\n\n"[""c""]",,test,3.jpg,3'
    got = records(body)
    assert [(a, b) for a, b, _, _ in got] == [(2, 2), (3, 5), (6, 6), (7, 7)]
    assert got[1][2][0] == '[\n"b"\n]' and got[2][2] == [] and got[3][2][4] == "3"
    assert all(err is None for *_, err in got)


def test_bom_is_dropped_from_the_header():
    recs = CsvRecords(("\ufeff" + HEADER.decode()).encode("utf-8").decode("utf-8-sig"))
    assert recs.header.fields[0] == "raw"


def test_bytes_that_are_not_utf8_are_named_per_field_and_the_rest_survive():
    body = (b'"[""ok""]",[0],train,1.jpg,1\n"[""caf\xe9""]",[0],train,2.jpg,2\n'
            b'"[""x""]",[0],tr\xff\xfeain,3.jpg,3\n')
    (_, _, good, none), (line, _, bad, err), (line3, _, _, err3) = records(body)
    assert none is None and good[3] == "1.jpg"
    assert line == 3 and err == "field 1 ('raw') has bytes that are not UTF-8 (b'\\xe9' at character 5)"
    assert line3 == 4 and err3.startswith("field 3 ('split') has bytes that are not UTF-8 (b'\\xff\\xfe'")
    assert undecodable_at(bad[0]) == 5 and printable(bad[0]) == '["caf\ufffd"]'


def test_fields_over_the_limit_are_errors_at_either_limit():
    mine = "a" * (MAX_FIELD_CHARS + 1)  # over ours, under the csv module's
    theirs = "b" * (csv.field_size_limit() + 10)  # over the csv module's: it raises, we report
    body = (f'"{mine}",[0],train,1.jpg,1\n"{theirs}",[0],train,2.jpg,2\nok,[0],train,3.jpg,3\n').encode()
    got = records(body)
    assert got[0][0] == 2 and got[0][3] == (
        f"field 1 ('raw') has {MAX_FIELD_CHARS + 1} characters, over the {MAX_FIELD_CHARS}-character limit")
    assert got[1][:3] == (3, 3, []) and got[1][3] == (
        f"a field is longer than the {MAX_FIELD_CHARS}-character limit")
    assert got[2] == (4, 4, ["ok", "[0]", "train", "3.jpg", "3"], None)
    small = records(b"abcdef,[0],train,1.jpg,1\n", max_field_chars=5)
    assert "6 characters, over the 5-character limit" in small[0][3]


@pytest.mark.parametrize("opener", [b'"[""unclosed', b'"[""a""]" stray'])
def test_a_stray_quote_costs_its_own_line_only(opener: bytes):
    body = opener + b",[0],train,1.jpg,1\n" + b'"[""b""]",[0],train,2.jpg,2\nplain,[0],val,3.jpg,3\n'
    got = records(body)
    assert got[0][0] == 2 and got[0][2] == [] and got[0][3].startswith("not valid CSV")
    assert [(a, f[3]) for a, _, f, e in got[1:]] == [(3, "2.jpg"), (4, "3.jpg")]


def test_an_unclosed_quote_at_the_end_of_the_file():
    got = records(b'plain,[0],val,1.jpg,1\n"never closed,[0],val,2.jpg,2\n')
    assert got[0][3] is None and got[1][:3] == (3, 3, [])
    assert got[1][3] == "not valid CSV: a quoted field is never closed"


def test_a_run_on_record_with_wrong_fields_is_read_again_from_its_next_line():
    # an unquoted opener: the csv module reads on without an error, the caller resyncs
    body = b'"a\nb,c\n"[""x""]",[0],train,9.jpg,9\n'
    got = records(body)
    assert [(a, b) for a, b, _, _ in got][-1] == (4, 4) and got[-1][2][3] == "9.jpg"


def test_nul_and_lone_cr_are_handled():
    got = records(b'a\x00b,[0],train,1.jpg,1\rx,[0],val,2.jpg,2\n')
    assert got == [(2, 2, ["a\x00b", "[0]", "train", "1.jpg", "1"], None),
                   (3, 3, ["x", "[0]", "val", "2.jpg", "2"], None)]


def test_empty_text_has_no_header():
    assert CsvRecords("").header is None
