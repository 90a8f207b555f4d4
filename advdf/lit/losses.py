"""Training losses beyond plain cross-entropy: AugMix's JSD consistency and a batch-hard triplet loss.

- :func:`jsd_consistency` / :func:`augmix_loss`: Hendrycks et al., "AugMix" (ICLR 2020); the views come from
  :class:`advdf.data.augmix.AugMixViews`.
- :func:`batch_hard_triplet_loss`: Hermans et al., "In Defense of the Triplet Loss for Person Re-Identification"
  (2017), on detector embeddings (for example ``forward_features`` pooled to vectors).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from advdf.errors import ConfigError


def jsd_consistency(logits_clean: torch.Tensor, logits_aug1: torch.Tensor, logits_aug2: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence among the predictions on the clean image and its two AugMix views.

    With p_i the softmax of each, M = (p_clean + p_aug1 + p_aug2) / 3 (clamped to [1e-7, 1] before the log, as in
    the original code), the result is mean_i KL(p_i || M), averaged over the batch. Zero when all three agree.
    """
    if not logits_clean.shape == logits_aug1.shape == logits_aug2.shape:
        raise ConfigError(f"JSD needs three logits of one shape, got {tuple(logits_clean.shape)}, "
                          f"{tuple(logits_aug1.shape)}, {tuple(logits_aug2.shape)}")
    probs = [F.softmax(x, dim=1) for x in (logits_clean, logits_aug1, logits_aug2)]
    log_mixture = torch.clamp((probs[0] + probs[1] + probs[2]) / 3.0, 1e-7, 1.0).log()
    return sum(F.kl_div(log_mixture, p, reduction="batchmean") for p in probs) / 3.0


def augmix_loss(logits: torch.Tensor, labels: torch.Tensor, weight: float = 12.0
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """AugMix objective: CE on the clean third plus ``weight`` times the JSD consistency of all three.

    Args:
        logits: (3N, C) logits of ``cat([clean, aug1, aug2])`` from one forward pass.
        labels: (N,) class labels of the clean images.
        weight: JSD coefficient (12 in the original paper).

    Returns:
        The loss and its detached parts ``{"ce", "jsd"}`` for logging.
    """
    n = labels.shape[0]
    if logits.shape[0] != 3 * n:
        raise ConfigError(f"augmix_loss needs 3N logits (clean, aug1, aug2) for N={n} labels, "
                          f"got {logits.shape[0]}")
    clean, aug1, aug2 = logits.split(n)
    ce = F.cross_entropy(clean, labels)
    jsd = jsd_consistency(clean, aug1, aug2)
    return ce + weight * jsd, {"ce": ce.detach(), "jsd": jsd.detach()}


def batch_hard_triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Batch-hard triplet loss: per anchor, relu(farthest positive distance - closest negative distance + margin).

    Distances are Euclidean (``torch.cdist``). The mean is over anchors that have at least one positive (same
    label, not itself) and one negative in the batch; with none such, a zero that still carries a gradient.

    Args:
        embeddings: (N, D) embedding vectors.
        labels: (N,) class labels.
        margin: hinge margin (>= 0).
    """
    if margin < 0:
        raise ConfigError(f"triplet margin must be >= 0, got {margin}")
    if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1]:
        raise ConfigError(f"triplet loss needs (N, D) embeddings and (N,) labels, got "
                          f"{tuple(embeddings.shape)} and {tuple(labels.shape)}")
    dist = torch.cdist(embeddings, embeddings)
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    negative = ~same
    valid = positive.any(1) & negative.any(1)
    if not valid.any():
        return embeddings.sum() * 0.0
    hardest_positive = dist.masked_fill(~positive, float("-inf")).amax(1)
    hardest_negative = dist.masked_fill(~negative, float("inf")).amin(1)
    hinge = F.relu(hardest_positive - hardest_negative + margin)
    return hinge[valid].mean()
