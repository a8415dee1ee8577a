"""The attack engine: registered, batched, seeded attacks under three threat models."""

from advshield.attacks import (apgd, autoattack, carlini_wagner, deepfool, fab, fast_gradient, iterative,  # noqa: F401
                               noise, spatial, square)
from advshield.attacks.apgd import APGD, APGDDLR, APGDT
from advshield.attacks.autoattack import AutoAttack, member_robust_accuracy
from advshield.attacks.base import ATTACKS, Attack, AttackResult, Norm, perturbation_norms, register_attack
from advshield.attacks.carlini_wagner import CarliniWagnerL2
from advshield.attacks.deepfool import L2DeepFool, LinfDeepFool
from advshield.attacks.fab import FABT
from advshield.attacks.fast_gradient import FGSM, RFGSM
from advshield.attacks.iterative import BIM, MIFGSM, PGD, PGDL2
from advshield.attacks.noise import UniformNoise
from advshield.attacks.pipeline import Pipeline, Surface, ThreatModel
from advshield.attacks.runner import craft_images, create_attack, run_attack
from advshield.attacks.spatial import SpatialAttack
from advshield.attacks.square import Square

__all__ = ["APGD", "APGDDLR", "APGDT", "ATTACKS", "Attack", "AttackResult", "AutoAttack", "BIM", "CarliniWagnerL2",
           "FABT", "FGSM", "L2DeepFool", "LinfDeepFool", "MIFGSM", "Norm", "PGD", "PGDL2", "Pipeline", "RFGSM",
           "SpatialAttack", "Square", "Surface", "ThreatModel", "UniformNoise", "create_attack",
           "member_robust_accuracy", "perturbation_norms", "register_attack", "run_attack", "craft_images"]
