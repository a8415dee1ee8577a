"""The experiment layer: one threat value, one attack-setting type, one run context, one way to an
adversarial set. Commands build these; evaluation, detection, analysis, training and reproduction use them."""

from advshield.experiment.acquire import StoredSet, acquire_set, judge, on_victim
from advshield.experiment.context import RunContext, Target
from advshield.experiment.setting import AttackSetting
from advshield.experiment.threat import Threat, ThreatField, ThreatModel

__all__ = ["AttackSetting", "RunContext", "StoredSet", "Target", "Threat", "ThreatField", "ThreatModel",
           "acquire_set", "judge", "on_victim"]
