"""The demo's progress lines and estimates, on hand-made executed notebooks (papermill's cell metadata)."""

import io
import json
import os
from datetime import datetime, timezone

from oneshot_lab.runner import demo_progress


def cell(source, status=None, duration=None, start=None, tags=()):
    """A code cell with papermill's metadata."""
    meta = {"papermill": {"status": status, "duration": duration,
                          "start_time": datetime.fromtimestamp(start, timezone.utc).isoformat() if start else None},
            "tags": list(tags)}
    return {"cell_type": "code", "source": source, "metadata": meta, "outputs": []}


def write(path, cells):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_estimate_is_the_references_remaining_time_at_this_runs_pace():
    expected = [10.0, 100.0, 20.0]
    cells = [cell("a", "completed", 20.0), cell("b", "running", start=1000.0), cell("c", "pending")]
    # this machine took 2x the reference on the finished cell: the rest is scaled by 2
    assert demo_progress.seconds_left(cells, expected, now=1050.0) == (2 * 100 - 50) + 2 * 20
    assert demo_progress.seconds_left(cells, None, now=1050.0) is None
    assert demo_progress.seconds_left(cells, [1.0], now=1050.0) is None  # another notebook's cells


def test_reference_needs_the_same_parameters_and_code(tmp_path):
    notebook = write(tmp_path / "nb" / "01_x.ipynb", [cell("p = 1", tags=["parameters"]), cell("work()")])
    record = tmp_path / "results" / "01_x"
    write(record / "01_x.ipynb", [cell("p = 1", "completed", 0.5, tags=["parameters"]),
                                  cell("out = 'x'", "completed", 0.1, tags=["injected-parameters"]),
                                  cell("work()", "completed", 42.0)])
    (record / "manifest.json").write_text(json.dumps({"requested_params": {}}))
    assert demo_progress.reference_durations(notebook, {}, tmp_path / "results") == [0.5, 42.0]
    assert demo_progress.reference_durations(notebook, {"smoke": True}, tmp_path / "results") is None
    write(notebook, [cell("p = 1", tags=["parameters"]), cell("other()")])
    assert demo_progress.reference_durations(notebook, {}, tmp_path / "results") is None


def test_line_reads_the_staged_copy_and_summary_lists_every_notebook(tmp_path):
    final = tmp_path / "demo" / "01_x"
    staged = tmp_path / "demo" / ".sweep" / "partial" / "01_x.123.1" / "01_x.ipynb"
    entry = demo_progress.Entry("01_x", final, [1.0, 9.0], started=1000.0)
    assert entry.line(1003.0) == "01_x: starting, 0:03 elapsed"
    write(staged, [cell("a", "completed", 1.0), cell("b", "running", start=1002.0)])
    assert entry.line(1005.0) == "01_x: cell 2/2, 0:05 elapsed, about 0:06 left"
    entry.outcome = {"status": "done", "wall_s": 12.5, "out_dir": str(final)}
    table = demo_progress.summary([entry], 13.0)
    assert "01_x" in table and "ran" in table and "12.5 s" in table and "10.0 s" in table and "all in 13.0 s" in table


def test_board_prints_lines_when_not_a_terminal(tmp_path):
    stream = io.StringIO()
    entry = demo_progress.Entry("01_x", tmp_path / "01_x", None)
    with demo_progress.Board(stream, interval=0.05) as board:
        board.begin(entry)
        import time
        time.sleep(0.2)
        assert board.end(entry, {"status": "done"}, lambda outcome: 0) == 0
    text = stream.getvalue()
    assert text.startswith("running 01_x ...\n") and "01_x: starting" in text


def test_schedule_starts_the_longest_chain_first_and_waits_for_what_a_notebook_reuses(tmp_path, monkeypatch):
    from oneshot_lab.runner import demo

    results = tmp_path / "results"
    for stem, seconds in {"01_a": 100.0, "02_b": 150.0, "03_c": 120.0}.items():
        (results / stem).mkdir(parents=True)
        (results / stem / "manifest.json").write_text(json.dumps({"wall_s": seconds}))
    monkeypatch.setattr(demo_progress, "REFERENCE_DIR", results)
    paths = [tmp_path / f"{stem}.ipynb" for stem in ("01_a", "02_b", "03_c", "04_d")]
    waits = {"01_a": set(), "02_b": set(), "03_c": {"01_a"}, "04_d": set()}
    order = demo.priorities(paths, waits)
    # 01 alone is shorter than 02, but 03 waits on it: the chain 01 -> 03 (220 s) starts first
    assert order == {"01_a": 220.0, "02_b": 150.0, "03_c": 120.0, "04_d": 0.0}


def test_after_reads_the_notebooks_metadata_and_refuses_a_bad_value(tmp_path):
    from oneshot_lab.runner import demo, notebooks

    assert demo.after(notebooks.resolve_notebook("04")) == ["01_magnitude_pruning"]
    assert demo.after(notebooks.resolve_notebook("02")) == []
    bad = json.loads(notebooks.resolve_notebook("02").read_text())
    bad["metadata"]["oneshot_lab"] = {"after": "01"}
    (tmp_path / "02_x.ipynb").write_text(json.dumps(bad))
    import pytest

    with pytest.raises(ValueError, match="oneshot_lab.after must be a list"):
        demo.after(tmp_path / "02_x.ipynb")


def test_demo_runs_side_by_side_and_starts_a_notebook_after_those_it_reuses(tmp_path, monkeypatch):
    import threading
    import time
    from types import SimpleNamespace

    from oneshot_lab.runner import demo

    monkeypatch.delenv("ONESHOT_LAB_WORKERS", raising=False)
    monkeypatch.setattr(demo_progress, "REFERENCE_DIR", tmp_path / "none")
    paths = []
    for stem, after in (("01_a", []), ("02_b", []), ("03_c", ["01_a"])):
        nb = {"cells": [], "metadata": {"oneshot_lab": {"after": after}}, "nbformat": 4, "nbformat_minor": 5}
        paths.append(tmp_path / f"{stem}.ipynb")
        paths[-1].write_text(json.dumps(nb))
    events, lock = [], threading.Lock()

    def fake_execute(task, out, force):
        with lock:
            events.append(("start", out.name, os.environ.get("ONESHOT_LAB_WORKERS")))
        time.sleep({"01_a": 0.3, "02_b": 0.05, "03_c": 0.01}[out.name])
        with lock:
            events.append(("end", out.name, None))
        return {"status": "done", "wall_s": 0.1, "out_dir": str(out)}

    monkeypatch.setattr(demo, "execute", fake_execute)
    runs = [(p, SimpleNamespace(params={}), tmp_path / "demo" / p.stem) for p in paths]
    code, entries = demo.run(runs, False, lambda outcome: 0, jobs=2, board=demo_progress.Board(io.StringIO()))
    assert code == 0 and [e.name for e in entries] == ["01_a", "02_b", "03_c"]
    order = [(kind, name) for kind, name, _ in events]
    assert order.index(("start", "02_b")) < order.index(("end", "01_a"))  # side by side
    assert order.index(("end", "01_a")) < order.index(("start", "03_c"))  # after the notebook it reuses
    assert {workers for kind, _, workers in events if kind == "start"} == {"1"}  # seeds in each kernel
    assert "ONESHOT_LAB_WORKERS" not in os.environ


def test_notebooks_waiting_on_each_other_are_refused_before_any_work():
    import pytest

    from oneshot_lab.runner import demo

    with pytest.raises(ValueError, match="03_c, 04_d wait on each other"):
        demo.check_order({"01_a": set(), "03_c": {"04_d"}, "04_d": {"03_c", "01_a"}})
    demo.check_order({"01_a": set(), "03_c": {"01_a"}})
