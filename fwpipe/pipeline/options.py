"""What a prepare was asked (PrepareOptions, checked), what decides its bytes (identity), and
the Run that carries both, with the inputs, paths and executor, through every pass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from fwpipe import budget
from fwpipe.dataset import MANIFEST_VERSION
from fwpipe.errors import BudgetError, ConfigError
from fwpipe.executors import Executor
from fwpipe.pipeline.inputs import KEY_COLUMN, Source
from fwpipe.pipeline.split import val_threshold
from fwpipe.pipeline.workdir import WorkDir
from fwpipe.tokenizer import DEFAULT_ENGINE, EOT, VOCAB_SIZE, bpe_sha256
from fwpipe.tokenizer import NAME as TOKENIZER_NAME


@dataclass(frozen=True)
class PrepareOptions:
    """What decides the bytes written. workers, executors, unit and batch sizes and progress do not,
    nor does tokenizer_engine: both engines write the same bytes, so it is left out of the identity
    (NOT_IDENTITY) and a run started with one engine may resume with the other."""

    text_column: str = "text"
    val_fraction: float = 0.005
    seed: int = 0
    shard_tokens: int = 100_000_000
    format: Literal["fwpipe", "nanogpt"] = "fwpipe"
    budget_tokens: int | None = None  # stop once train holds budget / max_epochs stream tokens
    max_epochs: float = 1.0
    dedup: Literal["none", "exact", "near"] = "near"  # see dedup_passes.py; "none" tokenizes in one pass
    tokenizer_engine: Literal["gigatoken", "tiktoken"] = DEFAULT_ENGINE  # fwpipe/tokenizer.py
    filters: tuple[str, ...] = ()  # --filter: quality filters applied before tokenizing (fwpipe.quality.filter)

    def check(self) -> None:
        """Raise ConfigError (BudgetError) for an option no prepare can honour."""
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"--val-fraction {self.val_fraction} is not in [0, 1)", "use e.g. --val-fraction 0.005")
        if self.shard_tokens < 2:
            raise ConfigError(
                f"--shard-tokens {self.shard_tokens} is too small", "use at least a few thousand tokens (default 100M)"
            )
        if self.budget_tokens is not None and self.budget_tokens <= 0:
            raise BudgetError(
                f"--budget-tokens {self.budget_tokens} is not a positive number of tokens",
                "pass e.g. --budget-tokens 7.6e9",
            )
        if not self.max_epochs > 0:
            raise ConfigError(
                f"--max-epochs {self.max_epochs} is not positive",
                "pass e.g. --max-epochs 1 (fresh data) or 4 (repeats nearly free)",
            )
        if not 0 <= self.seed < 2**64:  # the split hash is keyed by the seed's 8 bytes
            raise ConfigError(
                f"--seed {self.seed} is not in [0, 2**64)", "pass a non-negative whole number, e.g. --seed 0"
            )
        if self.shard_tokens >= 2**31:
            raise ConfigError(
                f"--shard-tokens {self.shard_tokens} does not fit an llm.c header", "use at most 2,147,483,647 tokens"
            )

    def first_pass(self) -> PrepareOptions:
        """--dedup's first pass over one input: every document, in input order, all in train."""
        return PrepareOptions(
            text_column=self.text_column,
            val_fraction=0.0,
            seed=self.seed,
            shard_tokens=self.shard_tokens,
            dedup="none",
            tokenizer_engine=self.tokenizer_engine,
            filters=self.filters,
        )


NOT_IDENTITY = ("tokenizer_engine",)


def identity(sources: list[Source], options: PrepareOptions) -> dict:
    """Everything that decides the bytes of the dataset; equal identity means same output."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "format": options.format,
        "tokenizer": {"name": TOKENIZER_NAME, "vocab_size": VOCAB_SIZE, "eot": EOT, "bpe_sha256": bpe_sha256()},
        "sources": [s.to_json() for s in sources],
        "split": {
            "key_column": KEY_COLUMN,
            "key_fallback": options.text_column,
            "hash": "blake2b-64",
            "val_fraction": options.val_fraction,
            "seed": options.seed,
        },
        # unfiltered: as before --filter
        # as JSON reads it back (filters: a list, not a tuple), so a resumed run compares equal
        "options": {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in asdict(options).items()
            if k not in NOT_IDENTITY and (k != "filters" or v)
        },
    }


@dataclass
class Run:
    """One prepare (or one --dedup first-pass stage) as its passes see it."""

    options: PrepareOptions
    sources: list[Source]
    paths: list  # the resolved inputs, as sources (local paths or URLs)
    work: WorkDir  # the dataset directory and every path under its .work
    executor: Executor
    batch_rows: int | None  # rows a tokenizer batch (memory per worker); None: units.batch_rows_for
    unit_rows: int  # rows a unit gathers (units.py; tests shrink it)
    progress: bool | None
    scratch: dict = field(default_factory=dict)  # --dedup's engine: tmp_dir, memory_bytes
    identity: dict = field(init=False)
    target: int | None = field(init=False)  # train stream tokens the budget needs, None without one
    threshold: int = field(init=False)  # the split's 64-bit val threshold

    def __post_init__(self) -> None:
        self.identity = identity(self.sources, self.options)
        o = self.options
        self.target = budget.unique_tokens_needed(o.budget_tokens, o.max_epochs) if o.budget_tokens else None
        self.threshold = val_threshold(o.val_fraction)

    @property
    def out_dir(self) -> Path:
        """The dataset directory as the user spelled it (work.out_dir is its absolute path)."""
        return self.work.given

    @property
    def shard_dir(self) -> Path:
        return self.work.shard_dir(self.options.format)

    def stage(self, file_index: int) -> Run:
        """--dedup's first pass over input `file_index`, as a dataset of its own under .work."""
        return Run(
            self.options.first_pass(),
            [self.sources[file_index]],
            [self.paths[file_index]],
            self.work.stage(file_index),
            self.executor,
            self.batch_rows,
            self.unit_rows,
            self.progress,
        )
