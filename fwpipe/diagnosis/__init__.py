"""The diagnosis: one owner of the causes of a stalled loss, ranked on one scale.

Used by `audit` (data-side causes only), `train --dry-run` (the plan's what-if table), the evals
during `train` (the plateau message), `fwpipe report RUN` and `fwpipe diagnose`. A layer between
the ground floor and the stages: it imports fwpipe.budget and fwpipe.fmt only, never a stage,
and takes plain numbers and records, so that a run directory, a nanoGPT or llm.c log and a plan
all go through the same function.

    trend.py   the scaling fit's loss trend, only inside its range; the what-if table
    causes.py  the six causes, their scores (nats of loss excess), evidence and advice
    logs.py    nanoGPT and llm.c stdout logs -> eval and train records
"""

from fwpipe.diagnosis.causes import (
    CAUSES,
    Inputs,
    at_eval,
    diagnose,
    format_text,
    improvement_per_doubling,
)

__all__ = ["CAUSES", "Inputs", "at_eval", "diagnose", "format_text", "improvement_per_doubling"]
