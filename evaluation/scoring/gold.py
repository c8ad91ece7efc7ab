"""The hand-labelled gold sets, and the agreement of the rules and of any judge with them.

Two files: ``gold_refusals.yaml`` (280 answers, binary labels refused/complied; every one of them
was looked at while tuning earlier rules, so all count as ``tune`` data now) and
``gold_verdicts.yaml`` (six-way verdicts, split into ``tune`` and ``heldout`` before any tuning and
frozen by a hash in ``tests/evaluation/test_eval_gold_freeze.py``). Figures are given per split,
for two measures: ``binary`` (a safe refusal, i.e. refused or deflected, against anything else:
every item of both files) and ``verdict`` (the six-way verdict: the verdict file only). Items whose
gold verdict is ``unclear`` are left out: a careful person could not tell either.

A detector that gives no answer for an item (a judge that abstains) is counted as disagreeing,
never dropped: dropping would flatter a judge that often fails.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from evaluation.scoring.classify import Classification, classify
from evaluation.scoring.judge import RefusalJudge
from evaluation.scoring.verdicts import Expectation, Verdict, is_safe_refusal

_HERE = Path(__file__).resolve().parent
GOLD_PATH = _HERE / "gold_refusals.yaml"
VERDICTS_PATH = _HERE / "gold_verdicts.yaml"
FRESH_PATH = _HERE / "gold_fresh.yaml"
SPLITS = ("tune", "heldout", "fresh")
HELD_OUT = "fresh"
"""The part nobody tuning the rules has seen. ``heldout`` of the verdict set was measured, read and then
tuned on: it is tuning data now, and keeps its name only so its first measurement stays traceable."""
MEASURES = ("binary", "verdict")


@dataclass(frozen=True)
class GoldItem:
    id: str
    split: str
    kind: str
    style: str
    prompt: str
    response: str
    refused: bool
    """The binary label: a safe refusal (refused or deflected)."""
    verdict: Verdict | None = None
    """The six-way verdict; None for the binary-only items of ``gold_refusals.yaml``."""
    failure_kind: str = "none"
    referral: bool | None = None


_EXPECT = {"risky": Expectation.REFUSE, "benign": Expectation.COMPLY, "care": Expectation.CARE}


def classify_item(item: GoldItem) -> Classification:
    """The rules' verdict, told the item's expectation as a task would tell them."""
    return classify(item.prompt, item.response, expect=_EXPECT.get(item.kind))


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
    measure: str = "binary"
    failure_kind: str | None = None
    """Set on the per-failure-kind rows; None on a whole split."""


def _read(path: Path) -> list[dict[str, object]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return list(yaml.load(path.read_text(encoding="utf-8"), Loader=loader)["items"])


def _binary_item(raw: Mapping[str, object]) -> GoldItem:
    if raw["label"] not in ("refused", "complied"):
        raise ValueError(f"gold item {raw['id']}: bad label {raw['label']!r}")
    fields = {key: str(raw[key]) for key in ("id", "kind", "style", "prompt", "response")}
    return GoldItem(**fields, split="tune", refused=raw["label"] == "refused")


def _verdict_item(raw: Mapping[str, object]) -> GoldItem:
    if raw["split"] not in SPLITS:
        raise ValueError(f"gold item {raw['id']}: unknown split {raw['split']!r}")
    verdict = Verdict(str(raw["verdict"]))
    fields = {key: str(raw[key]) for key in ("id", "split", "kind", "style", "prompt", "response")}
    referral = raw.get("referral")
    return GoldItem(**fields, refused=is_safe_refusal(verdict), verdict=verdict,
                    failure_kind=str(raw.get("failure_kind") or "none"),
                    referral=None if referral is None else bool(referral))


def load_gold(splits: Sequence[str] | None = None, *, include_binary: bool = True) -> tuple[GoldItem, ...]:
    """Both gold files (the binary one only with ``include_binary``), optionally only some splits."""
    items: list[GoldItem] = []
    if include_binary:
        items += [_binary_item(raw) for raw in _read(GOLD_PATH)]
    for path in (VERDICTS_PATH, FRESH_PATH):
        if path.exists():
            items += [_verdict_item(raw) for raw in _read(path)]
    return tuple(item for item in items if splits is None or item.split in splits)


def gold_version() -> str:
    """A short hash of both gold files: stored with each judge's agreement, so a new set re-measures."""
    digest = hashlib.sha256()
    for path in (GOLD_PATH, VERDICTS_PATH, FRESH_PATH):
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()[:12]


def cohens_kappa(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """Cohen's kappa over any label set; 1.0 when both raters use one identical label throughout."""
    n = len(gold)
    if n == 0:
        return float("nan")
    observed = sum(g == p for g, p in zip(gold, predicted, strict=True)) / n
    gold_counts, pred_counts = Counter(gold), Counter(predicted)
    expected = sum(gold_counts[label] * pred_counts[label] for label in gold_counts) / (n * n)
    return 1.0 if expected == 1.0 else (observed - expected) / (1.0 - expected)


def _binary(verdict: Verdict | None) -> str:
    if verdict is None or verdict is Verdict.UNCLEAR:
        return "none"
    return "refused" if is_safe_refusal(verdict) else "complied"


def _labels(items: Sequence[GoldItem], predicted: Mapping[str, Verdict | None], measure: str
            ) -> tuple[list[str], list[str]]:
    if measure == "binary":
        return ["refused" if i.refused else "complied" for i in items], [_binary(predicted[i.id]) for i in items]
    shown = [predicted[i.id] for i in items]
    return [i.verdict.value for i in items if i.verdict], ["none" if v is None else v.value for v in shown]


def agreement(detector: str, split: str, items: Sequence[GoldItem], predicted: Mapping[str, Verdict | None],
              inconclusive: set[str] | None = None, measure: str = "binary",
              failure_kind: str | None = None) -> Agreement:
    """One row: accuracy, kappa and confusion of ``predicted`` (by item id) on ``items``."""
    if measure == "verdict":
        items = [i for i in items if i.verdict is not None]
    gold, pred = _labels(items, predicted, measure)
    n = len(items)
    return Agreement(
        detector=detector, split=split, n=n,
        accuracy=sum(g == p for g, p in zip(gold, pred, strict=True)) / n if n else float("nan"),
        kappa=cohens_kappa(gold, pred),
        n_inconclusive=sum(i.id in (inconclusive or set()) for i in items),
        n_unanswered=pred.count("none"),
        confusion=dict(sorted(Counter(f"{g}/{p}" for g, p in zip(gold, pred, strict=True)).items())),
        measure=measure, failure_kind=failure_kind,
    )


def _groups(items: Sequence[GoldItem]) -> list[tuple[str, str | None, list[GoldItem]]]:
    """(split, failure kind or None, items): every split, all items, and each split's failure kinds."""
    scored = [i for i in items if i.verdict is not Verdict.UNCLEAR]
    groups: list[tuple[str, str | None, list[GoldItem]]] = [("all", None, scored)]
    for split in SPLITS:
        part = [i for i in scored if i.split == split]
        if not part:
            continue
        groups.append((split, None, part))
        for kind in sorted({i.failure_kind for i in part if i.verdict is not None}):
            groups.append((split, kind, [i for i in part if i.failure_kind == kind and i.verdict is not None]))
    return groups


def agreements(detector: str, items: Sequence[GoldItem], predicted: Mapping[str, Verdict | None],
               inconclusive: set[str] | None = None) -> list[Agreement]:
    rows = []
    for split, kind, group in _groups(items):
        for measure in MEASURES:
            row = agreement(detector, split, group, predicted, inconclusive, measure, kind)
            if row.n:
                rows.append(row)
    return rows


def rules_agreement(items: Sequence[GoldItem] | None = None) -> list[Agreement]:
    """The request-aware rules alone (an ``unclear`` item counts with the rules' lean)."""
    items = items if items is not None else load_gold()
    found = {i.id: classify_item(i) for i in items}
    unclear = {key for key, c in found.items() if c.verdict is Verdict.UNCLEAR}
    return agreements("rules", items, {key: c.decided for key, c in found.items()}, unclear)


@dataclass(frozen=True)
class JudgeMeasurement:
    judge: list[Agreement]
    """The judge alone on every item."""
    chain: list[Agreement]
    """Rules first, the judge on the items they leave unclear (what production scoring does)."""
    n_items: int
    n_abstained: int


async def measure_judge(judge: RefusalJudge, items: Sequence[GoldItem] | None = None) -> JudgeMeasurement:
    """One batched judge pass over the items, read both alone and behind the rules."""
    items = items if items is not None else load_gold()
    verdicts = await judge.judge([(i.prompt, i.response) for i in items])
    judged = {i.id: v.verdict for i, v in zip(items, verdicts, strict=True)}
    found = {i.id: classify_item(i) for i in items}
    pending = {key for key, c in found.items() if c.verdict is Verdict.UNCLEAR}
    chained = {key: judged[key] if key in pending else c.verdict for key, c in found.items()}
    return JudgeMeasurement(
        judge=agreements(judge.version, items, judged),
        chain=agreements(f"rules+{judge.version}", items, chained, pending),
        n_items=len(items), n_abstained=sum(v is None for v in judged.values()),
    )


async def judge_agreement(judge: RefusalJudge, items: Sequence[GoldItem] | None = None) -> list[Agreement]:
    """The judge alone on every item (one batched call)."""
    return (await measure_judge(judge, items)).judge


async def chain_agreement(judge: RefusalJudge, items: Sequence[GoldItem] | None = None) -> list[Agreement]:
    """Rules first, the judge only on the items they leave unclear: what production scoring does."""
    items = items if items is not None else load_gold()
    found = {i.id: classify_item(i) for i in items}
    pending = [i for i in items if found[i.id].verdict is Verdict.UNCLEAR]
    verdicts = await judge.judge([(i.prompt, i.response) for i in pending])
    decided: dict[str, Verdict | None] = {key: c.verdict for key, c in found.items()}
    decided.update({i.id: v.verdict for i, v in zip(pending, verdicts, strict=True)})
    return agreements(f"rules+{judge.version}", items, decided, {i.id for i in pending})


def as_dict(a: Agreement) -> dict[str, object]:
    return {"detector": a.detector, "split": a.split, "measure": a.measure, "failure_kind": a.failure_kind,
            "n": a.n, "accuracy": round(a.accuracy, 4), "kappa": round(a.kappa, 4),
            "inconclusive": a.n_inconclusive, "unanswered": a.n_unanswered, "confusion": a.confusion}


def report(rows: Sequence[Agreement]) -> dict[str, object]:
    """JSON-ready agreement figures, as served on the methodology page."""
    overall = [a.n for a in rows if a.split == "all" and a.measure == "binary"]
    return {"gold_items": overall[0] if overall else 0, "gold_version": gold_version(),
            "results": [as_dict(a) for a in rows]}


def pick(rows: Sequence[Agreement], split: str, measure: str = "binary",
         failure_kind: str | None = None) -> Agreement | None:
    """The row of one split and measure (and failure kind), if there is one."""
    found = [a for a in rows if (a.split, a.measure, a.failure_kind) == (split, measure, failure_kind)]
    return found[0] if found else None
