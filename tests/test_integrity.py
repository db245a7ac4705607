"""Record integrity: what makes a manifest unusable or a CSV table not whole, with the reason given."""

import json
import os
import re

import pandas as pd
import pytest

from oneshot_lab.records import atomic, integrity


@pytest.mark.parametrize("manifest, reason", [
    ({"status": "complete"}, None),
    ({"status": "complete", "params": {"seed": 0}, "tables": ["metrics"]}, None),
    ([], "the manifest is list, not a mapping"),
    (None, "the manifest is null, not a mapping"),
    ({"status": "complete", "params": [1]}, "'params' is list, not a mapping"),
    ({"params": {}}, "'status' is None, not text"),
    ({"status": 1}, "'status' is 1, not text"),
    ({"status": "complete", "tables": "metrics"}, "'tables' is 'metrics', not a list of names"),
    ({"status": "complete", "tables": ["metrics", 2]}, "'tables' is ['metrics', 2], not a list of names"),
])
def test_manifest_problem_names_the_field(manifest, reason):
    assert integrity.manifest_problem(manifest) == reason


@pytest.mark.parametrize("content, reason", [
    (b"a,b\n1,2\n", None),
    (b'a,b\n"x, y",2\n"two\nlines",3\n', None),  # quoted commas and line ends are one field
    (b"", "the file is empty"),
    (b"  \n", "the file is empty"),
    (b"a,b\n1,\x002\n", "binary data (NUL bytes), not CSV text"),
    (b"a,b\n\xff,2\n", "not UTF-8 text (byte 4)"),
    (b"a,b\n1,2", "cut short (the last line has no line end)"),
    (b"a,b\n1,2\n3\n", "ragged: line 3 has 1 fields, the header has 2"),
])
def test_table_problem_agrees_with_a_csv_parser(tmp_path, content, reason):
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    found, text = integrity.table_problem(path)
    assert found == reason
    if reason is None:  # a whole table: its text comes back and pandas reads it with no cell missing
        assert text == content.decode() and pd.read_csv(path).notna().all().all()
    else:
        assert text == ""


def test_read_json_gives_the_reason_instead_of_raising(tmp_path):
    good = atomic.atomic_write_text(tmp_path / "m.json", json.dumps({"status": "complete"}))
    assert integrity.read_json(good) == ({"status": "complete"}, None)
    assert integrity.read_json(tmp_path / "absent.json")[1].startswith("cannot read it (No such file")
    (tmp_path / "cut.json").write_text('{"status": "compl')
    data, reason = integrity.read_json(tmp_path / "cut.json")
    assert data is None and reason.startswith("not valid JSON (JSONDecodeError")
    assert integrity.MANIFEST == "manifest.json"


def test_a_repeated_header_column_is_not_a_whole_table(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"seed,method,seed\n0,a,1\n")
    assert integrity.table_problem(path) == ("the header repeats column 'seed'", "")


@pytest.mark.parametrize("make, kind", [(os.mkfifo, "a FIFO"), (os.mkdir, "a directory")])
def test_a_file_that_is_not_regular_is_refused_unopened(tmp_path, make, kind):
    path = tmp_path / "manifest.json"
    make(path)
    reason = f"not a regular file ({kind}), left unopened"
    assert integrity.read_json(path) == (None, reason)  # a FIFO would block an open() for reading forever
    assert integrity.table_problem(path) == (reason, "")
    with pytest.raises(ValueError, match=re.escape(f"{path}: {reason}")):
        integrity.read_regular(path)
