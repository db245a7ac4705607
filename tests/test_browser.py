"""Real-browser tests: headless Chromium (Debian's `chromium`, driven by Playwright for Python) against a JupyterLab
server on 127.0.0.1, as a user would use the lab, and an offline HTML report opened with the network cut off.

`make test` installs Debian's chromium when it is missing. If the browser cannot start, these tests fail and
say why: a skip would hide the missing browser in CI."""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from oneshot_lab.runner import notebooks
from oneshot_lab.interactive import offline_html
from oneshot_lab.util import progress

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
RUN_TIMEOUT_MS = 240_000

# Every cell stays in the page (no virtual scrolling), so the test can read every prompt. The news pop-up is off
# by the environment's own settings (`make env` installs etc/jupyterlab/overrides.json), not by the test's.
NOTEBOOK_SETTINGS = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"}}

# 'done' when the run stopped (every prompt numbered, or queued cells cleared after an error); else null.
RUN_STATE = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return null;
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim());
  const busy = panel.querySelector('.jp-Notebook-ExecutionIndicator[data-status="busy"]');
  if (!prompts.length || prompts.some(p => p.includes('*')) || busy || !/\\d/.test(prompts[0])) return null;
  return prompts;
}"""

STARTED = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const first = panel && panel.querySelector('.jp-CodeCell .jp-InputPrompt');
  return first && first.textContent.trim() !== '[ ]:';
}"""

WATCH_PROGRESS = """() => {
  window.sawProgressWidget = false;
  new MutationObserver(() => {
    if (document.querySelector('.jp-OutputArea-output .widget-hprogress')) window.sawProgressWidget = true;
  }).observe(document.body, {childList: true, subtree: true});
}"""


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium under Playwright; the test fails, saying why, if it cannot start."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        pytest.fail(f"Playwright for Python is not installed ({error}); `make test` installs the dev extras")
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("no `chromium` on PATH: install Debian's package (`make browser`, which `make test` runs)")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        except Exception as error:  # Playwright's own error says what Chromium printed
            pytest.fail(f"Chromium ({executable}) did not start under Playwright: {error}")
        yield chromium
        chromium.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def jupyterlab(root: Path, home: Path):
    """A JupyterLab server on 127.0.0.1 over `root` (random port, token, private config); yields its base URL."""
    port, token = free_port(), secrets.token_hex(16)
    settings = home / "settings"
    for name, values in NOTEBOOK_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    env = {k: v for k, v in os.environ.items() if k != progress.HEADLESS_ENV}  # widgets, as for a user
    env.update({name: "1" for name in notebooks.THREAD_ENV})  # one thread per kernel, as in the headless runs
    # Private config, data and settings: nothing from the user's own Jupyter set-up (a kernel spec of another
    # Python, say) takes part; the kernel is this interpreter's ipykernel.
    env.update(JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTER_DATA_DIR=str(home / "data"),
               IPYTHONDIR=str(home / "ipython"), JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    log = (home / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
         "--allow-root", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(home / 'jupyterlab.log').read_text()[-3000:]}")
                time.sleep(0.3)
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def copy_with_smoke(name: str, root: Path) -> Path:
    """Copy notebook `name` into `root` with `smoke` set to True in its parameters cell (as a user would edit it)."""
    source = notebooks.resolve_notebook(name)
    nb = json.loads(source.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    text = "".join(cell["source"])
    assert "smoke: bool = False" in text
    cell["source"] = text.replace("smoke: bool = False", "smoke: bool = True")
    target = root / source.name
    target.write_text(json.dumps(nb))
    return target


def run_all(page, base: str, token: str, name: str, prepare: str | None = None) -> float:
    """Open notebook `name` in JupyterLab (then evaluate `prepare` in the page), run all its cells from the Run menu,
    wait until they stop; the seconds taken.

    Fails with the error shown in the page if a cell raised (JupyterLab then leaves the later cells unrun), and
    with the cells' prompts and a screenshot if the run does not stop in time.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(f"{base}/lab/tree/{name}?token={token}")
    page.locator(".lm-TabBar-tab.lm-mod-current", has_text=name).first.wait_for(timeout=60_000)
    page.get_by_text(re.compile(r"\| Idle$")).first.wait_for(timeout=90_000)  # the kernel is connected
    if prepare:
        page.evaluate(prepare)
    t0 = time.monotonic()
    for attempt in range(3):  # a click while the front end is still settling can be lost: check that it started
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            page.wait_for_function(STARTED, timeout=15_000, polling=250)
            break
        except PlaywrightTimeout:
            continue
    try:
        prompts = page.wait_for_function(RUN_STATE, timeout=RUN_TIMEOUT_MS, polling=250).json_value()
    except PlaywrightTimeout:
        shot = Path(tempfile.mkdtemp()) / f"{Path(name).stem}-timeout.png"
        page.screenshot(path=str(shot), full_page=True)
        prompts = page.eval_on_selector_all(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt",
                                            "ps => ps.map(p => p.textContent)")
        pytest.fail(f"{name} did not finish in {RUN_TIMEOUT_MS / 1000:.0f}s in JupyterLab; prompts {prompts}; "
                    f"screenshot {shot}")
    if not all(re.fullmatch(r"\[\d+\]:", p) for p in prompts):
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
        pytest.fail(f"{name} stopped with an error in JupyterLab (prompts {prompts}):\n" + "\n".join(errors)[-3000:])
    return time.monotonic() - t0


def drag_slider(page, description: str, fraction: float) -> None:
    """Drag the handle of the slider labelled `description` to `fraction` of its track, with the mouse."""
    slider = page.locator(".widget-slider", has=page.locator(".widget-label", has_text=description)).first
    slider.scroll_into_view_if_needed()
    track = slider.locator(".noUi-target").bounding_box()
    handle = slider.locator(".noUi-handle").bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(track["x"] + fraction * track["width"], track["y"] + track["height"] / 2, steps=8)
    page.mouse.up()


def test_explorer_runs_in_jupyterlab_and_writes_its_records(browser, tmp_path):
    root, home = tmp_path / "lab", tmp_path / "home"
    root.mkdir()
    explorer_nb = copy_with_smoke("06", root)
    t0 = time.monotonic()
    with jupyterlab(root, home) as (base, token):
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        seconds = run_all(page, base, token, explorer_nb.name, prepare=WATCH_PROGRESS)
        assert page.evaluate("window.sawProgressWidget"), "the dense training's progress bar was not a widget"
        assert page.get_by_text("official Jupyter news").count() == 0, \
            f"JupyterLab asked about Jupyter news: {sys.prefix}/share/jupyter/lab/settings/overrides.json is missing " \
            "(`make env` installs it)"
        status = page.locator(".ol-metrics").first
        accuracy, density = status.locator(".ol-test-accuracy"), page.locator(".ol-density").first
        assert density.inner_text() == "0.1000", "the explorer did not start at notebook 06's sparsity 0.9"
        before = accuracy.inner_text()
        drag_slider(page, "sparsity", 0.3)
        page.wait_for_function("() => document.querySelector('.ol-density').textContent !== '0.1000'",
                               timeout=30_000)
        readout = float(page.locator(".widget-slider", has=page.locator(".widget-label", has_text="sparsity"))
                        .first.locator(".widget-readout").inner_text())
        assert 0.2 < readout < 0.4, f"the drag moved the slider to {readout}"
        assert float(density.inner_text()) == pytest.approx(1 - readout, abs=1e-3)
        assert accuracy.inner_text() != before, "the displayed test accuracy did not change with the sparsity"
        shot = tmp_path / "explorer.png"
        status.evaluate("e => e.closest('.jp-OutputArea').scrollIntoView({block: 'start'})")
        page.screenshot(path=str(shot))
        print(f"explorer screenshot: {shot} (notebook 06 ran in {seconds:.1f}s)")
        weights = page.locator(".ol-weights").first
        assert float(weights.inner_text()) < 100, "the ticket explorer did not start at the last IMP level"
        drag_slider(page, "level", 0.0)
        page.wait_for_function("() => document.querySelector('.ol-weights').textContent === '100.00'", timeout=30_000)
        print(f"browser test {time.monotonic() - t0:.1f}s in all")
    # outside the lab's clone a relative out_dir is the kernel's folder's (inside it: the project's runs/)
    assert (root / "runs" / "06_explorer" / "manifest.json").is_file()


def offline_context(browser):
    """A browser context with the network off that aborts every request not to file: or data:; the aborted URLs."""
    context = browser.new_context(offline=True)
    requested: list[str] = []

    def only_files(route):
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            requested.append(route.request.url)
            route.abort()
    context.route("**/*", only_files)
    return context, requested


def test_offline_html_report_shows_its_figures_and_tables_with_the_network_off(browser, tmp_path):
    from test_offline_html import executed_notebook

    page_path = offline_html.export(executed_notebook(tmp_path))
    context, requested = offline_context(browser)
    page = context.new_page()
    page.goto(page_path.as_uri())
    page.wait_for_load_state("load")
    sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
    assert len(sizes) == 3 and all(done and width > 0 for done, width in sizes), sizes
    assert page.locator("table").count() == 1 and "0.42" in page.locator("table").inner_text()
    assert page.get_by_text(offline_html.WIDGET_NOTE).is_visible()
    assert requested == [], f"the page asked the network for {requested}"
    context.close()


def test_planted_script_does_not_run_and_nothing_is_fetched_in_the_offline_report(browser, tmp_path):
    import warnings

    from test_offline_html import planted_notebook

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the remote references removed (tests/test_offline_html.py checks it)
        page_path = offline_html.export(planted_notebook(tmp_path))
    context = browser.new_context(offline=True)
    requested, dialogs = [], []
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:"))
                  else (requested.append(route.request.url), route.abort()))
    page = context.new_page()
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(page_path.as_uri())
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)  # an onerror of a broken image fires after load
    assert page.evaluate("window.pwned") is None, f"a planted script ran (pwned = {page.evaluate('window.pwned')})"
    page.locator("details summary").first.click(timeout=5000)  # ontoggle, were it kept; hidden if a style sheet ran
    assert page.evaluate("window.pwned") is None, "a planted event handler ran"
    assert requested == [] and dialogs == []
    assert page.get_by_text("<script>window.pwned = 1</script>").first.is_visible()
    assert page.locator("table").count() == 1 and "0.42" in page.locator("table").inner_text()
    context.close()
