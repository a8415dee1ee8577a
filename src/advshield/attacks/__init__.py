"""The attack engine: registered, batched, seeded attacks under three threat models."""

from advshield.attacks import apgd, carlini_wagner, deepfool, fast_gradient, iterative, noise, spatial  # noqa: F401
from advshield.attacks.apgd import APGD, APGDDLR, APGDT
from advshield.attacks.base import ATTACKS, Attack, AttackResult, Norm, perturbation_norms, register_attack
from advshield.attacks.carlini_wagner import CarliniWagnerL2
from advshield.attacks.deepfool import L2DeepFool, LinfDeepFool
from advshield.attacks.fast_gradient import FGSM, RFGSM
from advshield.attacks.iterative import BIM, MIFGSM, PGD, PGDL2
from advshield.attacks.noise import UniformNoise
from advshield.attacks.pipeline import Pipeline, Surface, ThreatModel
from advshield.attacks.runner import create_attack, run_attack
from advshield.attacks.spatial import SpatialAttack

__all__ = ["APGD", "APGDDLR", "APGDT", "ATTACKS", "Attack", "AttackResult", "BIM", "CarliniWagnerL2", "FGSM", "L2DeepFool", "LinfDeepFool",
           "MIFGSM", "Norm", "PGD", "PGDL2", "Pipeline", "RFGSM", "SpatialAttack", "Surface", "ThreatModel",
           "UniformNoise", "create_attack", "perturbation_norms", "register_attack", "run_attack"]
