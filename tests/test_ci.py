"""CI runs the README's test command, after installing chromium for the page tests."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command_after_chromium():
    ci = [
        ln.strip()
        for ln in (ROOT / ".ci" / "run").read_text().splitlines()
        if ln.strip() and not ln.strip().startswith("#")
    ]
    readme = (ROOT / "README.md").read_text()
    quick = next(ln for ln in readme.splitlines() if "pip install -e '.[train,test]'" in ln)
    assert quick.strip().endswith("&& " + ci[-1]) and ci[-1] == "python -m pytest -q"
    assert "    python -m pytest -q " in readme  # the Tests section's command is the same one
    install = next(i for i, ln in enumerate(ci) if "apt-get install -y -q chromium" in ln)
    assert install < ci.index("python -m pytest -q")
