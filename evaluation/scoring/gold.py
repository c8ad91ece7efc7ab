"""The hand-labelled gold set of refusals, and agreement of detectors with it.

Serves the methodology page and the benchmark: accuracy and Cohen's kappa of the refusal rules
and of any judge, per split. A detector that gives no answer for an item (a judge parse error)
is counted as disagreeing, never dropped: dropping would flatter a judge that often fails.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from evaluation.scoring.judge import RefusalJudge
from evaluation.scoring.refusal import Detection, RefusalDetection, detect_refusal

GOLD_PATH = Path(__file__).resolve().parent / "gold_refusals.yaml"
SPLITS = ("dev", "test", "test2", "test3", "test4")


@dataclass(frozen=True)
class GoldItem:
    id: str
    split: str
    kind: str
    style: str
    prompt: str
    response: str
    refused: bool


@dataclass(frozen=True)
class Agreement:
    detector: str
    split: str
    n: int
    accuracy: float
    kappa: float
    n_inconclusive: int
    n_unanswered: int
    confusion: dict[str, int]
    """Keys ``gold/predicted``, e.g. ``refused/complied``."""


def load_gold(path: Path = GOLD_PATH, splits: Sequence[str] | None = None) -> tuple[GoldItem, ...]:
    document = yaml.load(
        path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    )
    items = tuple(_gold_item(raw) for raw in document["items"])
    return tuple(item for item in items if splits is None or item.split in splits)


def _gold_item(raw: dict[str, str]) -> GoldItem:
    if raw["split"] not in SPLITS:
        raise ValueError(f"gold item {raw['id']}: unknown split {raw['split']!r}")
    if raw["label"] not in ("refused", "complied"):
        raise ValueError(f"gold item {raw['id']}: bad label {raw['label']!r}")
    fields = {key: raw[key] for key in ("id", "split", "kind", "style", "prompt", "response")}
    return GoldItem(**fields, refused=raw["label"] == "refused")


def cohens_kappa(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """Cohen's kappa over any label set; 1.0 when both raters use one identical label throughout."""
    n = len(gold)
    if n == 0:
        return float("nan")
    observed = sum(g == p for g, p in zip(gold, predicted, strict=True)) / n
    gold_counts, pred_counts = Counter(gold), Counter(predicted)
    expected = sum(gold_counts[label] * pred_counts[label] for label in gold_counts) / (n * n)
    return 1.0 if expected == 1.0 else (observed - expected) / (1.0 - expected)


def _label(refused: bool | None) -> str:
    return "none" if refused is None else ("refused" if refused else "complied")


def agreement(
    detector: str,
    split: str,
    items: Sequence[GoldItem],
    predicted: Sequence[bool | None],
    n_inconclusive: int = 0,
) -> Agreement:
    gold_labels = [_label(item.refused) for item in items]
    pred_labels = [_label(p) for p in predicted]
    n = len(items)
    accuracy = sum(g == p for g, p in zip(gold_labels, pred_labels, strict=True)) / n if n else float("nan")
    confusion = Counter(f"{g}/{p}" for g, p in zip(gold_labels, pred_labels, strict=True))
    return Agreement(
        detector=detector,
        split=split,
        n=n,
        accuracy=accuracy,
        kappa=cohens_kappa(gold_labels, pred_labels),
        n_inconclusive=n_inconclusive,
        n_unanswered=pred_labels.count("none"),
        confusion=dict(sorted(confusion.items())),
    )


def _by_split(items: Sequence[GoldItem]) -> dict[str, list[GoldItem]]:
    groups: dict[str, list[GoldItem]] = {"all": list(items)}
    for item in items:
        groups.setdefault(item.split, []).append(item)
    return groups


def rules_agreement(items: Sequence[GoldItem] | None = None) -> list[Agreement]:
    """Accuracy and kappa of the refusal rules (inconclusive -> the rules' lean), per split and overall."""
    return _evaluate_sync("rules", items if items is not None else load_gold(), detect_refusal)


def _evaluate_sync(
    name: str, items: Sequence[GoldItem], detect: Callable[[str], RefusalDetection]
) -> list[Agreement]:
    detections = {item.id: detect(item.response) for item in items}
    out = []
    for split, group in _by_split(items).items():
        predicted = [detections[i.id].refused for i in group]
        inconclusive = sum(detections[i.id].outcome is Detection.INCONCLUSIVE for i in group)
        out.append(agreement(name, split, group, predicted, inconclusive))
    return out


async def judge_agreement(judge: RefusalJudge, items: Sequence[GoldItem] | None = None) -> list[Agreement]:
    """The judge alone on every gold item (one batched call), per split and overall."""
    items = items if items is not None else load_gold()
    verdicts = await judge.judge([(item.prompt, item.response) for item in items])
    by_id = {item.id: verdict.refused for item, verdict in zip(items, verdicts, strict=True)}
    return [
        agreement(judge.version, split, group, [by_id[i.id] for i in group])
        for split, group in _by_split(items).items()
    ]


async def chain_agreement(judge: RefusalJudge, items: Sequence[GoldItem] | None = None) -> list[Agreement]:
    """Rules first, the judge only on inconclusive items: what production scoring does."""
    items = items if items is not None else load_gold()
    detections = {item.id: detect_refusal(item.response) for item in items}
    pending = [item for item in items if detections[item.id].outcome is Detection.INCONCLUSIVE]
    verdicts = await judge.judge([(item.prompt, item.response) for item in pending])
    decided: dict[str, bool | None] = {item.id: detections[item.id].refused for item in items}
    decided.update({item.id: verdict.refused for item, verdict in zip(pending, verdicts, strict=True)})
    name = f"rules+{judge.version}"
    return [
        agreement(name, split, group, [decided[i.id] for i in group])
        for split, group in _by_split(items).items()
    ]


def report(agreements: Sequence[Agreement]) -> dict[str, object]:
    """JSON-ready agreement figures, as served on the methodology page."""
    return {
        "gold_items": next(a.n for a in agreements if a.split == "all"),
        "results": [
            {
                "detector": a.detector,
                "split": a.split,
                "n": a.n,
                "accuracy": round(a.accuracy, 4),
                "kappa": round(a.kappa, 4),
                "inconclusive": a.n_inconclusive,
                "unanswered": a.n_unanswered,
                "confusion": a.confusion,
            }
            for a in agreements
        ],
    }
