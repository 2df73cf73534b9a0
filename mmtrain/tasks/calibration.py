"""The numerics of post-hoc calibration (Guo et al. 2017) that the task types fit on val: a
temperature, and per-label decision thresholds. Whether a fit is kept is evaluation/calibration.py's."""

from __future__ import annotations

import torch


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, nll) -> float:
    """The T > 0 minimising the mean ``nll(logits / T, targets)`` on these (val) rows: LBFGS on
    log T, from T = 1. Dividing by T leaves argmax, and so accuracy and F1, unchanged."""
    logits, targets = logits.detach().float().clone(), targets.clone()  # out of inference mode
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = nll(logits / log_t.exp(), targets).mean()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    temperature = log_t.detach().exp().clamp(0.05, 20.0).item()
    return temperature if torch.isfinite(torch.tensor(temperature)) else 1.0


def best_f1_threshold(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The decision threshold on ``scores`` [N] with the best F1 against 0/1 ``labels`` [N]; every
    distinct score is a candidate (the midpoint to the next lower one is returned, so a new row
    with the same score as the last positive counts as positive). 0.5 with no positive."""
    labels = labels.float()
    positives = labels.sum()
    if positives == 0:
        return 0.5
    order = scores.argsort(descending=True)
    s, y = scores[order], labels[order]
    tp = y.cumsum(0)
    predicted = torch.arange(1, len(s) + 1, dtype=torch.float32)
    f1 = 2 * tp / (predicted + positives)
    last = torch.ones(len(s), dtype=torch.bool)  # only cut between distinct scores
    last[:-1] = s[:-1] != s[1:]
    f1 = torch.where(last, f1, torch.zeros_like(f1))
    k = int(f1.argmax())
    below = s[k + 1] if k + 1 < len(s) else s[k] - 1e-3
    return float(((s[k] + below) / 2).clamp(1e-6, 1 - 1e-6))
