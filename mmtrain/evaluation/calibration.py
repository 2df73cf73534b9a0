"""Post-hoc calibration, fitted on the validation split after training (Guo et al. 2017): a
temperature per classification task, and per-label decision thresholds for multilabel tasks. The
task types (mmtrain/tasks/) say what each of them fits; these are the numerics."""

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


MIN_ROWS = 50  # val rows with a target below which a fitted calibration is not trusted (nor tested)


def fit_checked(kind, outputs: torch.Tensor, targets: torch.Tensor, settings: dict, seed: int = 0) -> dict:
    """``kind.fit_calibration`` on every val row, each fitted part kept only where it helps on rows it
    did not see: fitted on one random half of val and scored on the other, and again the other way
    round, the temperature must lower the NLL and the thresholds must raise the macro-F1 (against no
    calibration) both times.
    A part not kept is reset (temperature 1, thresholds 0.5) and ``note`` says why; with fewer than
    MIN_ROWS rows nothing is fitted."""
    fitted = kind.fit_calibration(outputs, targets, settings)
    parts = [p for p in ("temperature", "thresholds") if p in fitted]
    if not parts:
        return fitted
    n = len(targets)
    if n < MIN_ROWS:
        return {**_reset(fitted, parts), "note": f"not fitted: val has {n} rows with a target, too few to tell "
                                                 f"whether calibration helps (at least {MIN_ROWS})"}
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    halves = (order[: n // 2], order[n // 2:])
    gains = {p: [] for p in parts}
    for fit, held in (halves, halves[::-1]):
        part = kind.fit_calibration(outputs[fit], targets[fit], settings)
        x, y = outputs[held].float(), targets[held]
        gains["temperature"].append(float(kind.nll(x, y).mean() - kind.nll(x / part["temperature"], y).mean()))
        if "thresholds" in parts:
            scaled = {"temperature": part["temperature"]}
            gains["thresholds"].append(_macro_f1(kind, x, y, {**scaled, "thresholds": part["thresholds"]}) -
                                       _macro_f1(kind, x, y, scaled))
    dropped = [p for p in parts if min(gains[p]) <= 0]
    if not dropped:
        return fitted
    said = {"temperature": "the temperature did not lower the NLL", "thresholds": "the thresholds did not raise F1"}
    return {**_reset(fitted, dropped),
            "note": "; ".join(said[p] for p in dropped) + " on held-out halves of val: not used"}


def _reset(calibration: dict, parts: list[str]) -> dict:
    out = {k: v for k, v in calibration.items() if k not in parts}
    return {**out, "temperature": 1.0} if "temperature" in parts else out


def _macro_f1(kind, outputs: torch.Tensor, targets: torch.Tensor, calibration: dict) -> float:
    from torchmetrics.functional.classification import multilabel_f1_score

    decided = kind.decide(kind.probabilities(outputs, calibration), calibration)
    return float(multilabel_f1_score(decided, targets.long(), num_labels=targets.shape[1], average="macro"))
