"""Blend resolution: a spec's phase over the available prefixes, as concrete per-prefix weights.

A prefix's weight is the share of the training samples drawn from it (Megatron's
``--data-path`` weights are probabilities, not sizes): its group's normalised weight
times its share within the group. Tokens drawn = weight x the phase's tokens; epochs =
tokens drawn / tokens available. Held-out (valid/test) prefixes get the same group and
within-group weighting over their own token counts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from corpusmill.curation.blend.inventory import AvailablePrefix, BlendError, Inventory
from corpusmill.curation.blend.spec import BlendSpec, Group, Phase
from corpusmill.curation.megatron.components import SPLIT, TEST, TRAIN, VALID
from corpusmill.curation.select.expression import ExpressionError

SPLITS = (TRAIN, VALID, TEST)
NOT_SELECTED = "no group selects it"
_EPSILON = 1e-9


@dataclass(frozen=True)
class Draw:
    prefix: AvailablePrefix
    group: str
    weight: float
    tokens_drawn: float

    @property
    def epochs(self) -> float:
        return self.tokens_drawn / self.prefix.tokens


@dataclass
class Resolution:
    spec: str
    phase: str
    total_tokens: float
    tokens_origin: str
    seq_length: int
    tokenizer: dict[str, Any]
    splits: dict[str, list[Draw]]
    not_drawn: list[tuple[AvailablePrefix, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def unselected_report(self) -> str | None:
        """One line on the training tokens no group selects (category ``unknown``, by default), or None.

        Not a warning: leaving them out is what the shipped blends mean to do, so ``--strict`` passes;
        but the count is always said, so nothing is dropped unseen.
        """
        unselected = [prefix for prefix, reason in self.not_drawn if reason == NOT_SELECTED]
        if not unselected:
            return None
        tokens = sum(prefix.tokens for prefix in unselected)
        available = tokens + sum(draw.prefix.tokens for draw in self.splits[TRAIN])
        names = ", ".join(prefix.name for prefix in unselected[:3]) + (" ..." if len(unselected) > 3 else "")
        return (
            f"{tokens:,} training tokens ({tokens / available:.2%}) in {len(unselected)} prefix(es) are selected by "
            f"no group of phase {self.phase} and are not trained on: {names}; add a group selecting them to use them"
        )


def _where(phase: Phase, group: Group) -> str:
    return f"phases.{phase.name}.groups.{group.name} (line {group.line})"


def _check_keys(phase: Phase, inventory: Inventory) -> None:
    """Every key a group selects (`where` included) or weights on must be a key the shards were split by."""
    for group in phase.groups:
        for key in sorted(group.select.keys | ({group.over} if group.over else set())):
            lacking = inventory.directories_without(key)
            if lacking:
                split_by = ",".join(k for k in inventory.split_by[lacking[0]] if k != SPLIT)
                raise BlendError(
                    f"{_where(phase, group)} uses key `{key}`, but {', '.join(lacking)} was tokenized with --split-by "
                    f"{split_by}; re-run `corpusmill tokenize` with `{key}` added to --split-by"
                )
        try:
            group.select.check_where()
        except ExpressionError as error:
            raise BlendError(f"{_where(phase, group)}: `where` {error}") from None


def _members(
    phase: Phase, prefixes: list[AvailablePrefix]
) -> tuple[dict[str, list[AvailablePrefix]], list[AvailablePrefix]]:
    members: dict[str, list[AvailablePrefix]] = {group.name: [] for group in phase.groups}
    unselected = []
    for prefix in prefixes:
        matched = [group for group in phase.groups if group.select.matches(prefix.keys)]
        if len(matched) > 1:
            raise BlendError(
                f"{prefix.name} is selected by {' and '.join(_where(phase, g) for g in matched)}; a prefix may belong "
                "to one group only: narrow one of them with `exclude:`"
            )
        if matched:
            members[matched[0].name].append(prefix)
        else:
            unselected.append(prefix)
    return members, unselected


def _by_value(group: Group, members: list[AvailablePrefix]) -> dict[str, list[AvailablePrefix]]:
    values: dict[str, list[AvailablePrefix]] = defaultdict(list)
    for prefix in members:
        values[prefix.keys[group.over]].append(prefix)
    return values


def _value_shares(group: Group, values: dict[str, list[AvailablePrefix]]) -> dict[str, float]:
    """Unnormalised share of each value of ``group.over`` (temperature or explicit groups)."""
    tokens = {value: sum(p.tokens for p in prefixes) for value, prefixes in values.items()}
    if group.within == "temperature":
        total = sum(tokens.values())
        return {value: (count / total) ** (1.0 / group.temperature) for value, count in tokens.items()}
    return {value: group.weights.get(value, 0.0) for value in values}


def within_shares(group: Group, members: list[AvailablePrefix]) -> dict[AvailablePrefix, float]:
    """Each member's share of its group (summing to 1), proportional to tokens inside each value."""
    if group.within == "tokens":
        total = sum(p.tokens for p in members)
        return {prefix: prefix.tokens / total for prefix in members}
    values = _by_value(group, members)
    shares = _value_shares(group, values)
    total_share = sum(shares.values())
    if total_share == 0:
        return {}
    result = {}
    for value, prefixes in values.items():
        value_tokens = sum(p.tokens for p in prefixes)
        for prefix in prefixes:
            result[prefix] = shares[value] / total_share * prefix.tokens / value_tokens
    return result


def _explicit_warnings(phase: Phase, group: Group, members: list[AvailablePrefix]) -> list[str]:
    present = set(_by_value(group, members))
    warnings = [
        f"{_where(phase, group)}: {group.over} `{value}` is in the shards but not under `weights`; it gets nothing "
        "(give it a weight, 0 to exclude it on purpose)"
        for value in sorted(present - set(group.weights))
    ]
    warnings += [
        f"{_where(phase, group)}: weights name {group.over} `{value}`, which no selected shard has"
        for value in sorted(set(group.weights) - present)
    ]
    return warnings


def _dropped_group_warning(phase: Phase, group: Group, has_members: bool, live: list[Group], live_weight: float) -> str:
    """A group with weight but nothing to draw (e.g. alignment data not ingested yet): its weight is
    dropped and the groups that draw are renormalised, i.e. its share goes to them in proportion
    to their weights. The message says which, and the shares the phase ends up with."""
    phase_weight = sum(g.weight for g in phase.groups)
    why = (
        f"draws nothing: every prefix it selects has weight 0 under its `weights` over {group.over}"
        if has_members
        else f"has no data: no prefix of these shards matches its selection ({group.select.describe()})"
    )
    shares = ", ".join(f"{g.name} {g.weight / live_weight:.1%}" for g in live)
    return (
        f"{_where(phase, group)} {why}; its weight {group.weight:g} "
        f"({group.weight / phase_weight:.1%} of the phase) is dropped and the other groups are renormalised "
        f"to {shares}"
    )


def split_weights(
    phase: Phase, prefixes: list[AvailablePrefix]
) -> tuple[list[tuple[AvailablePrefix, str, float]], list[tuple[AvailablePrefix, str]], list[str]]:
    """(prefix, group, weight) summing to 1; prefixes not drawn with the reason; warnings."""
    members, unselected = _members(phase, prefixes)
    not_drawn = [(prefix, NOT_SELECTED) for prefix in unselected]
    warnings: list[str] = []
    shares = {}
    for group in phase.groups:
        shares[group.name] = within_shares(group, members[group.name]) if members[group.name] else {}
        if group.within == "explicit" and members[group.name]:
            warnings += _explicit_warnings(phase, group, members[group.name])
        for prefix in members[group.name]:
            if group.weight == 0:
                not_drawn.append((prefix, f"group {group.name} has weight 0"))
            elif shares[group.name].get(prefix, 0.0) == 0:
                not_drawn.append((prefix, f"weight 0 within group {group.name}"))
    live = [group for group in phase.groups if group.weight > 0 and any(shares[group.name].values())]
    total_weight = sum(group.weight for group in live)
    warnings += [
        _dropped_group_warning(phase, group, bool(members[group.name]), live, total_weight)
        for group in phase.groups
        if group.weight > 0 and group not in live
    ]
    rows = [
        (prefix, group.name, group.weight / total_weight * share)
        for group in live
        for prefix, share in shares[group.name].items()
        if share > 0
    ]
    return rows, not_drawn, warnings


def _cap_warnings(spec: BlendSpec, phase: Phase, draws: list[Draw]) -> list[str]:
    drawn: dict[str, float] = defaultdict(float)
    available: dict[str, int] = defaultdict(int)
    for draw in draws:
        drawn[draw.prefix.source] += draw.tokens_drawn
        available[draw.prefix.source] += draw.prefix.tokens
    warnings = []
    for source in sorted(drawn):
        cap = spec.max_epochs(source)
        epochs = drawn[source] / available[source]
        if cap is not None and epochs > cap * (1 + _EPSILON):
            line = spec.cap_lines.get(source, spec.cap_lines.get("*"))
            warnings.append(
                f"source `{source}` is repeated {epochs:,.2f} epochs in phase {phase.name}, above its cap of {cap:g} "
                f"(max_epochs, line {line}): lower the weights drawing on it, add data, or raise the cap"
            )
    return warnings


def _sample_warnings(draws: list[Draw], seq_length: int) -> list[str]:
    return [
        f"{draw.prefix.name} has weight {draw.weight:.3g}: {draw.tokens_drawn / seq_length:.2f} samples of "
        f"{seq_length} tokens, so it contributes nothing; raise its weight or drop it"
        for draw in draws
        if draw.tokens_drawn / seq_length < 1
    ]


def resolve(
    spec: BlendSpec,
    inventory: Inventory,
    phase_name: str | None = None,
    tokens: float | None = None,
    seq_length: int | None = None,
) -> Resolution:
    phase = spec.phase(phase_name)
    _check_keys(phase, inventory)
    paths = [prefix.path for prefix in inventory.prefixes]
    if len(set(paths)) < len(paths):
        twice = next(path for path in paths if paths.count(path) > 1)
        raise BlendError(f"{twice} is in the inventory twice; give each tokenize output once")
    by_split = {split: [p for p in inventory.prefixes if p.split == split] for split in SPLITS}
    if not by_split[TRAIN]:
        raise BlendError("no training prefixes (every prefix is a held-out split)")
    rows, not_drawn, warnings = split_weights(phase, by_split[TRAIN])
    if not rows:
        raise BlendError(f"phase {phase.name} draws nothing from these shards: no group selects any prefix")
    if tokens is not None:
        total, origin = tokens, "--tokens"
    elif phase.tokens is not None:
        total, origin = phase.tokens, f"phases.{phase.name}.tokens"
    else:
        total, origin = float(sum(prefix.tokens for prefix, _, _ in rows)), "the selected tokens (no --tokens given)"
    seq_length = seq_length or spec.seq_length
    splits = {TRAIN: [Draw(prefix, group, weight, weight * total) for prefix, group, weight in rows]}
    for split in (VALID, TEST):
        held_out = split_weights(phase, by_split[split])[0] if by_split[split] else []
        splits[split] = [Draw(prefix, group, weight, 0.0) for prefix, group, weight in held_out]
    warnings += _cap_warnings(spec, phase, splits[TRAIN]) + _sample_warnings(splits[TRAIN], seq_length)
    return Resolution(
        spec.name, phase.name, total, origin, seq_length, dict(inventory.tokenizer), splits, not_drawn, warnings
    )
