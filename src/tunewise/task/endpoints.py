"""Where a task's models are served: an OpenAI-compatible endpoint under a name, and what its
tokens (and its fine-tuning) cost."""

from __future__ import annotations

from pydantic import Field

from tunewise.core.strict import Strict as _Strict


class TokenPrices(_Strict):
    """An API model's price per million tokens, in USD."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)
    training_per_million: float | None = Field(
        default=None,
        ge=0,
        description="A fine-tuning service's price per million trained tokens (the training "
        "file's tokens times the epochs, as the job reports them): a hosted fine-tuning "
        "candidate's setup cost.",
    )


class ModelEndpoint(_Strict):
    """A model on an OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp server), under a
    name that `model:` (task or candidate) and --model can use."""

    model: str = Field(min_length=1, description="The server's model id.")
    base_url: str = Field(
        default="https://api.openai.com/v1",
        pattern=r"^https?://\S+$",
        description="The server's /v1 URL, e.g. http://127.0.0.1:8000/v1 for vLLM.",
    )
    api_key_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the API key (default OPENAI_API_KEY for "
        "api.openai.com, none otherwise); the key itself never goes in a file.",
    )
    prices: TokenPrices | None = Field(default=None, description="USD per million tokens.")
    fine_tuning: bool = Field(
        default=False,
        description="The server runs fine-tuning jobs (OpenAI's fine-tuning API: OpenAI, or "
        "`tunewise fine-tuning-server`): when this is the task's model, the ladder fine-tunes "
        "through it at steps 3 and 4 (jobs cost money; see docs/fine-tuning-service.md).",
    )
    fine_tuned_prices: TokenPrices | None = Field(
        default=None,
        description="USD per million tokens of the models fine-tuned from this one (OpenAI "
        "charges more for them than for the base); default: the base model's prices.",
    )
    concurrency: int = Field(default=8, ge=1, le=256, description="Requests in flight at once.")
    timeout_s: float = Field(default=60, gt=0, description="Seconds per attempt.")
    deadline_s: float = Field(
        default=300, gt=0, description="Seconds per request, all retries and waits included."
    )
    max_retries: int = Field(default=5, ge=0, le=20)
