"""Data-parallel training and evaluation under torchrun, with 2 CPU processes (gloo)."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent('''
    import json, sys
    from advshield.evaluation import run_evaluation
    from advshield.experiment import AttackSetting, RunContext
    from advshield.training.defense_config import AttackMix, DefenseTrainConfig
    from advshield.training.defense_trainer import train_defense
    out, store = sys.argv[1], sys.argv[2]
    cfg = DefenseTrainConfig(defense="cru-net", defense_params={"width": 8}, target="a-net", n_train=128, n_val=32,
                             epochs=2, batch_size=32, attacks=[AttackMix(name="fgsm", params={"eps": 0.3}),
                                                               AttackMix(name="clean")], device="cpu")
    res = train_defense(cfg, out + "/defense", store=store, log=lambda s: None)
    ctx = RunContext.create("cpu", distributed=True, store=store, log=lambda s: None)
    card = run_evaluation("a-net", str(res.checkpoint), [AttackSetting("fgsm", {"eps": 0.3})], out + "/eval", ctx,
                          n=50, figures=False)
    json.dump({"world": res.card["world_size"], "row": card["rows"][0]}, open(out + "/result.json", "w"))
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("ADVSHIELD_DATA", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(script), str(tmp_path / "ddp"), str(tmp_path / "store-ddp")]
    (tmp_path / "ddp").mkdir()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert ddp["world"] == 2
    # Sharded evaluation, reduced over both processes, covers every image once. FGSM is deterministic, so the
    # adversarial images match a single-process run; the restorer differs (DDP training), so compare what the
    # restorer does not touch.
    (tmp_path / "one").mkdir()
    single = subprocess.run([sys.executable, str(script), str(tmp_path / "one"), str(tmp_path / "store-one")],
                            capture_output=True, text=True, env=env, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "result.json").read_text())
    assert one["world"] == 1 and ddp["row"]["n"] == one["row"]["n"] == 50
    for key in ("clean_accuracy", "adv_accuracy", "mean_l2", "ssim_adv"):
        assert ddp["row"][key] == pytest.approx(one["row"][key], abs=1e-6), key
