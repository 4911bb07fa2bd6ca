import collections
import contextlib
import functools
import io
import json
import os
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

#: the environment variables that size torch's and BLAS's thread pools
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def pytest_configure(config):
    """Under xdist, each worker gets its share of the cores for torch (and for the CLI
    processes it starts): torch otherwise starts one thread per core in every worker, and
    OpenMP threads that outnumber the cores spin against each other. Measured with two
    processes training demo-cnn side by side on the 2-core machine under load: 31 s of CPU
    each with 2 threads, 5 s with 1, for the same steps. A setting of the user's is kept.
    On the xdist controller, FileSeconds records each file's seconds for the scheduler."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        if getattr(config.option, "numprocesses", None):  # the xdist controller
            config.pluginmanager.register(FileSeconds(config), "neurocarta-file-seconds")
        return
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2 or any(v in os.environ for v in THREAD_VARS):
        return
    from neurocarta.threads import cpu_count

    share = str(max(1, cpu_count() // workers))
    os.environ["OMP_NUM_THREADS"] = share  # inherited by the CLI subprocesses the tests start
    import torch

    torch.set_num_threads(int(share))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never write the demo-cnn cache into the user's home from tests."""
    cache = tmp_path_factory.getbasetemp() / "nc-cache"
    monkeypatch.setenv("NEUROCARTA_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def run_env() -> dict:
    """Environment for CLI subprocesses: the tests folder importable for py: specs."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env["HF_HUB_OFFLINE"] = "1"
    return env


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """What Python does with a warning when nothing records it: its formatted text on stderr."""
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def run_cli(*args, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """``neurocarta ARGS`` run in this process (``neurocarta.cli.main``), its exit code, stdout and
    stderr returned as ``python -m neurocarta`` would return them. Each CLI process costs 2-3 s
    of CPU just to import torch; tests about the process itself (signals, ``__main__``) still start
    one. An exception main() lets through is a traceback on stderr and exit code 1, as in a process."""
    from neurocarta.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = [str(a) for a in args]
    formatwarning = warnings.formatwarning  # main() sets its one-line format for the process
    with contextlib.chdir(cwd or os.getcwd()), warnings.catch_warnings(), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        # a fresh process's warning filters, printed to its stderr (not recorded by pytest)
        warnings.resetwarnings()
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)
        warnings.simplefilter("default", Warning, append=True)
        warnings.showwarning = _print_warning
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's usage errors
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if not isinstance(e.code, (int, type(None))):
                print(e.code, file=sys.stderr)
        except Exception:
            traceback.print_exc()
            code = 1
        finally:
            warnings.formatwarning = formatwarning
    return subprocess.CompletedProcess(["neurocarta", *argv], code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def demo_atlas(tmp_path_factory):
    """The demo's own model and data: demo-cnn trained as `neurocarta demo` trains it (shapes,
    10,000 images, 4 epochs, about 1.5 minutes on 2 cores, with the demo's planted shortcut and
    label noise), every demo layer captured with the final weights. Built once per test session,
    in a private cache."""
    import neurocarta as nc
    from neurocarta.data import load_data
    from neurocarta.demo import demo_data
    from neurocarta.models.demo_cnn import DEFAULT_LAYERS, load_demo_cnn

    source = load_data(demo_data())  # the demo's data: 10,000 images, seed 0, its planted flaws
    bundle = load_demo_cnn(source, epochs=4, cache_dir=tmp_path_factory.mktemp("demo-cache"), progress=False)
    return nc.extract(bundle, source, tmp_path_factory.mktemp("demo") / "atlas", layers=list(DEFAULT_LAYERS),
                      progress=False)


@pytest.fixture(scope="session")
def demo_atlas_mapped(demo_atlas):
    """The session's demo atlas with the maps the viewer and the findings read, built once for
    both: PCA topomap layouts with grids (as `neurocarta map` lays them out, minus UMAP's JIT:
    the findings read the groupings, the viewer does not care how a layout was made), Mapper
    graphs and the concept atlas."""
    from neurocarta.pipeline import build_concepts, build_mappers, build_topomaps

    build_topomaps(demo_atlas, method="pca", grid=True, seed=0, progress=False)
    build_mappers(demo_atlas, progress=False, seed=0)
    build_concepts(demo_atlas, progress=False, seed=0)
    return demo_atlas


#: Seconds each test file took on its xdist worker in the last measured `make test` (refresh it
#: from .pytest_cache/v/neurocarta/file_seconds, which every xdist run writes). The scheduler
#: hands out the longest units first so the two workers finish together; a file not listed
#: counts one second per test.
FILE_SECONDS = TESTS / "file_seconds.json"
FILE_SECONDS_CACHE = "neurocarta/file_seconds"


def pytest_xdist_make_scheduler(config, log):
    """`make test` runs `pytest -n 2 --dist loadfile`: each test file on one worker, so a module's
    fixtures (a trained demo-cnn, a text atlas) are built once. xdist runs one session per worker,
    so the session's `demo_atlas` would be trained once per worker that needs it: the files that use
    it form one unit instead, and the demo's 10,000-image model is trained once in all.
    (Not with xdist_group marks: xdist 3.8 writes the group into a node id field pytest 9 no longer reads.)

    Units go out longest first (FILE_SECONDS), not xdist's most-tests-first: a worker that picks
    up a two-minute file last keeps the other one idle for those two minutes."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    root = config.rootpath
    seconds: dict[str, float] = json.loads(FILE_SECONDS.read_text()) if FILE_SECONDS.exists() else {}

    @functools.cache
    def unit_of(file: str) -> str:
        return "demo_atlas" if "demo_atlas" in (root / file).read_text() else file

    class DemoAtlasOnceLongestFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid.split("::")[0])

        def _assign_work_unit(self, node) -> None:
            if not getattr(self, "_longest_first", False):
                self._longest_first = True
                tests_in = collections.Counter(nodeid.split("::")[0] for nodeid in self.collection)
                units = {scope: sum(seconds.get(f, float(tests_in[f])) for f in {n.split("::")[0] for n in tests})
                         for scope, tests in self.workqueue.items()}
                order = sorted(self.workqueue.items(), key=lambda item: -units[item[0]])
                self.workqueue.clear()
                self.workqueue.update(order)
            super()._assign_work_unit(node)

    return DemoAtlasOnceLongestFirst(config, log)


class FileSeconds:
    """On the xdist controller: each test file's seconds on its worker (set-up, call and
    tear-down of every test), saved in pytest's cache for FILE_SECONDS."""

    def __init__(self, config):
        self.config = config
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report):
        file = report.nodeid.split("::")[0]
        self.seconds[file] = self.seconds.get(file, 0.0) + report.duration

    def pytest_sessionfinish(self, session):
        if self.seconds and getattr(self.config, "cache", None) is not None:  # none under -p no:cacheprovider
            self.config.cache.set(FILE_SECONDS_CACHE, {f: round(s, 1) for f, s in sorted(self.seconds.items())})
