"""`--fail-on` rules: `PATH OP NUMBER` over the JSON report, e.g. `leakage.near_docs>0`.

PATH is dotted keys into the report (`budget.epochs`, `splits.val.docs`); OP one of
> >= < <= == !=. Rules are parsed and their paths checked against the report's schema
(report.KEYS) before the audit runs, so a typo fails in a second, not after an hour.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from fwpipe.audit.report import KEYS, LIST, PARAMS_KEYS, TEXT
from fwpipe.errors import ConfigError

_OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt}
_RULE = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*(>=|<=|==|!=|>|<)\s*([-+]?[0-9][0-9_]*\.?[0-9_]*(?:[eE][-+]?[0-9]+)?)\s*$"
)
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


def parse_rule(text: str, *, budget: bool = True, params: bool = True) -> Rule:
    """Parse one rule and check its path: a key the report has, a number, and a section this
    audit will write (budget needs budget=True, i.e. --budget-tokens; its sizing keys params=True)."""
    m = _RULE.match(text)
    if not m:
        raise ConfigError(f"--fail-on {text!r} is not a rule", HINT)
    rule = Rule(text.strip(), tuple(m.group(1).split(".")), m.group(2), float(m.group(3).replace("_", "")))
    _check_path(rule)
    if rule.path[0] == "budget" and not budget:
        raise ConfigError(f"--fail-on {rule.text!r}: the budget section needs --budget-tokens", HINT)
    if rule.path[0] == "budget" and rule.path[1:2] and rule.path[1] in PARAMS_KEYS and not params:
        raise ConfigError(f"--fail-on {rule.text!r}: budget.{rule.path[1]} needs --params", HINT)
    return rule


def _check_path(rule: Rule) -> None:
    node: dict | str = KEYS
    for i, key in enumerate(rule.path):
        if node == LIST:  # list items are not in the schema; value_in checks them on the report
            return
        where = ".".join(rule.path[:i])
        if not isinstance(node, dict):
            raise ConfigError(f"--fail-on {rule.text!r}: {where} is a single value, it has no {key!r}", HINT)
        if key not in node:
            keys = ", ".join(k for k in node)
            raise ConfigError(
                f"--fail-on {rule.text!r}: the report has no {'.'.join(rule.path[: i + 1])!r}"
                f" ({where or 'the top level'} has {keys})",
                HINT,
            )
        node = node[key]
    if node == TEXT:
        raise ConfigError(f"--fail-on {rule.text!r}: {'.'.join(rule.path)} is text, not a number", HINT)
    if isinstance(node, dict):
        raise ConfigError(
            f"--fail-on {rule.text!r}: {'.'.join(rule.path)} is a section, not a number (its keys: {', '.join(node)})",
            HINT,
        )


def failed_rules(report: dict, rules: list[Rule]) -> list[tuple[Rule, float]]:
    """The rules that fire, with the value that made each fire."""
    return [(r, r.value_in(report)) for r in rules if r.fails(report)]
