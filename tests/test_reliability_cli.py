"""User errors at the command line: one `error:` line, exit status 2, no traceback (docs/reliability.md,
"Command-line errors"); a bug says it is one."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import make_mnist_root  # noqa: E402
from test_cli import assert_one_line_error, run_cli  # noqa: E402

CASES = [
    (["attack", "--model", "a-net", "--attack", "pgd", "--param", "stepz=3"], "takes no argument 'stepz'"),
    (["attack", "--model", "a-net", "--attack", "pgd", "--param", "rel_stepsize=NaN"], "must be a finite number"),
    (["attack", "--model", "a-net", "--attack", "fgsm", "--eps", "inf"], "must be a finite number"),
    (["attack", "--model", "a-net", "--attack", "pgd", "--threat", "grey-box"], "unknown threat model 'grey-box'"),
    (["attack", "--model", "a-net", "--attack", "pgd", "--threat", "transfer:"], "name the substitute"),
    (["attack", "--model", "a-net", "--attack", "pgd", "--split", "validation"], "unknown split 'validation'"),
    (["attack", "--model", "mypkg.nowhere:make", "--attack", "pgd"], "cannot import mypkg.nowhere"),
    (["evaluate", "--target", "a-net", "--defense", "bit-depth", "--defense-param", "bitz=2"],
     "takes no argument 'bitz'; it takes: bits"),
    (["evaluate", "--target", "a-net", "--defense", "jpeg", "--attacks", "fgsm", "--attack-param", "fgsm.epz=0.1"],
     "takes no argument 'epz'"),
    (["evaluate", "--target", "a-net", "--defense", "jpeg", "--threat", "transfer"], "name the substitute"),
    (["train-defense", "--attacks", "fgsm,pgd", "--proportions", "a,b"], "--proportions expects comma-separated"),
    (["train-target", "--model-param", "widht=3", "--epochs", "1"], "takes no argument 'widht'"),
    (["detect", "--target", "a-net", "--detector", "cmag"], "unknown detector 'cmag'"),
]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return str(make_mnist_root(tmp_path_factory.mktemp("data"), n_train=40, n_test=20))


@pytest.mark.parametrize("args,fragment", CASES, ids=[" ".join(a[:3]) + f" #{i}" for i, (a, _) in enumerate(CASES)])
def test_user_errors_are_one_line(args, fragment, data_root, tmp_path, monkeypatch, capsys):
    from advshield.cli import main

    monkeypatch.chdir(tmp_path)  # in process (the subprocess path is covered by the tests below and test_cli)
    monkeypatch.setattr(sys, "argv", ["advshield", *args, "--data-root", data_root])
    with pytest.raises(SystemExit) as exit_:
        main()
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert exit_.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment in lines[0] and "Traceback" not in out + err


def test_an_output_folder_that_cannot_be_written_fails_before_any_work(data_root, tmp_path):
    if os.geteuid() == 0:  # root writes anywhere: use a path under a regular file instead
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        out = blocker / "out"
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        out = ro / "out"
    proc = run_cli("evaluate", "--target", "a-net", "--defense", "bit-depth", "--attacks", "fgsm", "--n", "5",
                   "--out", str(out), "--store", str(tmp_path / "store"), "--data-root", data_root, cwd=tmp_path)
    assert_one_line_error(proc, "cannot write", str(out))
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir())  # nothing was crafted


def test_a_preset_name_cannot_climb_out_of_the_output_folder(tmp_path):
    import yaml

    from advshield.reproduce import builtin_presets

    base = yaml.safe_load(builtin_presets()["dkn-mnist"].read_text())
    base["name"] = "../../escape"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(base))
    proc = run_cli("reproduce", str(tmp_path / "p.yaml"), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert_one_line_error(proc, "it names the output folder")


def test_a_bug_prints_its_traceback_and_says_it_is_one(monkeypatch, capsys):
    import advshield.cli as cli

    def boom(**_):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(cli, "app", boom)
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "Traceback" in err and "RuntimeError: simulated bug" in err
    assert "internal error (a bug" in err.splitlines()[-1]
