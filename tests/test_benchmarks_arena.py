"""The arena benchmark's pure parts: the pairing simulation at a tiny size and the shape of its targets.
No timings are asserted (the figures come from `python -m benchmarks.arena`)."""

import asyncio
import json
import os

import httpx
import numpy as np

from benchmarks import arena, arena_draw, arena_pairing, backend_clients

TINY = arena_pairing.SimPlan(models=4, repeats=1, refresh=200, max_votes=40_000)


def test_vote_information_is_largest_for_even_pairs() -> None:
    ratings = np.array([1000.0, 1000.0, 1400.0])
    info = arena_pairing.vote_information(ratings, 0.5, np.array([0, 0]), np.array([1, 2]))
    assert info[0] > info[1] > 0


def test_active_pairs_go_to_the_most_uncertain_model() -> None:
    covariance = np.diag([100.0, 100.0, 100.0, 2500.0])
    a, b = arena_pairing.active_pairs(covariance, np.full(4, 1000.0), 0.5, 6)
    assert a.shape == b.shape == (6,) and np.all(a != b)
    assert np.sum((a == 3) | (b == 3)) >= 4  # most of the first votes involve the wide model


def test_pairing_simulation_reaches_the_width_and_records_its_seeds() -> None:
    result = arena_pairing.pairing_efficiency(TINY, seed=7)
    run = result["runs"][0]
    assert run["seed"] == [7, 5, 0]
    assert run["uniform_votes"] and run["active_votes"]
    assert run["uniform_votes"] % TINY.refresh == 0
    assert result["active_over_uniform_total_votes"] == run["active_votes"] / run["uniform_votes"]
    assert arena_pairing.pairing_efficiency(TINY, seed=7)["runs"] == result["runs"]  # replayable from the seed


def test_targets_merge_the_parts_with_value_goal_and_met() -> None:
    phase = {"req_per_s": 100.0, "p99_ms": 10.0}
    http = {"healthz": {"req_per_s": 1000.0, "p99_ms": 1.0}, "vote": phase, "battle_create": phase,
            "votes_audit": {"lost": 0, "duplicated": 1}, "retried_votes_same_key": {"sent": 4, "same_answer_200": 4}}
    parts = {"pairing": {"targets": {"pairing_active_over_uniform_votes": {"value": 0.5, "goal": "<= 0.6",
                                                                           "met": True}}},
             "stream": {"targets": {"lost_votes": {"value": 9, "goal": "x", "met": False}}}}
    found = arena.targets(http, parts)
    json.dumps(found)
    assert all({"value", "goal", "met"} <= set(t) for t in found.values())
    assert found["vote_over_healthz_rps"] == {"value": 0.1, "goal": ">= 0.25", "met": False}
    assert found["vote_p99_ms"]["met"] and found["pairing_active_over_uniform_votes"]["met"]
    assert found["lost_votes"]["met"] and not found["duplicated_votes"]["met"]
    assert found["retried_votes_same_answer"]["met"]
    assert found["stream_lost_votes"]["value"] == 9  # a part's name never overwrites another target


def test_the_battle_target_names_the_ceiling_that_the_two_backend_calls_leave() -> None:
    phase = {"req_per_s": 100.0, "p99_ms": 10.0}
    http = {"healthz": {"req_per_s": 1000.0, "p99_ms": 1.0}, "vote": phase, "battle_create": phase,
            "votes_audit": {"lost": 0, "duplicated": 0}}
    assert "note" not in arena.targets(http, {})["battle_create_over_healthz_rps"]
    http["battle_ceiling"] = {"over_healthz_rps": 0.091}
    found = arena.targets(http, {})["battle_create_over_healthz_rps"]
    assert found["value"] == 0.1 and not found["met"] and "at most 0.091" in found["note"]


def test_the_ceiling_times_real_streamed_calls_through_the_services_backend_pool() -> None:
    """Two stub endpoints, two battles at a time: every call must stream to its end (a failed call raises),
    and the CPU per battle is a positive figure (no time is asserted)."""
    stubs = [arena.start_stub(), arena.start_stub()]
    try:
        ms = asyncio.run(backend_clients.battle_calls_cpu_ms([url for _, url in stubs], callers=2, battles=6,
                                                             rounds=1))
        ceiling = arena.battle_ceiling([url for _, url in stubs], healthz_per_s=1000.0)
    finally:
        for process, _ in stubs:
            process.kill()
            process.join()
    assert ms > 0 and ceiling["two_backend_calls_cpu_ms"] > 0
    assert ceiling["over_healthz_rps"] == round(1000 / ceiling["two_backend_calls_cpu_ms"] / 1000.0, 4)


def test_the_draw_part_compares_the_largest_arena_with_the_smallest_against_linear_growth() -> None:
    row = {"pairs_scored": 1, "scores_version": 1, "cold_draw_wall_ms": 9.0, "cold_draw_cpu_ms": 9.0}
    found = arena_draw.report({8: {**row, "record_bytes": 200, "draw_wall_ms": 1.0, "draw_cpu_ms": 1.0},
                               100: {**row, "record_bytes": 3000, "draw_wall_ms": 5.0, "draw_cpu_ms": 2.0}})
    json.dumps(found)
    assert found["targets"]["draw_cpu_100_vs_8_models"] == {"value": 2.0, "goal": "<= 12.5 (linear in models)",
                                                            "met": True}
    assert found["targets"]["draw_record_bytes_100_vs_8_models"]["value"] == 15.0
    assert not found["targets"]["draw_record_bytes_100_vs_8_models"]["met"]  # 3000 bytes: faster than linear
    assert "cold_draw_cpu_ms" in found["baseline"]["by_models"]["100"]
    assert "cold_draw_cpu_ms" not in found["figures"]["by_models"]["100"]


def test_visitors_come_through_the_local_proxy_each_from_an_address_range_of_its_own() -> None:
    ranges = {arena.visitor_address(n).rsplit(".", 1)[0] for n in range(5000)}
    assert len(ranges) == 5000  # the burst rule (per /24) never sees two visitors as one range
    visitors = arena.server_env("postgresql://x/y", "/tmp/h", visitors=True)
    assert visitors["LIBRA_TRUSTED_PROXIES"] == "127.0.0.1/32"
    assert not any(name.startswith(("LIBRA_RATE_", "LIBRA_ARENA_")) for name in visitors
                   if name not in os.environ)  # the service's defaults
    one = arena.server_env("postgresql://x/y", "/tmp/h")
    assert one["LIBRA_ARENA_VOTES_PER_ADDRESS_HOUR"] == "0" and "LIBRA_TRUSTED_PROXIES" not in one
    assert arena.plan(True).visitors and not arena.plan(True, visitors=False).visitors
    assert arena.plan(True).own_endpoints and not arena.plan(False, own_endpoints=False).own_endpoints


def test_the_stub_streams_an_answer_of_the_asked_length_a_word_per_chunk() -> None:
    """`--answer-words N`: the stub's answer has N words, each in a chunk of its own, with the markdown the
    style features count; the default stays the 3-word answer earlier runs used."""
    assert arena.answer_words(3) == arena.SHORT_ANSWER
    process, url = arena.start_stub(120)
    try:
        body = {"model": "stub-0", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        response = httpx.post(f"{url}/chat/completions", json=body, timeout=10)
    finally:
        process.kill()
        process.join()
    events = [json.loads(line[6:]) for line in response.text.splitlines()
              if line.startswith("data: ") and line != "data: [DONE]"]
    pieces = [e["choices"][0]["delta"]["content"] for e in events if e["choices"] and e["choices"][0]["delta"]]
    assert len(pieces) == 120 and events[-1]["usage"]["completion_tokens"] == 120
    text = "".join(pieces)
    assert len(text.split()) == 120 and text == "".join(arena.answer_words(120))
    assert "## Photosynthesis" in text and "\n- " in text and "**Chlorophyll**" in text
