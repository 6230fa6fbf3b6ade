"""`--fail-on` rules: `PATH OP NUMBER` over the JSON report, e.g. `leakage.near_docs>0`.

PATH is dotted keys into the report (`budget.epochs`, `splits.val.docs`); OP one of
> >= < <= == !=. Rules are parsed before the audit runs, so a typo fails in a second.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from fwpipe.errors import ConfigError

_OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt}
_RULE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*(>=|<=|==|!=|>|<)\s*([-+]?[0-9][0-9_]*\.?[0-9_]*(?:[eE][-+]?[0-9]+)?)\s*$")
HINT = "write rules like 'leakage.near_docs>0' or 'budget.epochs>4' (PATH OP NUMBER, PATH a key of the --json report)"


@dataclass(frozen=True)
class Rule:
    text: str
    path: tuple[str, ...]
    op: str
    value: float

    def value_in(self, report: dict) -> float | None:
        node = report
        for i, key in enumerate(self.path):
            if isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            elif isinstance(node, dict) and key in node:
                node = node[key]
            else:
                where = ".".join(self.path[: i + 1])
                extra = "; the budget section needs --budget-tokens" if self.path[0] == "budget" else ""
                raise ConfigError(f"--fail-on {self.text!r}: the report has no {where!r}{extra}", HINT)
        if node is None:
            return None
        if isinstance(node, bool) or not isinstance(node, (int, float)):
            raise ConfigError(f"--fail-on {self.text!r}: {'.'.join(self.path)} is not a number", HINT)
        return float(node)

    def fails(self, report: dict) -> bool:
        v = self.value_in(report)
        return v is not None and _OPS[self.op](v, self.value)


def parse_rule(text: str) -> Rule:
    m = _RULE.match(text)
    if not m:
        raise ConfigError(f"--fail-on {text!r} is not a rule", HINT)
    return Rule(text.strip(), tuple(m.group(1).split(".")), m.group(2), float(m.group(3).replace("_", "")))


def failed_rules(report: dict, rules: list[Rule]) -> list[tuple[Rule, float]]:
    """The rules that fire, with the value that made each fire."""
    return [(r, r.value_in(report)) for r in rules if r.fails(report)]
