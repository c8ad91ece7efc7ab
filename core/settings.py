"""Service settings, read from the environment with the ``LIBRA_`` prefix.

Every field is documented in the README's settings table; keep the two in step.
"""

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIBRA_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="Postgres URL. Unset: the CLI starts an embedded Postgres in LIBRA_HOME.",
    )
    database_connect_timeout_s: int = Field(
        default=2, ge=2, le=60, description="Seconds a new database connection may take; past it the request "
                                           "answers 503 (database_unavailable) instead of hanging.",
    )
    home: Path = Field(default=Path(".libra"), description="Data folder (embedded Postgres, logs).")
    host: str = Field(default="127.0.0.1", description="Address `libra serve` listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `libra serve` listens on.")
    web_workers: int = Field(
        default=1, ge=1, le=64, description="API processes `libra serve` runs on its one port (above 1: the job "
                                            "worker runs as a process of its own).",
    )
    max_prompt_chars: int = Field(default=8000, ge=1, description="Longest arena prompt accepted (413 above).")
    battle_max_tokens: int = Field(default=200, ge=1, le=4096, description="Token cap per arena answer.")
    battle_timeout_s: float = Field(default=120.0, gt=0, description="Time limit for one arena answer.")
    stale_battle_minutes: int = Field(default=10, ge=1, description="Housekeeping fails battles stuck this long.")
    # The arena in full (docs/arena.md)
    arena_max_turns: int = Field(default=3, ge=1, le=20, description="Prompts one battle may hold before the vote.")
    arena_vote_window_minutes: int = Field(
        default=60, ge=1, description="A battle not voted on this long after its last answer expires (409 on vote)."
    )
    arena_pairing: Literal["active", "uniform"] = Field(
        default="active", description="How pairs are drawn: active (where a vote teaches the ranking most) or uniform."
    )
    arena_new_model_votes: int = Field(
        default=30, ge=0, description="A model with fewer counted votes than this is boosted in pair draws."
    )
    arena_new_model_boost: float = Field(default=3.0, ge=1, description="Draw weight factor of a new model.")
    arena_failures_to_pause: int = Field(
        default=3, ge=1, description="Arena answers failed in a row before a model is paused from pairing."
    )
    arena_votes_per_session_hour: int = Field(default=120, ge=0, description="Votes one session may cast per hour "
                                              "(0: no cap).")
    arena_votes_per_address_hour: int = Field(default=600, ge=0, description="Votes one address may cast per hour "
                                              "(0: no cap).")
    arena_read_words_per_s: float = Field(
        default=15.0, gt=0, description="Reading speed: a vote sooner than the answers' words allow is held for review."
    )
    arena_one_sided_votes: int = Field(
        default=12, ge=2, description="Votes of one session after which voting always for one model is held for review."
    )
    arena_burst_votes: int = Field(
        default=60, ge=2, description="Votes from one address range (/24, /48) in the burst window before review."
    )
    arena_burst_window_s: int = Field(default=300, ge=1, description="Window of the burst rule.")
    arena_streams_per_client: int = Field(
        default=8, ge=0, le=10_000, description="Battle streams one client may hold open at once in one API process "
                                                "(an address: rate_address_factor times that; 0: no cap).")
    arena_voter_salt: SecretStr | None = Field(
        default=None, description="Salt of the voter hashes. Unset: generated once into LIBRA_HOME/voter.salt "
                                  "(set it when API processes run on several hosts).",
    )
    housekeeping_cron: str = Field(
        default="*/5 * * * *", description="Cron of the housekeeping job (a 6th field is seconds)."
    )
    eval_suite: str = Field(default="default", description="Suite that submissions and re-evaluations run.")
    eval_cron: str = Field(default="0 3 * * 1", description="Cron of the periodic re-evaluation of every model.")
    eval_items_per_task: int = Field(default=100, ge=1, description="Public items sampled per task each cycle.")
    eval_held_out_per_task: int = Field(default=10, ge=0, description="Held-out items sampled per task each cycle.")
    eval_batch_size: int = Field(default=16, ge=1, le=1024, description="Conversations per batched generate call.")
    eval_max_tokens: int = Field(default=256, ge=1, le=32_768, description="Token cap per evaluation answer.")
    eval_batch_timeout_s: float = Field(default=900.0, gt=0, description="Time limit for one generation batch.")
    eval_submitted_budget_s: float = Field(
        default=7200.0, ge=0, description="Wall time a submitted endpoint may take to answer one evaluation "
                                          "run's items (0: no limit); past it the run fails, keeping the items it "
                                          "finished.",
    )
    eval_seed: int = Field(default=0, ge=0, description="Run seed: sampling seed and attack transforms.")
    eval_judge: str | None = Field(default=None, description="Slug of a registered model used as refusal judge.")
    eval_min_items_per_category: int = Field(
        default=5, ge=1, description="Scored items a model needs in every category before it is ranked "
                                     "(below: shown, not ranked).",
    )
    eval_private_dir: Path | None = Field(
        default=None, description="A maintainer's private folder of held-out items (never in the repository; "
                                  "docs/evaluation.md). Unset and no secret seed: no private held-out set.",
    )
    eval_heldout_secret: SecretStr | None = Field(
        default=None, description="Secret seed that derives each cycle's held-out items from the public data. "
                                  "Unset and no private folder: no private held-out set.",
    )
    eval_stalled_after_s: float = Field(
        default=60.0, gt=10, description="A run job whose worker sent no heartbeat this long is retried."
    )
    eval_recover_cron: str = Field(default="* * * * *", description="Cron of the stalled-run recovery job.")
    worker_concurrency: int = Field(default=1, ge=1, description="Evaluations one worker runs at once.")
    max_engines: int = Field(
        default=8, ge=1, le=256, description="GPU/transformers engines kept loaded; the least recently used goes."
    )
    stop_timeout_s: float = Field(
        default=10.0, ge=1, le=600, description="Ctrl-C/SIGTERM: seconds before running jobs are cut off."
    )
    seed_defaults: bool = Field(default=True, description="Register the embedded default contestants at start.")
    first_run_evaluations: bool = Field(
        default=True, description="First start with no evaluation run yet: queue a preview, then a full run, "
                                  "of each default contestant.",
    )
    first_run_items_per_task: int = Field(
        default=1, ge=1, le=100, description="Public items per task of the first start's preview runs (topped up "
                                             "to LIBRA_EVAL_MIN_ITEMS_PER_CATEGORY per category).",
    )
    leaderboard_cron: str = Field(default="*/10 * * * *", description="Cron of the leaderboard snapshot job.")
    leaderboard_bootstrap_rounds: int = Field(default=1000, ge=50, le=20000, description="Bootstrap rounds.")
    leaderboard_seed: int = Field(default=0, ge=0, description="Seed of the snapshot's random generator.")
    leaderboard_missing: Literal["unranked", "partial"] = Field(
        default="unranked", description="What a model missing a required category becomes."
    )
    leaderboard_min_votes: int = Field(
        default=30, ge=0, description="Arena votes a model needs before its rating is no longer provisional.",
    )
    leaderboard_anchor: str | None = Field(
        default=None, description="Slug of the model whose arena rating is fixed at 1000; blending needs one.",
    )
    arena_blend_capability: float = Field(default=0.0, ge=0, le=1, description="Weight of helpfulness votes in c.")
    arena_blend_safety: float = Field(default=0.0, ge=0, le=1, description="Weight of safety votes in s.")
    secret_key: SecretStr | None = Field(
        default=None, description="Fernet key that encrypts endpoint API keys at rest. Unset: one is generated "
                                  "once into LIBRA_HOME/secret.key (mode 0600).",
    )
    allow_http_endpoints: bool = Field(
        default=False, description="Let submitters register plain-http endpoints (https only when false).",
    )
    auto_approve: bool = Field(
        default=False, description="A submitted model enters the arena when its first evaluation finishes, "
                                   "without an admin's approval.",
    )
    egress_allow: str = Field(
        default="", description="Comma-separated CIDRs that submitted endpoints may reach although private "
                                "(e.g. your own vLLM servers).",
    )
    log_level: str = Field(default="INFO", description="Log level: DEBUG, INFO, WARNING, ERROR.")
    log_json: bool = Field(default=False, description="Write logs as JSON lines instead of text.")
    # Keys, limits and headers (docs/security.md)
    quota_models_per_day: int = Field(default=5, ge=0, description="Models one key may submit per UTC day.")
    quota_evals_in_flight: int = Field(
        default=3, ge=0, description="Queued or running evaluations of one key's models before submits get 429."
    )
    rate_window_s: int = Field(default=600, ge=1, le=86_400, description="Window of the per-client rate limits.")
    rate_battles: int = Field(default=30, ge=0, description="Battles one client may start per window.")
    rate_votes: int = Field(default=60, ge=0, description="Votes one client may cast per window.")
    rate_address_factor: int = Field(
        default=4, ge=1, description="One address (many clients behind a NAT) may do this many times a client's limit."
    )
    rate_requests_per_s: float = Field(
        default=30.0, ge=0, description="Requests per second one address may make to one API process, any path but "
                                        "/api/v1/healthz and /metrics, after its burst (0: no limit).")
    rate_requests_burst: int = Field(default=300, ge=1, description="Requests one address may make at once.")
    session_secret: SecretStr | None = Field(
        default=None, description="HMAC key of the anonymous session cookie. Unset: generated once into "
                                  "LIBRA_HOME/session.key (set it when API processes run on several hosts).",
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token that /metrics requires. Unset: /metrics answers only to direct "
                                  "clients on a loopback or private address.",
    )
    trusted_proxies: str = Field(
        default="", description="Comma-separated proxy addresses/networks whose X-Forwarded-For is believed."
    )
    max_body_bytes: int = Field(default=65536, ge=1024, description="Largest request body (413 above it).")
    cors_origins: str = Field(default="", description="Comma-separated origins allowed by CORS (unset: none).")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(f"{part!r} is not an address or network") from None
        return value
