"""Whether a trained generator does its job: the edit report of seed 003's translators.

An attack on a generator is only meaningful against a generator that translates; this report says how well one does,
next to what the identity map (G(x, c) = x) scores on the same images, which is the floor a useless generator sits
on.

Attribute editors (StarGAN, AttGAN, STGAN), per attack domain, with an attribute classifier as the judge:

- ``success``: share of the images whose edited attribute the condition changes (for a hair colour, the images
  without it already) where the classifier reads the target value of that attribute in G(x, c);
  ``success_identity``: the same for x itself (the classifier's error rate on that attribute, roughly).
- ``moved_l1``: mean |G(x, c) - x| over every pixel and image, on the [-1, 1] scale.
- ``preservation``: the classifier's accuracy against the source labels on G(x, c) over the (image, attribute)
  pairs the condition leaves as they were; ``preservation_identity``: its accuracy on x over the same pairs.

U-GAT-IT (unconditional, to the domain-B stylization ``domain_b`` of :mod:`advdf.data.stylize`), with a classifier
that has a style logit (trained on real, blurred and stylized faces, see :class:`advdf.lit.AttributeClassifierModule`)
as the judge:

- ``success``: share of the images whose output the classifier calls stylized; ``success_identity``: share of the
  inputs it calls so (its false-positive rate).
- ``preservation`` / ``preservation_identity``: the classifier's accuracy on every attribute of G(x) / x against the
  source labels (a translation should keep the person's attributes).
- ``distance_to_b``: mean |G(x) - B(x)|, the distance to the stylization of the same face, which the translator never
  saw paired with it; ``distance_to_b_identity``: mean |x - B(x)|.
- ``moved_l1``: mean |G(x) - x|.

Without such a classifier the classifier-based numbers are None and the distances remain.

``mean`` averages each number over the domains (those without an edited image left out of ``success``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from advdf.errors import ConfigError
from advdf.generators import STGAN, UGATIT, AttGAN, Generator, StarGAN

ATTRIBUTE_KEYS = ("n_edited", "success", "success_identity", "moved_l1", "preservation", "preservation_identity")
STYLE_KEYS = ("success", "success_identity", "preservation", "preservation_identity", "distance_to_b",
              "distance_to_b_identity", "moved_l1")


def target_attributes(generator: Generator, attrs: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The attributes ({0, 1}, the generator's order) that condition ``c`` asks of images with ``attrs``."""
    if isinstance(generator, STGAN):  # the difference of the encodings: enc(target) = enc(source) + c
        return (generator.encode_attributes(attrs) + c > 0).float()
    if isinstance(generator, AttGAN):  # +-0.5, the edited attribute +-1
        return (c > 0).float()
    if isinstance(generator, StarGAN):  # the target vector itself
        return (c > 0.5).float()
    raise ConfigError(f"edit_report reads the target attributes of StarGAN, AttGAN and STGAN conditions, "
                      f"not {type(generator).__name__}'s")


def _loader_and_attributes(data, attributes: Sequence[str] | None) -> tuple[Iterable, tuple[str, ...]]:
    if hasattr(data, "test_dataloader") and hasattr(data, "attributes"):  # a CelebADataModule: its test split
        return data.test_dataloader(), tuple(data.attributes)
    names = attributes if attributes is not None else getattr(getattr(data, "dataset", None), "attributes", None)
    if names is None:
        raise ConfigError("edit_report needs the names of the data's attribute vector (attributes=...)")
    return data, tuple(names)


def _columns(names: Sequence[str], wanted: Sequence[str], who: str) -> list[int]:
    missing = [a for a in wanted if a not in names]
    if missing:
        raise ConfigError(f"edit_report: {who} needs attributes {missing} that the data does not carry ({list(names)})")
    return [list(names).index(a) for a in wanted]


@torch.no_grad()
def edit_report(generator: Generator, classifier: nn.Module | None, data, attributes: Sequence[str] | None = None,
                domain_b: Callable[[torch.Tensor], torch.Tensor] | None = None, max_images: int | None = None,
                device: torch.device | str | None = None) -> dict:
    """The edit report of ``generator`` (see the module docstring for every number).

    Args:
        generator: a trained :class:`advdf.generators.Generator`.
        classifier: an :class:`advdf.generators.attribute_classifier.AttributeClassifier` (logits per name in its
            ``attributes``) that knows every attack domain of an attribute editor; for U-GAT-IT one with a style logit,
            or None (distances only).
        data: a :class:`advdf.data.celeba.CelebADataModule` (its test split is read) or batches of
            ``(images in [-1, 1], attrs in {0, 1})``.
        attributes: the names of the batches' attribute vector (taken from a data module or ``data.dataset``).
        domain_b: U-GAT-IT's domain-B transform.
        max_images: stop after this many images (None: all).
        device: where to run (default: the generator's).

    Returns:
        ``{"generator", "kind" ("attributes" | "style"), "n_images", "domains": {domain: {...}}, "mean": {...}}``.
        The models' train / eval modes are restored afterwards.
    """
    loader, names = _loader_and_attributes(data, attributes)
    style = isinstance(generator, UGATIT)
    if style and domain_b is None:
        raise ConfigError("edit_report of U-GAT-IT needs its domain-B transform (domain_b=...)")
    if style and classifier is not None and getattr(classifier, "style", None) is None:
        raise ConfigError("edit_report of U-GAT-IT needs a classifier with a style logit (style=...), or None")
    if not style and classifier is None:
        raise ConfigError(f"edit_report of {generator.name} needs an attribute classifier")
    device = torch.device(device) if device is not None else next(generator.parameters()).device
    models = [m for m in (generator, classifier) if m is not None]
    modes = [m.training for m in models]
    for m in models:
        m.to(device).eval()
    try:
        if style:
            sums, n = _style_sums(generator, classifier, names, domain_b, loader, max_images, device)
        else:
            sums, n = _attribute_sums(generator, classifier, names, loader, max_images, device)
    finally:
        for m, mode in zip(models, modes, strict=True):
            m.train(mode)
    return _report(generator, "style" if style else "attributes", sums, n)


def _batches(loader: Iterable, max_images: int | None, device: torch.device):
    seen = 0
    for x, attrs in loader:
        if max_images is not None:
            if seen >= max_images:
                return
            x, attrs = x[:max_images - seen], attrs[:max_images - seen]
        seen += len(x)
        yield x.to(device), attrs.to(device).float()


def _attribute_sums(generator, classifier, names, loader, max_images, device) -> tuple[dict, int]:
    known = list(classifier.attributes)
    gen_cols = _columns(names, generator.attributes, generator.name)
    cls_cols = _columns(names, known, "the classifier")
    judged = _columns(known, generator.domains, f"judging {generator.name}'s domains, the classifier")
    # where each generator attribute sits among the classifier's logits (None: the classifier does not read it)
    in_classifier = [known.index(a) if a in known else None for a in generator.attributes]
    sums = {d: dict.fromkeys(("edited", "hit", "hit_identity", "moved", "kept", "kept_n", "kept_identity"), 0.0)
            for d in generator.domains}
    n = 0
    for x, data_attrs in _batches(loader, max_images, device):
        attrs, truth = data_attrs[:, gen_cols], data_attrs[:, cls_cols].bool()
        seen_x = _attribute_logits(classifier, x) > 0
        n += len(x)
        for d, domain in enumerate(generator.domains):
            c = generator.condition(attrs, d)
            out = generator(x, c)
            target = target_attributes(generator, attrs, c)
            i = generator.attributes.index(domain)
            changed = target[:, i] != attrs[:, i]
            wanted = target[:, i].bool()
            seen_out = _attribute_logits(classifier, out) > 0
            asked = truth.clone()
            for j, k in enumerate(in_classifier):
                if k is not None:
                    asked[:, k] = target[:, j].bool()
            untouched = asked == truth
            s = sums[domain]
            s["edited"] += float(changed.sum())
            hit, hit_identity = seen_out[:, judged[d]] == wanted, seen_x[:, judged[d]] == wanted
            s["hit"] += float(hit[changed].sum())
            s["hit_identity"] += float(hit_identity[changed].sum())
            s["moved"] += float((out - x).abs().flatten(1).mean(1).sum())
            s["kept"] += float((seen_out == truth)[untouched].sum())
            s["kept_identity"] += float((seen_x == truth)[untouched].sum())
            s["kept_n"] += float(untouched.sum())
    return sums, n


def _attribute_logits(classifier: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The classifier's attribute logits (without its style logit, which comes last)."""
    return classifier(x)[:, :len(classifier.attributes)]


def _style_sums(generator, classifier, names, domain_b, loader, max_images, device) -> tuple[dict, int]:
    s = dict.fromkeys(("hit", "hit_identity", "kept", "kept_identity", "kept_n", "to_b", "to_b_identity", "moved"),
                      0.0)
    cls_cols = _columns(names, classifier.attributes, "the classifier") if classifier is not None else []
    n = 0
    for x, data_attrs in _batches(loader, max_images, device):
        out, b = generator(x), domain_b(x).to(x)
        if classifier is not None:
            n_attrs, truth = len(classifier.attributes), data_attrs[:, cls_cols].bool()
            logits_out, logits_x = classifier(out), classifier(x)
            s["hit"] += float((logits_out[:, n_attrs] > 0).sum())
            s["hit_identity"] += float((logits_x[:, n_attrs] > 0).sum())
            s["kept"] += float(((logits_out[:, :n_attrs] > 0) == truth).sum())
            s["kept_identity"] += float(((logits_x[:, :n_attrs] > 0) == truth).sum())
            s["kept_n"] += float(truth.numel())
        to_b, moved = (out - b).abs().flatten(1).mean(1), (out - x).abs().flatten(1).mean(1)
        s["to_b"] += float(to_b.sum())
        s["to_b_identity"] += float((x - b).abs().flatten(1).mean(1).sum())
        s["moved"] += float(moved.sum())
        n += len(x)
    return {generator.domains[0]: s}, n


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _report(generator: Generator, kind: str, sums: dict, n: int) -> dict:
    if n == 0:
        raise ConfigError(f"edit_report of {generator.name}: the data holds no images")
    domains = {}
    for domain, s in sums.items():
        if kind == "style":
            judged = s["kept_n"] > 0
            domains[domain] = {"success": s["hit"] / n if judged else None,
                               "success_identity": s["hit_identity"] / n if judged else None,
                               "preservation": _ratio(s["kept"], s["kept_n"]),
                               "preservation_identity": _ratio(s["kept_identity"], s["kept_n"]),
                               "distance_to_b": s["to_b"] / n, "distance_to_b_identity": s["to_b_identity"] / n,
                               "moved_l1": s["moved"] / n}
        else:
            domains[domain] = {"n_edited": int(s["edited"]), "success": _ratio(s["hit"], s["edited"]),
                               "success_identity": _ratio(s["hit_identity"], s["edited"]),
                               "moved_l1": s["moved"] / n, "preservation": _ratio(s["kept"], s["kept_n"]),
                               "preservation_identity": _ratio(s["kept_identity"], s["kept_n"])}
    keys = STYLE_KEYS if kind == "style" else ATTRIBUTE_KEYS[1:]
    mean = {}
    for key in keys:
        values = [v[key] for v in domains.values() if v[key] is not None]
        mean[key] = sum(values) / len(values) if values else None
    return {"generator": generator.name, "kind": kind, "n_images": n, "domains": domains, "mean": mean}
