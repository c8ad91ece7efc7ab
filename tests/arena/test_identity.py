"""The identity rules alone: self-identification counts, a mention does not."""

import pytest

from arena.identity import find_leak, rules_for

SMOL = rules_for("smollm2-135m", "SmolLM2 135M Instruct", "Hugging Face (prompt by Libra Arena)")
GEMMA = rules_for("gemma3-270m-qa", "Gemma 3 270M (base, Q/A prompt)", "Google")
PLAIN = rules_for("one", "one", "t")


@pytest.mark.parametrize(
    ("rules", "text"),
    [
        (SMOL, "Hi! I'm SmolLM, trained by Hugging Face"),
        (SMOL, "I am a small language model developed by Hugging Face."),
        (SMOL, "SmolLM2 here! How can I help?"),
        (SMOL, "As SmolLM, I cannot help with that."),
        (SMOL, "my name is smollm2"),
        (SMOL, "I am ChatGPT, a large language model trained by OpenAI."),  # any name, generic claim
        (GEMMA, "I'm Gemma, an open model from Google DeepMind."),
        (GEMMA, "I was trained by Google."),
        (GEMMA, "My creators at Google DeepMind built me."),
    ],
)
def test_self_identification_is_a_leak(rules, text: str) -> None:
    leak = find_leak(text, rules)
    assert leak is not None and leak.matched in text


@pytest.mark.parametrize(
    ("rules", "text"),
    [
        (SMOL, "Gemma is a model family; I'm not sure, but Gemma was trained by Google."),
        (SMOL, "The SmolLM family was made by Hugging Face."),  # third person: a topic, not a claim
        (SMOL, "Plants make food by photosynthesis. I am happy to help."),
        (GEMMA, "Hi! I'm SmolLM, a model by Hugging Face"),  # the other family's name, no generic claim
        (GEMMA, "Gemmas are precious stones."),
        (PLAIN, "I'm one of many assistants, and I am glad to help."),  # a plain-word name never matches
    ],
)
def test_a_mention_is_not_a_leak(rules, text: str) -> None:
    assert find_leak(text, rules) is None
