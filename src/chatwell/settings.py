"""The one place chatwell is configured: environment (``CHATWELL_*``), ``.env`` or CLI flags.

Every field carries its help text; the docs' configuration page is generated from them
(``scripts/docs_hooks.py``) and ``tests/test_docs.py`` checks it lists each one.
Nothing here reads the environment at import time: build ``Settings()`` where you need it.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "admin", "password"}
# A list from the environment: comma-separated (`a,b`) or a JSON list (`["a", "b"]`).
TextList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Server settings. Environment variables use the prefix ``CHATWELL_`` (e.g. ``CHATWELL_DATA_DIR``)."""

    model_config = SettingsConfigDict(env_prefix="CHATWELL_", env_file=None, extra="ignore")

    environment: Literal["development", "production"] = Field(
        "development",
        description="`production` refuses placeholder secrets such as `changeme`.",
    )
    data_dir: Path = Field(
        Path("./chatwell-data"),
        description="Folder for the SQLite database, uploaded files and caches.",
    )
    database_url: str | None = Field(
        None,
        description=(
            "SQLAlchemy async URL. Default: SQLite file `chatwell.db` in the data dir. "
            "PostgreSQL: `postgresql+asyncpg://user:pass@host/db` (needs the pgvector extension)."
        ),
    )
    sqlite_busy_timeout_ms: int = Field(
        15_000,
        ge=0,
        description="How long a SQLite write waits for another process's lock before the request gets "
        "503 `database_busy` (Retry-After; nothing half-written). A chat answer already streamed is "
        "saved with retries.",
    )
    auto_migrate: bool = Field(
        True, description="Apply pending database migrations when the server starts."
    )
    admin_key: SecretStr | None = Field(
        None,
        description=(
            "Secret of the default workspace's owner key. Without it the first start creates a "
            "key and prints it once."
        ),
    )
    max_request_bytes: int = Field(
        1_048_576,
        description="Largest accepted request body for JSON endpoints, in bytes (413 above).",
    )
    max_upload_bytes: int = Field(
        20_971_520, description="Largest accepted file upload (multipart), in bytes (413 above)."
    )
    crawl_allow_private: bool = Field(
        False,
        description=(
            "Let URL sources reach loopback and private addresses (intranet use). Off: such URLs "
            "are refused. Cloud metadata addresses are refused always."
        ),
    )
    mcp_enabled: bool = Field(
        True,
        description=(
            "Serve the MCP server (streamable HTTP) at /mcp for every key, and name it as mcp_url in "
            "the ChatbotIQ bot config. Off: /mcp answers 404 and mcp_url is null."
        ),
    )
    webhook_allow_private: bool = Field(
        False,
        description=(
            "Let bot webhooks reach loopback and private addresses (intranet receivers). Off: such "
            "deliveries fail without being sent. Cloud metadata addresses are refused always."
        ),
    )
    smtp_host: str | None = Field(
        None,
        description=(
            "SMTP server for email notifications (new leads, a visitor asking for a person while "
            "nobody is online, missed handoffs; recipients are set per bot in Settings). Unset: "
            "no email is sent."
        ),
    )
    smtp_port: int = Field(587, ge=1, le=65535, description="Port of `smtp_host`.")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        "starttls",
        description="`starttls` (upgrade a plain connection, port 587), `tls` (TLS from the "
        "start, port 465) or `none` (a local relay only).",
    )
    smtp_username: str | None = Field(None, description="SMTP login; unset: no login.")
    smtp_password: SecretStr | None = Field(
        None, description="SMTP password for `smtp_username` (never logged)."
    )
    smtp_from: str = Field(
        "chatwell@localhost", description="The From address of notification emails."
    )
    public_url: str | None = Field(
        None,
        description="Where people reach this server (e.g. `https://chat.example.com`): links in "
        "notification emails point there. Unset: emails name the dashboard page without a link.",
    )
    queue: Literal["inprocess", "procrastinate"] = Field(
        "inprocess",
        description="Who ingests sources: `inprocess` (a worker inside each server process) or "
        "`procrastinate` (a job queue on the same PostgreSQL; run `chatwell worker` processes).",
    )
    ingestion_concurrency: int = Field(
        16,
        ge=1,
        le=64,
        description="Sources the in-process ingestion worker processes at once (more waiting sources fill "
        "the embedder's batches: 0.81 of the bare model's speed at 16, 0.72 at 4).",
    )
    ingestion_lease_seconds: int = Field(
        120,
        ge=5,
        description="A source whose worker stopped reporting for this long is taken up again.",
    )
    ingestion_max_text_chars: int = Field(
        10_000_000,
        ge=1_000,
        description="Most text one source may hold once read (about 2,500 pages); more fails the source "
        "with `source_too_large`. Files expand: a 10 MB DOCX can hold 185 MiB of text.",
    )
    ingestion_max_chunks: int = Field(
        10_000,
        ge=1,
        description="Most chunks one source may make (each is embedded and stored); more fails the source "
        "with `source_too_large`.",
    )
    ingestion_memory_mb: int = Field(
        1024,
        ge=128,
        description="Address space of the process that reads one file (DOCX, PDF, text over 256 KiB), in MiB; "
        "a file that needs more fails with `source_too_large` and the server's own memory stays as it was.",
    )
    ingestion_cpu_seconds: int = Field(
        120,
        ge=1,
        description="CPU time the process that reads one file may use; more fails the source with "
        "`extraction_timeout`.",
    )
    ingestion_timeout_seconds: float = Field(
        300.0,
        gt=0,
        description="Wall-clock time reading one file may take before its process is killed and the source "
        "fails with `extraction_timeout`. Deleting or re-syncing a source kills its process at once.",
    )
    ingestion_extract_concurrency: int = Field(
        2,
        ge=1,
        le=64,
        description="Files read at once, each in its own process (the work is all CPU: one per core is plenty).",
    )
    chunk_tokens: int = Field(
        256,
        ge=32,
        le=2048,
        description="Largest chunk, in embedding tokens (title and heading context included).",
    )
    chunk_overlap_tokens: int = Field(
        32,
        ge=0,
        le=512,
        description="Overlap between consecutive chunks, in tokens (whole sentences).",
    )
    embedding_base_url: str | None = Field(
        None,
        description=(
            "OpenAI-compatible embeddings endpoint. Default: the offline MiniLM model (no download). "
            "Changing the model needs a re-ingestion of every source."
        ),
    )
    embedding_model: str | None = Field(None, description="Model name for `embedding_base_url`.")
    fastembed_model: str | None = Field(
        None,
        description="Embed with this fastembed model (e.g. `BAAI/bge-small-en-v1.5`; needs the `fastembed` "
        "extra; downloaded on first use unless `fastembed_model_path` holds it). Changing the model needs a "
        "re-ingestion of every source.",
    )
    fastembed_model_path: Path | None = Field(
        None,
        description="A folder that already holds the fastembed model's files (offline machines).",
    )
    embedding_api_key: SecretStr | None = Field(
        None, description="API key for `embedding_base_url`."
    )
    llm_base_url: str | None = Field(
        None,
        description="OpenAI-compatible base URL (OpenAI, Ollama `http://localhost:11434/v1`, vLLM, llama.cpp, "
        "LM Studio, OpenRouter, Groq) for every bot without its own provider. Unset: bots answer with the "
        "offline answerer. A server behind basic auth: `https://user:password@host/v1` (sent as "
        "`Authorization: Basic` unless `llm_api_key` is set). `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / "
        "`NO_PROXY` apply.",
    )
    llm_api_key: SecretStr | None = Field(None, description="API key for `llm_base_url`.")
    llm_model: str | None = Field(
        None,
        description="Default model name sent to `llm_base_url` (a bot's `model.model` overrides it).",
    )
    llm_timeout_seconds: float = Field(
        60.0, gt=0, description="Timeout of one model call, in seconds."
    )
    llm_context_tokens: int = Field(
        8192,
        ge=512,
        description="Context window the prompt is trimmed to (history is dropped first).",
    )
    anthropic_api_key: SecretStr | None = Field(
        None,
        description="Enables bots whose `model.provider` is `anthropic` (needs the `anthropic` extra).",
    )
    model_prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description='Extra or changed model prices, USD per million tokens: {"model": [input, output]}.',
    )
    blocked_input_patterns: TextList = Field(
        default_factory=list,
        description="Regular expressions; a question matching one is refused with `content_filtered` "
        "(comma-separated, or a JSON list when a pattern holds a comma).",
    )
    blocked_output_patterns: TextList = Field(
        default_factory=list,
        description="Regular expressions; an answer matching one is replaced (a `replace` event) "
        "(comma-separated, or a JSON list when a pattern holds a comma).",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL (redis://host:port/0). Set: rate limits and quotas are shared by every "
        "process using it. Unset: they are kept in memory, per process.",
    )
    public_rate_limits: str = Field(
        "15/minute;120/hour",
        description="Limits of the public (keyless) chat endpoints per client IP and bot, in the `limits` "
        "notation (`N/second|minute|hour|day`, `;`-separated). A bot's own `rate_limits` add to these; "
        "the strictest wins.",
    )
    api_rate_limits: str = Field(
        "60/minute",
        description="Limits of the keyed chat endpoints, per API key and bot. A bot's `rate_limits` add "
        "to these; the strictest wins.",
    )
    history_rate_limits: str = Field(
        "30/minute",
        description="Limits of the public conversation-history endpoint, per client IP.",
    )
    public_event_streams_per_conversation: int = Field(
        5,
        ge=1,
        description="Open event streams (`GET /v1/public/conversations/{id}/events`, the widget's "
        "push channel for agent replies) one conversation may hold at once on one API process; more get 429.",
    )
    public_event_stream_seconds: float = Field(
        600.0,
        gt=0,
        description="Longest life of one public event stream, in seconds; the widget then "
        "reconnects (it bounds how long a connection can be held).",
    )
    workspace_rate_limits: str = Field(
        "",
        description="Optional limits on all chat of one workspace (e.g. `1000/day`); empty: none.",
    )
    rate_limit_failure_mode: Literal["closed", "open"] = Field(
        "closed",
        description="When the rate-limit storage (Redis) is unreachable: `closed` refuses chat with 503 "
        "`rate_limiter_unavailable`; `open` serves it unlimited (logged) until Redis is back. Failed-key "
        "throttling always fails open.",
    )
    max_concurrent_requests_per_client: int = Field(
        64,
        ge=0,
        description="Requests one client IP may have in flight at once in one process (open chat streams "
        "count until they end); past it: 429 `too_many_requests` with `Retry-After: 1`. Behind a proxy the "
        "forwarded IP counts (uvicorn's `FORWARDED_ALLOW_IPS`, default the local host). 0: no cap.",
    )
    auth_failure_rate_limits: str = Field(
        "30/minute",
        description="Failed authentications (a key presented and refused), counted per client IP and key "
        "and per client IP: a key past them from an address gets 429 with Retry-After there, and an address "
        "past them gets 429 for every refused key, until the window frees. A valid key is never refused for "
        "other keys' failures. Empty: off.",
    )
    cors_allowed_origins: TextList = Field(
        default_factory=list,
        description="Origins every endpoint accepts browser calls from, comma-separated "
        "(`https://app.example.com,https://shop.example`) or a JSON list; "
        "`*` allows any. On top of these, the public widget endpoints allow each bot's domains and the "
        "keyed endpoints the domains of the bots and keys.",
    )
    recaptcha_secret_key: SecretStr | None = Field(
        None,
        description="reCAPTCHA secret: public chat of bots with reCAPTCHA on needs a valid token.",
    )
    recaptcha_site_key: str | None = Field(
        None, description="reCAPTCHA site key the widget configuration hands to browsers."
    )
    recaptcha_verify_url: str = Field(
        "https://www.google.com/recaptcha/api/siteverify",
        description="Where reCAPTCHA tokens are verified (a compatible service may stand in).",
    )
    demo: bool = Field(
        False,
        description="Create a public demo bot with a sample document on first start (`make serve` does).",
    )
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="`json`: one JSON object per log line, with the request id (the `X-Request-ID` a proxy "
        "sent, or a new one, echoed in every response), for log shippers.",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token `GET /metrics` requires (`Authorization: Bearer <token>`, at least 16 "
        "characters). Unset (the default): `/metrics` answers only clients on a loopback address (a "
        "Prometheus on the same host) and 403 to everyone else, since its counts span every workspace.",
    )
    otel_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP traces endpoint (e.g. `http://collector:4318/v1/traces`): a span per request, "
        "with child spans for retrieval and generation (needs the `otel` extra); an incoming W3C `traceparent` "
        "is continued. Unset: no tracing, the OpenTelemetry SDK is not even loaded.",
    )
    otel_service_name: str = Field(
        "chatwell", description="The `service.name` the traces are reported under."
    )

    @field_validator(
        "blocked_input_patterns", "blocked_output_patterns", "cors_allowed_origins", mode="before"
    )
    @classmethod
    def _text_list(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                raise ValueError(
                    'not a JSON list; write the values comma-separated or as ["a", "b"]'
                ) from None
        return [part.strip() for part in text.split(",") if part.strip()]

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator(
        "public_rate_limits",
        "api_rate_limits",
        "history_rate_limits",
        "workspace_rate_limits",
        "auth_failure_rate_limits",
    )
    @classmethod
    def _rate_limits(cls, value: str) -> str:
        from limits import parse_many

        if value.strip():
            try:
                parse_many(value)
            except ValueError:
                raise ValueError(
                    f"not a rate-limit string like '15/minute;120/hour': {value!r}"
                ) from None
        return value

    @field_validator("metrics_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("the metrics token needs at least 16 characters")
        return value

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        if self.environment == "production" and self.admin_key is not None:
            if self.admin_key.get_secret_value().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(
                    "CHATWELL_ADMIN_KEY is a placeholder; set a real secret in production"
                )
        return self

    @model_validator(mode="after")
    def _queue_needs_postgres(self) -> Settings:
        if self.queue == "procrastinate" and not (self.database_url or "").startswith("postgresql"):
            raise ValueError(
                "CHATWELL_QUEUE=procrastinate needs a PostgreSQL CHATWELL_DATABASE_URL"
            )
        return self

    @model_validator(mode="after")
    def _extras_installed(self) -> Settings:
        """A backend configured without its optional packages stops here, naming the extra."""
        needs: list[tuple[str, tuple[str, ...], str]] = []
        if (self.database_url or "").startswith("postgresql"):
            needs.append(
                ("postgres", ("asyncpg", "pgvector"), "CHATWELL_DATABASE_URL is PostgreSQL")
            )
        if self.redis_url:
            needs.append(("redis", ("redis",), "CHATWELL_REDIS_URL is set"))
        if self.queue == "procrastinate":
            needs.append(("queue", ("procrastinate", "psycopg"), "CHATWELL_QUEUE=procrastinate"))
        for extra, modules, reason in needs:
            missing = [module for module in modules if importlib.util.find_spec(module) is None]
            if missing:
                raise ValueError(
                    f"{reason}, which needs the {extra!r} extra (missing {', '.join(missing)}): "
                    f"pip install 'chatwell[{extra}]'"
                )
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL in use: the configured one or the SQLite file under the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'chatwell.db').resolve()}"


def settings_error_line(exc: ValidationError | SettingsError) -> str:
    """One line for the operator naming the variable at fault and the form it expects (no
    traceback; a secret's value is never repeated)."""
    if isinstance(exc, SettingsError):
        found = re.search(r'field "([a-z_]+)"', str(exc))
        name = found.group(1) if found else ""
        if name in Settings.model_fields:
            return f"CHATWELL_{name.upper()}: not valid JSON — {_described(name)}"
        return f"invalid setting: {exc}"
    first = exc.errors()[0]
    location = [str(part) for part in first.get("loc", ())]
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if not location:
        return f"invalid settings: {message}"
    name = location[0]
    variable = f"CHATWELL_{name.upper()}"
    field = Settings.model_fields.get(name)
    secret = field is not None and "SecretStr" in repr(field.annotation)
    given = first.get("input")
    shown = (
        "" if secret or not isinstance(given, str | int | float) else f" (got {str(given)[:80]!r})"
    )
    return f"{variable}: {message}{shown} — {_described(name)}"


def _described(name: str) -> str:
    """The setting's help text, on one line: it says what the setting holds and in which form."""
    field = Settings.model_fields.get(name)
    return " ".join((field.description or "").split()) if field is not None else ""
