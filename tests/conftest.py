import os

import pytest
from click.testing import CliRunner

# Before torch is imported: one thread per xdist worker (the workers share the cores; more only thrash), two
# when the suite runs in one process. The CLI subprocesses the tests start inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1" if os.environ.get("PYTEST_XDIST_WORKER") else "2")


@pytest.fixture
def cli_run():
    """Invoke the real CLI in-process; returns (exit_code, stdout, stderr)."""
    from nin_export.cli import cli

    def run(*args: str):
        res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        return res.exit_code, res.stdout, res.stderr

    return run


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    """A user error: non-zero exit, a single 'error:' line, no traceback, and the given words."""
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:"), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(scope="session")
def cifar_export(tmp_path_factory):
    """nin-cifar10 exported once (dynamic batch), shared by tests that only read it."""
    from nin_export.export.exporter import export_model
    from nin_export.models import create_model

    out = tmp_path_factory.mktemp("cifar")
    model = create_model("nin-cifar10")
    res = export_model(model, out)
    return model, res
