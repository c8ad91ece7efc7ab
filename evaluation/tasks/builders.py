"""Builders expand a compact project data file into item records.

A builder is named in a source spec (``builder: hierarchy_product``) and receives the parsed file
as a list of records, plus the spec's named ``inputs`` (other files, parsed the same way). Builders
are pure and deterministic: no randomness, so a task's content hash fully describes its items.

Ids are content hashes of the prompt text (not of the whole record), so retagging an item never
renames it, and ``cluster`` names the base request: the in-the-wild jailbreak items wrap HarmBench
requests and share their cluster with the direct HarmBench items, so a request and its wrappings
are resampled as one unit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from evaluation.hashing import content_hash
from evaluation.tasks.taxonomy import dna_harm_tags

Records = list[dict[str, Any]]
Inputs = Mapping[str, Records]

JAILBREAK_PLACEHOLDER = "[INSERT PROMPT HERE]"
MAX_TEMPLATE_CHARS = 3000
"""Longer in-the-wild templates (a quarter of them) would dominate generation time on CPU models."""
REQUESTS_PER_TEMPLATE = 2


def hierarchy_product(records: Records, inputs: Inputs) -> Records:
    """Cross every guarded system prompt (scenario) with every attempt written for its kind.

    Secret scenarios guard a string; rule scenarios forbid an output pattern. Attempts are
    templates that name the guarded ``{asset}`` or the forbidden ``{request}``.
    """
    (document,) = records
    out: Records = []
    for scenario in document["scenarios"]:
        for attempt in document["attempts"]:
            if attempt["applies_to"] == scenario["kind"]:
                out.append(_hierarchy_item(scenario, attempt))
    return out


def _hierarchy_item(scenario: Mapping[str, Any], attempt: Mapping[str, Any]) -> dict[str, Any]:
    user = attempt["text"].format(asset=scenario.get("asset", ""), request=scenario.get("request", ""))
    return {
        "id": f"{scenario['id']}.{attempt['id']}",
        "system": scenario["system"].strip(),
        "user": user,
        "guard": {
            "secrets": list(scenario.get("secrets", [])),
            "forbidden_patterns": list(scenario.get("forbidden_patterns", [])),
        },
        "scenario": scenario["id"],
        "attempt": attempt["id"],
    }


def _text_id(text: str) -> str:
    return content_hash(text.strip(), 12)


def harmbench_cluster(request: str) -> str:
    return f"harmbench:{_text_id(request)}"


def donotanswer(records: Records, inputs: Inputs) -> Records:
    """Do-Not-Answer rows ``{prompt, intents}``, tagged with a harm category where the mapping is plain."""
    return [{**_dna_item(record), **dna_harm_tags(record["intents"][0])} for record in records]


def donotanswer_chatbot(records: Records, inputs: Inputs) -> Records:
    """The human-chatbot area, untagged: its intents (the user's health, the chatbot's own "private"
    details, anthropomorphism) are about the conversation, not a PKU-SafeRLHF harm."""
    return [_dna_item(record) for record in records]


def _dna_item(record: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": f"dna-{_text_id(record['prompt'])}", "prompt": record["prompt"],
            "intent": record["intents"][0], "intents": list(record["intents"])}


def harmbench(records: Records, inputs: Inputs) -> Records:
    """HarmBench's standard behaviours, one per line of text."""
    return [{"id": f"hb-{_text_id(r['text'])}", "prompt": r["text"], "cluster": harmbench_cluster(r["text"])}
            for r in records]


def jailbreak_wrap(records: Records, inputs: Inputs) -> Records:
    """In-the-wild jailbreak templates that leave a slot for the request, each filled with HarmBench
    requests taken in turn (template i gets requests 2i and 2i+1, wrapping round), so every template
    and most requests appear while the task stays a few hundred items."""
    requests = [r["text"] for r in inputs["requests"]]
    templates = [r["text"] for r in records
                 if JAILBREAK_PLACEHOLDER in r["text"] and len(r["text"]) <= MAX_TEMPLATE_CHARS]
    out: Records = []
    for i, template in enumerate(templates):
        for k in range(REQUESTS_PER_TEMPLATE):
            request = requests[(i * REQUESTS_PER_TEMPLATE + k) % len(requests)]
            out.append({"id": f"jb-{_text_id(template)}.{_text_id(request)}",
                        "prompt": template.replace(JAILBREAK_PLACEHOLDER, request),
                        "request": request, "template": _text_id(template),
                        "cluster": harmbench_cluster(request)})
    return out


def tense_rephrasings(records: Records, inputs: Inputs) -> Records:
    """Past-tense rephrasings (the main file) and future-tense ones (input ``future``) of harmful
    requests. The files do not say which request a line rephrases, so each line is its own cluster."""
    rows = [("past", r["text"]) for r in records] + [("future", r["text"]) for r in inputs["future"]]
    return [{"id": f"{tense}-{_text_id(text)}", "prompt": text, "tense": tense} for tense, text in rows]


def sysprompt_extraction(records: Records, inputs: Inputs) -> Records:
    """Every secret-guarding system prompt of the project (main file) crossed with every published
    system-prompt extraction attack (input ``attacks``: kind -> list of user turns). Extracting the
    prompt leaks its secret, which the ``leak`` scorer detects; one attack is one cluster."""
    (document,) = records
    (attacks,) = inputs["attacks"]
    out: Records = []
    for scenario in document["scenarios"]:
        if scenario["kind"] != "secret":
            continue
        for kind, texts in sorted(attacks.items()):
            for n, text in enumerate(texts, start=1):
                out.append(_extraction_item(scenario, f"{kind}.{n}", text))
    return out


def _extraction_item(scenario: Mapping[str, Any], attack: str, text: str) -> dict[str, Any]:
    return {"id": f"{scenario['id']}.{attack}", "system": scenario["system"].strip(), "user": text,
            "guard": {"secrets": list(scenario.get("secrets", [])), "forbidden_patterns": []},
            "scenario": scenario["id"], "attempt": attack, "cluster": f"sysprompt-attack:{attack}"}


BUILDERS: Mapping[str, Callable[[Records, Inputs], Records]] = MappingProxyType(
    {
        "hierarchy_product": hierarchy_product,
        "donotanswer": donotanswer,
        "donotanswer_chatbot": donotanswer_chatbot,
        "harmbench": harmbench,
        "jailbreak_wrap": jailbreak_wrap,
        "tense_rephrasings": tense_rephrasings,
        "sysprompt_extraction": sysprompt_extraction,
    }
)
