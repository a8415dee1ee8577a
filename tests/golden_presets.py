"""Tiny presets of each reproduction kind, shared by the golden-card test and the script that made the cards.

The cards were made on commit 3e861a3 before ``n_checks`` existed (it only adds the health checks, no number).
"""

RESTORATION = {
    "name": "golden-restoration", "title": "Golden CRU-Net", "paper": "cru-net.txt", "dataset": "mnist",
    "defense": "cru-net", "defense_params": {"width": 8}, "train_for": ["a-net"],
    "attacks": {"fgsm": {"label": "FGSM", "params": {"eps": 0.3}},
                "pgd": {"label": "PGD", "params": {"eps": 0.3, "steps": 10, "abs_stepsize": 0.05}},
                "deepfool": {"label": "DFA", "params": {"steps": 20, "candidates": 3}, "max_test": 20}},
    "adaptive_attacks": ["fgsm"],
    "training": {"batch_size": 32, "clean_proportion": 0.5},
    "evaluations": [{"target": "a-net", "defense_of": "a-net", "threats": ["white-box", "transfer:b-net", "adaptive"]},
                    {"target": "b-net", "defense_of": "a-net", "threats": ["white-box"]}],
    "baselines": [{"defense": "bit-depth", "params": {"bits": 1}, "label": "squeeze", "setting": "1 bit"}],
    "full": {"n_train": 1000, "n_val": 100, "epochs": 2, "n_test": None, "n_adaptive": 500},
    "fast": {"n_train": 150, "n_val": 30, "epochs": 1, "n_test": 40, "n_adaptive": 20, "n_checks": 0},
}

DETECTION = {
    "kind": "detection", "name": "golden-detection", "title": "Golden CMAG", "paper": "cmag-detection.txt",
    "dataset": "mnist", "target": "a-net", "fpr": 0.05, "detectors": ["cmag-ssim", "magnet-error"],
    "attacks": {"fgsm-0.3": {"attack": "fgsm", "params": {"eps": 0.3}, "label": "FGSM 0.3"},
                "fgsm-0.1": {"attack": "fgsm", "params": {"eps": 0.1}, "label": "FGSM 0.1"}},
    "full": {"n_train": 2000, "n_calibration": 500, "epochs": 3, "n_test": 500},
    "fast": {"n_train": 600, "n_calibration": 200, "epochs": 2, "n_test": 40, "n_adaptive": 0},
}

# analyze propagation: bare and transfer sets (the transfer key convention changed in the experiment layer).
PROPAGATION = ["--model", "a-net", "--attacks", "fgsm,bim", "--attack-param", "fgsm.eps=0.2",
               "--attack-param", "bim.eps=0.2", "--substitute", "b-net", "--n", "40"]

# Every built-in MNIST preset on a fixed subset (its fast variant with a small budget; `extends` keeps its
# attacks, parameters, restorers and baselines). CIFAR-10 presets need the offline copy: they are not here.
# adaptive_ensemble False: the cards predate the presets' AutoAttack setting (tested in test_reproduce.py).
BUILTIN = {
    "cru-net-mnist": {"n_train": 840, "n_val": 70, "epochs": 4, "batch_size": 32, "n_test": 40, "n_adaptive": 5,
                      "zoo_restorer": True, "adaptive_ensemble": False},
    "cru-net-mnist-guided": {"n_train": 840, "n_val": 70, "epochs": 4, "batch_size": 32, "n_test": 40,
                             "n_adaptive": 5, "zoo_restorer": True, "adaptive_ensemble": False},
    "dir-mnist": {"n_train": 140, "n_val": 20, "epochs": 1, "n_test": 30, "n_adaptive": 5, "adaptive_ensemble": False},
    "dkn-mnist": {"n_train": 100, "n_val": 20, "epochs": 1, "n_test": 30, "n_adaptive": 5, "adaptive_ensemble": False},
    "cmag-mnist": {"n_train": 300, "n_calibration": 100, "epochs": 1, "magnet_epochs": 2, "gan_epochs": 1,
                   "gan_steps": 5, "gan_restarts": 1, "gan_search_lr": 100.0, "gan_lr": 0.0005, "max_rule_n": 50,
                   "n_test": 30, "n_adaptive": 0, "n_adaptive_gan": 0},
}
