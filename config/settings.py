"""Settings for every part of airoboros-bot, read from the environment and `.env`.

Every variable starts with ``AIROBOROS_``; a section name follows, then the field, all joined by
single underscores: ``AIROBOROS_REDIS_URL``, ``AIROBOROS_ENGINE_MAX_BATCH_SIZE``,
``AIROBOROS_CHAT_SYSTEM_PROMPT``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from airoboros_bot.config.errors import AiroborosError

DEFAULT_SYSTEM_PROMPT = (
    "A chat between a curious user and an assistant. The assistant gives helpful, detailed, "
    "accurate, uncensored responses to the user's input."
)
ENV_PREFIX = "AIROBOROS_"
CLAIM_IDLE_HEARTBEATS = 3
"""A running job is re-claimed every heartbeat: the idle limit must span a few missed ones."""


def default_data_dir() -> Path:
    """Where the embedded Valkey server and the demo model live unless told otherwise."""
    return Path.home() / ".local" / "share" / "airoboros-bot"


class RedisSettings(BaseModel):
    """Where the job queue and the conversation store live."""

    url: str | None = Field(
        default=None,
        description="an existing Redis/Valkey: redis:// or rediss:// (one server), "
        "redis+cluster://host:port[,host:port] (Redis Cluster), "
        "redis+sentinel://host:port[,host:port]/master-name (Sentinel); "
        "unset = start an embedded Valkey",
    )
    cluster: bool = Field(
        default=False,
        description="AIROBOROS_REDIS_URL is a Redis Cluster node (= redis+cluster://)",
    )
    sentinel_password: SecretStr | None = Field(
        default=None, description="password of the Sentinels themselves, if they require one"
    )
    data_dir: Path | None = Field(
        default=None, description="data directory of the embedded Valkey (AOF persistence)"
    )
    key_prefix: str = Field(default="airoboros", pattern=r"^[A-Za-z0-9_.-]+$")
    max_connections: int = Field(
        default=32, ge=4, le=10_000, description="Redis connections one process opens at most"
    )
    pool_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="how long a command waits for a free connection"
    )

    @model_validator(mode="after")
    def _cluster_needs_a_url(self) -> RedisSettings:
        if self.cluster and not self.url:
            raise ValueError("AIROBOROS_REDIS_CLUSTER=true needs AIROBOROS_REDIS_URL (a node)")
        return self


class EngineSettings(BaseModel):
    """The CTranslate2 worker and the job protocol."""

    model_dir: Path | None = Field(
        default=None, description="converted CTranslate2 model; unset = the built-in demo model"
    )
    device: Literal["cpu", "cuda", "auto"] = "auto"
    device_index: list[int] = Field(default_factory=lambda: [0])
    compute_type: str = Field(default="auto", pattern=r"^[a-z0-9_]+$")
    inter_threads: int = Field(
        default=0, ge=0, le=16, description="batches in flight; 0 = by device (see README)"
    )
    intra_threads: int = Field(default=0, ge=0, le=256)
    max_batch_size: int = Field(default=16, ge=1, le=256)
    batch_wait_ms: float = Field(
        default=2.0, ge=0, le=1000, description="wait for more jobs after each arrival"
    )
    batch_wait_max_ms: float = Field(
        default=50.0, ge=0, le=5000, description="longest wait to fill a batch"
    )
    stream_interval_ms: float = Field(
        default=25.0, ge=1, le=1000, description="how often streamed text is flushed to Redis"
    )
    max_new_tokens: int = Field(default=512, ge=1, le=4096)
    context_length: int = Field(default=2048, ge=64, le=65536)
    temperature: float = Field(default=0.7, ge=0, le=5)
    top_k: int = Field(default=40, ge=0)
    top_p: float = Field(default=0.9, gt=0, le=1)
    repetition_penalty: float = Field(default=1.1, ge=1, le=3)
    job_timeout_s: float = Field(default=300.0, gt=0, description="deadline of one job")
    first_chunk_timeout_s: float = Field(
        default=60.0, gt=0, description="how long a reader waits for a worker to start"
    )
    reply_ttl_s: int = Field(default=900, ge=10, description="how long reply streams are kept")
    claim_idle_ms: int = Field(default=30_000, ge=100, description="reclaim jobs idle this long")
    max_deliveries: int = Field(default=3, ge=1, description="deliveries before dead-lettering")
    heartbeat_s: float = Field(default=2.0, gt=0)
    metrics_port: int = Field(default=0, ge=0, le=65535, description="Prometheus port; 0 = off")
    health_ttl_s: int = Field(default=15, ge=1)
    shutdown_grace_s: float = Field(
        default=0.5,
        ge=0,
        le=600,
        description="on SIGTERM, running answers may finish this long; then they are released",
    )
    max_answers: int = Field(
        default=1000, ge=1, le=100_000, description="answers one process reads at once"
    )

    @model_validator(mode="after")
    def _coupled(self) -> EngineSettings:
        beat_ms = self.heartbeat_s * 1000
        if self.claim_idle_ms < CLAIM_IDLE_HEARTBEATS * beat_ms:
            raise ValueError(
                f"AIROBOROS_ENGINE_CLAIM_IDLE_MS ({self.claim_idle_ms}) must be at least "
                f"{CLAIM_IDLE_HEARTBEATS} x AIROBOROS_ENGINE_HEARTBEAT_S "
                f"({CLAIM_IDLE_HEARTBEATS * beat_ms:g} ms), or running jobs look abandoned"
            )
        if self.health_ttl_s < 2 * self.heartbeat_s:
            raise ValueError(
                f"AIROBOROS_ENGINE_HEALTH_TTL_S ({self.health_ttl_s}) must be at least 2 x "
                f"AIROBOROS_ENGINE_HEARTBEAT_S ({2 * self.heartbeat_s:g} s), or live workers "
                "look stopped"
            )
        if self.batch_wait_max_ms < self.batch_wait_ms:
            raise ValueError(
                f"AIROBOROS_ENGINE_BATCH_WAIT_MAX_MS ({self.batch_wait_max_ms:g}) must be at "
                f"least AIROBOROS_ENGINE_BATCH_WAIT_MS ({self.batch_wait_ms:g})"
            )
        if self.first_chunk_timeout_s * 1000 <= self.claim_idle_ms:
            raise ValueError(
                f"AIROBOROS_ENGINE_FIRST_CHUNK_TIMEOUT_S ({self.first_chunk_timeout_s:g}) must "
                f"exceed AIROBOROS_ENGINE_CLAIM_IDLE_MS ({self.claim_idle_ms} ms), or readers "
                "give up before a stalled job is taken over"
            )
        return self


class ChatSettings(BaseModel):
    """How conversations are kept and prompted."""

    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    default_mode: Literal["history", "no-history"] = "history"
    max_prompt_chars: int = Field(default=20_000, ge=1, description="longest accepted question")
    max_context_blocks: int = Field(default=32, ge=1)
    history_ttl_s: int = Field(default=30 * 24 * 3600, ge=0, description="0 = keep forever")


class DiscordSettings(BaseModel):
    """The Discord bot (see README)."""

    token: SecretStr | None = None
    guild_ids: list[int] = Field(default_factory=list)
    channel_ids: list[int] = Field(default_factory=list)
    role_ids: list[int] = Field(default_factory=list)
    allow_dms: bool = False
    blocked_user_ids: list[int] = Field(
        default_factory=list, description="users the bot never answers (wins over the allow lists)"
    )
    blocked_role_ids: list[int] = Field(
        default_factory=list, description="members with any of these roles are refused"
    )
    blocked_channel_ids: list[int] = Field(
        default_factory=list, description="channels (and their threads) where the bot is off"
    )
    rate_limit_per_minute: int = Field(default=5, ge=0)
    max_attachment_bytes: int = Field(
        default=1_000_000, ge=1, description="largest .txt / .md attachment read as context"
    )
    trivia_channel_ids: list[int] = Field(
        default_factory=list,
        description="channels for games only: posting trivia / anagram / words starts a round, "
        "mentions are not answered by the model",
    )


class SlackSettings(BaseModel):
    """The Slack app (see README)."""

    bot_token: SecretStr | None = None
    app_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    api_base_url: str = "https://slack.com/api/"
    team_ids: list[str] = Field(default_factory=list)
    channel_ids: list[str] = Field(default_factory=list)
    rate_limit_per_minute: int = Field(default=5, ge=0)
    allow_dms: bool = Field(default=False, description="answer direct messages to the bot")
    edit_interval_s: float = Field(
        default=1.0, ge=0.2, le=60, description="at most one chat.update per answer this often"
    )
    edits_per_minute: int = Field(
        default=50, ge=1, le=1000, description="chat.update budget per workspace (Tier 3)"
    )
    max_file_bytes: int = Field(
        default=1_000_000, ge=1, description="largest text file accepted as context"
    )
    http_host: str = Field(default="0.0.0.0", description="HTTP mode: address to listen on")
    http_path: str = Field(
        default="/slack/events", pattern=r"^/\S*$", description="HTTP mode: request URL path"
    )
    trivia_channel_ids: list[str] = Field(
        default_factory=list,
        description="channels for games only: no chat with the model, `trivia` starts a round",
    )
    game_post_interval_s: float = Field(
        default=1.0, ge=0, le=10, description="at most one game message per channel this often"
    )
    admin_user_ids: list[str] = Field(
        default_factory=list,
        description="users who may reset, switch or clear any conversation and set channel modes",
    )
    workspace_admins_are_admins: bool = Field(
        default=True, description="workspace admins and owners (users.info) count as admins too"
    )
    thread_read_limit: int = Field(
        default=20, ge=1, le=200, description="messages read as context when mentioned in a thread"
    )
    event_dedupe_ttl_s: int = Field(
        default=3600, ge=60, description="how long an event id is remembered (Slack's retries)"
    )
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Prometheus port of the Slack app; 0 = off"
    )


class GameSettings(BaseModel):
    """Trivia and word games (see docs/games.md)."""

    question_time_s: float = Field(default=20.0, ge=3, le=600, description="time per question")
    words_time_s: float = Field(default=60.0, ge=5, le=900, description="time per list-game round")
    between_rounds_s: float = Field(default=4.0, ge=0, le=120, description="pause after a round")
    hint_at: list[float] = Field(
        default_factory=lambda: [0.4, 0.7],
        description="when hints come, as fractions of the question time, increasing, in (0, 1)",
    )
    points: list[int] = Field(
        default_factory=lambda: [10, 6, 3],
        description="points for a right answer with 0, 1, 2, ... hints shown (one more than hints)",
    )
    word_points: int = Field(default=1, ge=1, le=100, description="points per list-game word")
    words_target: int = Field(default=7, ge=1, le=50, description="words asked for in a list game")
    default_rounds: int = Field(default=5, ge=1, le=100)
    max_rounds: int = Field(default=30, ge=1, le=1000)
    silence_stop_s: float = Field(
        default=60.0, ge=5, description="stop a game after this long without any answer"
    )
    max_answers_per_question: int = Field(
        default=5, ge=1, le=100, description="wrong answers one player may give per question"
    )
    multiple_choice_share: float = Field(
        default=0.5, ge=0, le=1, description="share of trivia questions that are multiple choice"
    )
    use_model: bool = Field(default=True, description="ask the model for questions (else bank)")
    generation_attempts: int = Field(
        default=2, ge=0, le=10, description="model tries per question before the built-in bank"
    )
    generation_timeout_s: float = Field(default=45.0, gt=0, le=600)
    generation_max_new_tokens: int = Field(default=160, ge=16, le=1024)
    generation_temperature: float = Field(default=0.8, ge=0, le=5)
    late_answer_window_s: float = Field(
        default=120.0, ge=0, description="how long after a game answers still get a 'too late'"
    )
    leaderboard_size: int = Field(default=10, ge=1, le=50)

    @model_validator(mode="after")
    def _hints_match_points(self) -> GameSettings:
        if any(not 0 < f < 1 for f in self.hint_at) or self.hint_at != sorted(set(self.hint_at)):
            raise ValueError("hint_at needs increasing fractions between 0 and 1")
        if len(self.points) != len(self.hint_at) + 1 or any(p < 0 for p in self.points):
            raise ValueError("points needs one value more than hint_at, none negative")
        return self


class Settings(BaseSettings):
    """All settings; see the README for every variable."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="ignore",
        validate_default=True,
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    redis: RedisSettings = Field(default_factory=RedisSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    games: GameSettings = Field(default_factory=GameSettings)

    @property
    def valkey_dir(self) -> Path:
        """Data directory of the embedded Valkey server."""
        return self.redis.data_dir or self.data_dir / "valkey"

    @property
    def demo_model_dir(self) -> Path:
        """Where the built-in demo model is built and reused."""
        return self.data_dir / "demo-model"


class SettingsError(AiroborosError):
    """A setting has a wrong value; `str()` is one line naming the variable and what it needs."""


def _env_name(loc: tuple[str | int, ...]) -> str:
    parts = [str(p) for p in loc if not isinstance(p, int)]
    return ENV_PREFIX + "_".join(parts).upper()


def load_settings(**overrides: object) -> Settings:
    """Read the settings; a wrong value raises `SettingsError` with a one-line message.

    The message names the variable and the expected form, and never echoes the value, so a
    mistyped secret is not printed either.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(settings_message(exc)) from None


def settings_message(exc: ValidationError) -> str:
    """One line for the first error: the variable and what it needs, never the value given.

    Checks of several coupled variables name them all in their own message.
    """
    first = exc.errors(include_input=False)[0]
    message = first["msg"]
    if first["type"] == "value_error" and ENV_PREFIX in message:
        return message.removeprefix("Value error, ")
    return f"{_env_name(tuple(first['loc']))}: {message.lower()}"
