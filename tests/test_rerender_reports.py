"""The committed reports are what today's renderer makes of their JSON (scripts/rerender_reports.py), so a report
change that is not re-rendered into docs/reproductions fails here, and a re-render changes no number."""

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("rerender_reports", ROOT / "scripts" / "rerender_reports.py")
rerender_reports = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rerender_reports)


@pytest.mark.parametrize("name", ["cmag-mnist-full", "cru-net-mnist-models-a-d-fast", "dkn-mnist-full"])
def test_committed_reports_are_todays_rendering_of_their_json(tmp_path, name):
    folder = tmp_path / name
    shutil.copytree(ROOT / "docs" / "reproductions" / name, folder)
    written = rerender_reports.rerender(folder)
    assert {p.name for p in written} >= {"report.md", "report.html"}
    for report in ("report.md", "report.html"):
        assert (folder / report).read_bytes() == (ROOT / "docs" / "reproductions" / name / report).read_bytes(), report


def test_a_folder_whose_preset_changed_keeps_its_reports(tmp_path, capsys):
    import json

    folder = tmp_path / "dkn"
    shutil.copytree(ROOT / "docs" / "reproductions" / "dkn-mnist-full", folder)
    summary = json.loads((folder / "reproduction.json").read_text())
    summary["preset"]["notes"] = summary["preset"]["notes"] + ["a note the run did not have"]
    (folder / "reproduction.json").write_text(json.dumps(summary))
    before = (folder / "report.md").read_bytes()
    assert rerender_reports.rerender(folder) == []
    assert (folder / "report.md").read_bytes() == before and "preset changed since the run" in capsys.readouterr().err


def test_a_missing_folder_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="not a folder"):
        rerender_reports.main([str(tmp_path / "nowhere")])
