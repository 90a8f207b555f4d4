"""Attacks on [0, 1] images against detectors (that normalize inside themselves), forensic autoencoders and
image-translation generators."""

from advdf.attacks.active import ActiveSamples
from advdf.attacks.apgd import APGD
from advdf.attacks.base import Attack, AttackOutput, IterativeAttack, Perturbed, eval_mode
from advdf.attacks.bim import BIM
from advdf.attacks.cdmaa import CDMAA, CDMAAAPGD, CDMAAMomentum
from advdf.attacks.cdmaa_universal import UniversalCDMAA
from advdf.attacks.cw import CW
from advdf.attacks.deepfool import DeepFool
from advdf.attacks.disruption import Disruption, Translators
from advdf.attacks.fgsm import FGSM
from advdf.attacks.iap import IAP
from advdf.attacks.kra import KRA, KeyRegion
from advdf.attacks.losses import LOSSES, cross_entropy, get_loss, margin
from advdf.attacks.mifgsm import MIFGSM
from advdf.attacks.nes import NES
from advdf.attacks.objectives import Classification, Context, Objective
from advdf.attacks.pgd import PGD
from advdf.attacks.registry import create_attack, list_attacks, register_attack
from advdf.attacks.sim import SIM
from advdf.attacks.square import Square
from advdf.attacks.tifgsm import TIFGSM
from advdf.attacks.uap import URN, OverFire
from advdf.attacks.zones import ZoneActivation, ZoneSegmentation

__all__ = [
    "Attack", "AttackOutput", "ActiveSamples", "IterativeAttack", "Perturbed", "eval_mode",
    "Objective", "Classification", "Context", "KeyRegion", "ZoneActivation", "ZoneSegmentation",
    "Disruption", "Translators",
    "APGD", "BIM", "CDMAA", "CDMAAAPGD", "CDMAAMomentum", "CW", "DeepFool", "FGSM", "IAP", "KRA", "MIFGSM", "NES", "OverFire", "PGD", "SIM", "Square",
    "TIFGSM", "URN", "UniversalCDMAA",
    "LOSSES", "cross_entropy", "get_loss", "margin", "create_attack", "list_attacks", "register_attack",
]
