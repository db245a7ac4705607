"""Faults around single runs and sweeps: kill and resume, concurrent runs into one directory, a read-only runs
directory, a full disk (a real small tmpfs where this machine lets us mount one, simulated otherwise), and a
killed sweep leaving no worker behind that holds a lock, SIGINT and SIGTERM ending a command in one line, and
SIGKILL of a run's process group leaving no seed worker or resource tracker running."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY_RECORD
from oneshot_lab import cli, commands
from oneshot_lab.records import atomic, loading, writing

ROOT = Path(__file__).resolve().parent.parent


def oneshot_lab(*args: str, **kwargs) -> subprocess.Popen:
    """`python -m oneshot_lab ARGS` as a process of its own session (so it can be killed with its kernels)."""
    return subprocess.Popen([sys.executable, "-m", "oneshot_lab", *args], cwd=kwargs.pop("cwd", ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **kwargs)


def files(root: Path) -> dict[str, bytes]:
    """Every visible file under `root` (staging under .sweep left out) -> bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".sweep" not in p.parts}


def consistent(record: Path) -> dict:
    """The manifest of a complete record whose metrics, manifest and executed notebook belong to one run."""
    manifest = writing.read_manifest(record)
    x = manifest["params"]["x"]
    assert manifest["status"] == "complete" and manifest["run_id"]
    assert (record / "metrics.csv").read_text() == f"x,y\n{x},{x * x}\n"
    executed = json.loads((record / "tiny.ipynb").read_text())
    injected = "".join(c["source"] if isinstance(c["source"], str) else "".join(c["source"])
                       for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    assert f"x = {x}" in injected
    return manifest


@contextlib.contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False):
    """A small tmpfs mounted at `path` (skip the test if this machine does not allow it)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root, or no permission); the simulated test covers it")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_seeds_get_their_own_default_directories_and_a_rerun_says_complete(tiny_notebook, tmp_path):
    runs = [oneshot_lab("run", str(tiny_notebook), "-p", "x", str(x), cwd=tmp_path) for x in (1, 2, 1)]
    outs = [p.communicate(timeout=120) for p in runs]
    assert [p.returncode for p in runs] == [0, 0, 0], outs
    records = sorted((tmp_path / "runs").glob("tiny-*"))
    assert len(records) == 2 and sorted(consistent(r)["params"]["x"] for r in records) == [1, 2]
    before = files(tmp_path / "runs")
    again = oneshot_lab("run", str(tiny_notebook), "-p", "x", "2", cwd=tmp_path)
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0 and "already complete" in out and files(tmp_path / "runs") == before


def test_killed_forced_rerun_keeps_the_old_record_and_a_resumed_one_replaces_it(tiny_notebook, tmp_path):
    out = tmp_path / "r"
    first = oneshot_lab("run", str(tiny_notebook), "-p", "x", "3", "--out", str(out))
    first.communicate(timeout=120)
    old = files(out)
    killed = oneshot_lab("run", str(tiny_notebook), "-p", "x", "3", "-p", "sleep", "30", "--out", str(out),
                         "--force")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list((tmp_path / ".sweep" / "partial").glob("r.*")):
        time.sleep(0.2)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.communicate()
    assert files(out) == old, "a killed run changed the complete record"
    resumed = oneshot_lab("run", str(tiny_notebook), "-p", "x", "3", "-p", "sleep", "0.5", "--out", str(out),
                          "--force")
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    assert consistent(out)["params"]["sleep"] == 0.5 and not list((tmp_path / ".sweep" / "partial").iterdir())


def test_concurrent_runs_into_one_directory_never_mix(tiny_notebook, tmp_path):
    out = tmp_path / "shared"
    procs = [oneshot_lab("run", str(tiny_notebook), "-p", "x", str(x), "-p", "sleep", "2", "--out", str(out))
             for x in (0, 1)]
    outcomes = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in outcomes) == [0, 2], outcomes  # the second finds the first one's record
    loser = [err for code, err in outcomes if code != 0][0].strip().splitlines()
    assert loser[-1].startswith("oneshot-lab: error: ") and "holds a complete record of another run" in loser[-1]
    consistent(out)  # manifest, metrics and executed notebook of one and the same run


def test_read_only_runs_directory_is_one_line_and_exit_3(tiny_notebook, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("papermill.execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        assert cli.main(["run", str(tiny_notebook), "--out", str(ro / "r")]) == 3
        err = capsys.readouterr().err
        assert "Read-only file system" in err and str(ro) in err and len(err.strip().splitlines()) == 1
        (tmp_path / "s.yaml").write_text(f"notebook: {tiny_notebook}\ngrid: {{x: [1]}}\n")
        assert cli.main(["sweep", str(tmp_path / "s.yaml"), "--runs", str(ro / "runs")]) == 3
        assert "Read-only file system" in capsys.readouterr().err and not any(ro.iterdir())


def test_full_disk_keeps_the_complete_record_and_says_so(tiny_notebook, tmp_path):
    with tmpfs(tmp_path / "small", "512k") as small:
        first = oneshot_lab("run", str(tiny_notebook), "-p", "x", "4", "--out", str(small / "r"))
        first.communicate(timeout=120)
        kept = files(small / "r")
        with contextlib.suppress(OSError):  # fill the disk
            with open(small / "filler", "wb") as fh:
                while True:
                    fh.write(bytes(4096))
                    fh.flush()
        forced = oneshot_lab("run", str(tiny_notebook), "-p", "x", "5", "--out", str(small / "r"), "--force")
        _, err = forced.communicate(timeout=120)
        assert forced.returncode in (1, 3) and "Traceback" not in err, err
        assert "No space left on device" in err or "failed" in err
        assert files(small / "r") == kept, "a full disk damaged the complete record"


def test_full_disk_simulated(tiny_notebook, tmp_path, capsys, monkeypatch):
    def full(staging, final):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(final))
    monkeypatch.setattr(atomic, "publish", full)
    assert cli.main(["run", str(tiny_notebook), "-p", "x", "6", "--out", str(tmp_path / "r")]) == 3
    err = capsys.readouterr().err
    assert err.strip() == f"oneshot-lab: error: No space left on device: {tmp_path / 'r'}"
    assert not (tmp_path / "r").exists()
    monkeypatch.undo()
    assert cli.main(["run", str(tiny_notebook), "-p", "x", "6", "--out", str(tmp_path / "r")]) == 0
    consistent(tmp_path / "r")
    assert not list((tmp_path / ".sweep" / "partial").iterdir())  # the resumed run cleared the leftover


def test_concurrent_sweeps_both_exit_0_and_a_killed_sweep_leaves_no_worker_holding_a_lock(tiny_notebook,
                                                                                          tmp_path):
    (tmp_path / "s.yaml").write_text(f"notebook: {tiny_notebook}\nparams: {{sleep: 1.0}}\ngrid: {{x: [1, 2]}}\n")
    runs = tmp_path / "runs"
    sweeps = [oneshot_lab("sweep", str(tmp_path / "s.yaml"), "--runs", str(runs), "--workers", "1")
              for _ in range(2)]
    assert [p.wait(timeout=180) for p in sweeps] == [0, 0], [p.stdout.read() for p in sweeps]
    assert len(loading.load(runs)) == 2

    (tmp_path / "long.yaml").write_text(f"notebook: {tiny_notebook}\nparams: {{sleep: 60}}\ngrid: {{x: [7]}}\n")
    sweep = subprocess.Popen([sys.executable, "-m", "oneshot_lab", "sweep", str(tmp_path / "long.yaml"), "--runs",
                              str(runs), "--workers", "1"], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list((runs / ".sweep" / "partial").glob("tiny-*")):
        time.sleep(0.2)
    sweep.kill()  # the sweep process only: its worker must not live on holding the run's lock
    sweep.wait()
    locks = list((runs / ".sweep" / "locks").glob("*.lock"))
    deadline = time.monotonic() + 20
    held = locks
    while held and time.monotonic() < deadline:
        held = [lock for lock in locks if _locked(lock)]
        time.sleep(0.2)
    assert not held, f"an orphaned worker still holds {held}"


def _locked(path: Path) -> bool:
    """Whether another process holds the flock of `path`."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_dead_kernel_and_cell_timeout_are_one_line_exit_1_with_the_failed_record(tiny_notebook, tmp_path, capsys):
    dead = ["run", str(tiny_notebook), "-p", "deaths", "2", "-p", "counter", str(tmp_path / "c"),
            "--out", str(tmp_path / "dead")]
    slow = ["run", str(tiny_notebook), "-p", "sleep", "30", "--timeout", "2", "--out", str(tmp_path / "slow")]
    for args, cause in ((dead, "kernel died"), (slow, "cell timeout after 2 s")):
        assert cli.main(args) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and cause in err and str(tmp_path) in err, err
        out = Path(args[-1])
        assert writing.read_manifest(out)["status"] == "failed" and cause in writing.read_manifest(out)["error"]


def test_a_forced_rerun_that_fails_keeps_the_complete_record(tiny_notebook, tmp_path, capsys):
    out = tmp_path / "r"
    assert cli.main(["run", str(tiny_notebook), "-p", "x", "8", "--out", str(out)]) == 0
    kept = files(out)
    assert cli.main(["run", str(tiny_notebook), "-p", "x", "8", "-p", "fail", "true", "--out", str(out),
                     "--force"]) == 1
    err = capsys.readouterr().err.strip()
    assert "ValueError: x is 8" in err and f"the complete record in {out} is kept" in err
    assert files(out) == kept
    failed = list((tmp_path / ".sweep" / "failed").iterdir())
    assert len(failed) == 1 and writing.read_manifest(failed[0])["status"] == "failed"


# ---------------------------------------------------------------- writers that may not replace what they did not make

REPORT_PARAMETERS = """\
runs_dir: str = ""  # the runs directory reported on
notebook: str = "01_magnitude_pruning"  # whose runs are reported
metric: str = "test_accuracy"  # the metric reported
out_dir: str = "out"  # where the report goes"""
REPORT_WORK = """\
import pathlib
pathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)
pathlib.Path(out_dir, "metrics.csv").write_text("report\\nyes\\n")"""
DEMO_PARAMETERS = """\
x: int = 0  # a number the run records
smoke: bool = False  # shrink the run
out_dir: str = "out"  # where metrics.csv goes"""


@pytest.fixture()
def report_lab(notebook_factory, tiny_notebook, tmp_path, monkeypatch):
    """Complete records a report can read under tmp_path/runs, and `report` running a tiny stand-in for notebook 04."""
    from test_gathered import write_runs

    write_runs(tmp_path / "runs", [0.02, 0.03, 0.01, 0.04])
    monkeypatch.setattr(commands, "REPORT_NOTEBOOK", str(notebook_factory("report.ipynb", REPORT_PARAMETERS, REPORT_WORK)))
    return tmp_path


def test_report_refuses_an_out_holding_another_runs_record_and_only_force_replaces_it(report_lab, tiny_notebook,
                                                                                     capsys, monkeypatch):
    other = report_lab / "other"
    assert cli.main(["run", str(tiny_notebook), "-p", "x", "2", "--out", str(other)]) == 0
    kept = files(other)
    with monkeypatch.context() as m:
        m.setattr("papermill.execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
        assert cli.main(["report", str(report_lab / "runs"), "--out", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("oneshot-lab: error: ") and len(err.splitlines()) == 1, err
    assert "holds a complete record of another run" in err and "--force" in err
    assert files(other) == kept
    assert cli.main(["report", str(report_lab / "runs"), "--out", str(other), "--force"]) == 0
    assert (other / "metrics.csv").read_text() == "report\nyes\n"
    report = writing.read_manifest(other)["run_id"]
    assert cli.main(["report", str(report_lab / "runs"), "--out", str(other)]) == 0  # its own report: refreshed
    assert writing.read_manifest(other)["run_id"] == report


def test_demo_refuses_a_record_it_did_not_make_and_says_complete_the_second_time(notebook_factory, tmp_path,
                                                                                 capsys, monkeypatch):
    demo_nb = notebook_factory("demo.ipynb", DEMO_PARAMETERS, "import pathlib", TINY_RECORD)
    monkeypatch.setattr(commands.notebooks, "notebooks", lambda: [demo_nb])
    out = tmp_path / "X"
    assert cli.main(["run", str(demo_nb), "-p", "x", "5", "--out", str(out / "demo")]) == 0
    kept = files(out)
    capsys.readouterr()
    with monkeypatch.context() as m:
        m.setattr("papermill.execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
        assert cli.main(["demo", "--smoke", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds a complete record of another run" in err and len(err.splitlines()) == 1, err
    assert files(out) == kept
    fresh = tmp_path / "Y"
    assert cli.main(["demo", "--smoke", "--out", str(fresh)]) == 0
    made = files(fresh)
    capsys.readouterr()
    assert cli.main(["demo", "--smoke", "--out", str(fresh)]) == 0  # make demo twice: nothing recomputed
    assert "already complete" in capsys.readouterr().out and files(fresh) == made
    assert cli.main(["demo", "--smoke", "--out", str(out), "--force"]) == 0  # --force alone replaces
    assert writing.read_manifest(out / "demo")["params"]["smoke"] is True


def test_out_dot_in_an_empty_directory_writes_the_record_there(tiny_notebook, tmp_path, capsys, monkeypatch):
    here = tmp_path / "empty"
    here.mkdir()
    monkeypatch.chdir(here)
    inode = os.stat(".").st_ino
    assert cli.main(["run", str(tiny_notebook), "-p", "x", "6", "--out", "."]) == 0, capsys.readouterr().err
    assert os.stat(here).st_ino == inode and os.path.samefile(os.getcwd(), here)  # the same directory, filled
    consistent(here)
    assert not (here / ".sweep").exists()
    capsys.readouterr()
    assert cli.main(["run", str(tiny_notebook), "-p", "x", "6", "--out", "."]) == 0
    assert "already complete" in capsys.readouterr().out


def test_report_names_each_record_it_cannot_use_and_exits_2_when_none_is_left(report_lab, capsys, monkeypatch):
    from test_gathered import drop_sparsity, rewrite

    runs = report_lab / "runs"
    rewrite(runs / "seed0" / "metrics.csv", drop_sparsity)
    assert cli.main(["report", str(runs)]) == 0  # by default into RUNS_DIR_report
    assert (report_lab / "runs_report" / "metrics.csv").read_text() == "report\nyes\n"
    named = f"oneshot-lab: warning: skipping run record {runs / 'seed0' / 'metrics.csv'}: no column 'sparsity'"
    assert capsys.readouterr().err.strip().splitlines() == [named]
    monkeypatch.setattr("papermill.execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    for seed in (1, 2, 3):
        rewrite(runs / f"seed{seed}" / "metrics.csv", drop_sparsity)
    assert cli.main(["report", str(runs), "--out", str(report_lab / "rep2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 5 and all("no column 'sparsity'" in line for line in err[:4]), err
    assert err[-1] == (f"oneshot-lab: error: no complete runs of 01_magnitude_pruning under {runs} "
                       f"(4 records skipped: see the warnings)")
    assert not (report_lab / "rep2").exists()


SLOW_JOB = """\
import os, pathlib, time

def nap(pid_file: str, seconds: float) -> None:
    pathlib.Path(pid_file + ".partial").write_text(str(os.getpid()))
    os.replace(pid_file + ".partial", pid_file)
    for _ in range(int(seconds / 0.05)):
        time.sleep(0.05)
"""


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process (from /proc)."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            state, ppid = stat.read_text().rpartition(")")[2].split()[:2]
            table[int(stat.parent.name)] = (int(ppid), state)
    return table


def descendants(root: int) -> set[int]:
    """The processes started by `root`, by its children, and so on."""
    table, found, todo = process_table(), set(), [root]
    while todo:
        parent = todo.pop()
        children = {pid for pid, (ppid, _) in table.items() if ppid == parent} - found
        found |= children
        todo += children
    return found


def running(pids: set[int], within_s: float) -> set[int]:
    """Those of `pids` still running (zombies count as ended) after waiting up to `within_s` for them to end."""
    deadline = time.monotonic() + within_s
    while True:
        table = process_table()
        alive = {pid for pid in pids if pid in table and table[pid][1] != "Z"}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


SEEDED_PARAMETERS = """\
jobs_dir: str = ""  # where slow_job.py is, and the files naming each seed worker's pid
out_dir: str = "out"  # where the record goes"""
SEEDED_WORK = """\
import sys
sys.path.insert(0, jobs_dir)
import slow_job
from oneshot_lab.util import parallel
parallel.map_jobs(slow_job.nap, [(f"{jobs_dir}/{name}", 60) for name in "ab"], workers=2)"""


def test_sigkill_of_a_runs_process_group_leaves_no_seed_worker_or_resource_tracker_running(
        notebook_factory, tmp_path):
    (tmp_path / "slow_job.py").write_text(SLOW_JOB)
    notebook = notebook_factory("seeded.ipynb", SEEDED_PARAMETERS, SEEDED_WORK)
    pid_files = [tmp_path / "a", tmp_path / "b"]
    proc = oneshot_lab("run", str(notebook), "-p", "jobs_dir", str(tmp_path), "--out", str(tmp_path / "r"))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not all(f.exists() for f in pid_files) and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(0.2)
    started = descendants(proc.pid)  # the kernel, its two seed workers and multiprocessing's resource tracker
    try:
        assert all(f.exists() for f in pid_files), proc.communicate()
        workers = {int(f.read_text()) for f in pid_files}
        trackers = {pid for pid in started if b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()}
        assert workers <= started and len(trackers) == 1 and len(started) == 4, (workers, trackers, started)
        os.killpg(proc.pid, signal.SIGKILL)  # the kernel leads a session of its own: it is not in the group
        proc.wait(timeout=10)
        assert not running(started, within_s=5), "the kernel, a seed worker or the resource tracker outlived the run"
    finally:
        proc.kill()
        for pid in running(started, within_s=0):
            os.kill(pid, signal.SIGKILL)
        proc.communicate(timeout=10)  # the pipes close once every process holding them has ended


def foreground_signals() -> None:
    """In the command's process before it starts: SIGINT at its default, as in a terminal's foreground job. A
    background job of a non-interactive shell (a CI script started with `&`) inherits SIGINT ignored, and the
    command keeps an ignored signal ignored, so Ctrl-C could not be tested there."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


SIGNALLED_PARAMETERS = """\
x: int = 0  # a number the run would record
marker: str = ""  # a file the running cell creates
out_dir: str = "out"  # where the record goes"""


@pytest.mark.parametrize("command, signum", [("run", signal.SIGINT), ("run", signal.SIGTERM),
                                             ("sweep", signal.SIGTERM)])
def test_an_interrupted_or_terminated_command_says_one_line_and_leaves_nothing_running(
        notebook_factory, tmp_path, command, signum):
    notebook = notebook_factory("signalled.ipynb", SIGNALLED_PARAMETERS,
                                "import pathlib, time\npathlib.Path(marker).touch()\ntime.sleep(60)")
    marker = tmp_path / "running"
    if command == "run":
        args = ["run", str(notebook), "-p", "marker", str(marker), "--out", str(tmp_path / "r")]
    else:
        (tmp_path / "s.yaml").write_text(f"notebook: {notebook}\nparams: {{marker: {marker}}}\ngrid: {{x: [1]}}\n")
        args = ["sweep", str(tmp_path / "s.yaml"), "--runs", str(tmp_path / "runs"), "--workers", "1"]
    proc = oneshot_lab(*args)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not marker.exists() and proc.poll() is None:
        time.sleep(0.1)
    started = descendants(proc.pid)  # the kernel (and the sweep's worker process)
    try:
        assert marker.exists(), proc.communicate()
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signum)  # Ctrl-C: the terminal signals the foreground process group
        else:
            proc.send_signal(signum)  # kill PID, a batch system or a service manager
        _, err = proc.communicate(timeout=60)
        said = [line for line in err.splitlines() if line.strip() and not line.startswith("sweep:")]  # its bar
        ending = "interrupted" if signum == signal.SIGINT else "terminated (SIGTERM)"
        assert said == [f"oneshot-lab: {ending}; complete runs are kept, re-run the same command to resume"], err
        assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum]
        assert not running(started, within_s=5), "a kernel or a worker outlived the command"
    finally:
        proc.kill()
        for pid in running(started, within_s=0):
            os.kill(pid, signal.SIGKILL)
