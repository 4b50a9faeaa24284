"""Teacher kinds: what a ``teacher`` spec may name besides B-Pref's simulated family.

A spec is either a simulated teacher of B-Pref's family (``boltzmann:1+mistake:0.1``, read by
:meth:`rlhf.Teacher.parse`), or ``NAME`` / ``NAME:ARG`` where NAME is a registered
:class:`TeacherKind`: ``recorded:DIR`` (a person's answers, :mod:`rlhf.preferences.recorded`) is
one. A kind turns its argument into a :class:`~rlhf.Labeller`; making one may read files, so a
configuration only keeps the spec, and :func:`resolve_teacher_spec` (called where a run is set up:
:func:`rlhf.train`, a sweep's expansion) may rewrite the argument into a canonical one that changes
with what the labeller will answer (a store's path and digest), so a sweep cell's key does too.

Adding a teacher: write a class with ``answer(query) -> Labels`` and register one kind::

    rlhf.register_teacher(rlhf.TeacherKind("always-first", make=lambda arg: AlwaysFirst()))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..core.registry import Registry
from .labeller import Labeller
from .teachers import Teacher


def _as_given(argument: str) -> str:
    return argument


@dataclass(frozen=True)
class TeacherKind:
    """A registered kind of teacher spec, ``name`` or ``name:ARG``."""

    name: str
    """The spec's head: a word that is not a term of B-Pref's grammar (``boltzmann``, ``regret``, ...)."""
    make: Callable[[str], Labeller]
    """The labeller for an argument (``""`` when the spec is the bare name); may read files."""
    resolve: Callable[[str], str] = _as_given
    """The argument made canonical where a run is set up (may read files); default: as given."""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"teacher kind name must be a word (letters, digits, - or _), got {self.name!r}")

    def spec(self, argument: str) -> str:
        return f"{self.name}:{argument}" if argument else self.name


_REGISTRY: Registry[TeacherKind] = Registry("teacher kind")


def register_teacher(kind: TeacherKind) -> TeacherKind:
    """Make ``kind`` known to teacher specs; returns it. ValueError if the name is taken, by another
    kind or by B-Pref's grammar."""
    if Teacher.is_term(kind.name):
        raise ValueError(f"teacher kind {kind.name!r} is a term of B-Pref's teacher specs")
    return _REGISTRY.register(kind.name, kind)


def registered_teachers() -> tuple[str, ...]:
    """The registered kinds' names, in registration order."""
    return _REGISTRY.names()


def split_spec(spec: str) -> tuple[TeacherKind, str] | None:
    """(kind, argument) of a spec of a registered kind; None for B-Pref's family."""
    head, _, argument = spec.partition(":")
    kind = _REGISTRY.get(head.strip())
    return None if kind is None else (kind, argument)


def canonical_teacher_spec(spec: str) -> str:
    """The spec a configuration keeps (no I/O): a registered kind's as given, a simulated teacher's
    as :class:`rlhf.Teacher` writes it back. ValueError naming the problem for a bad spec."""
    return spec if split_spec(spec) is not None else str(Teacher.parse(spec))


def resolve_teacher_spec(spec: str) -> str:
    """The spec with its kind's argument made canonical (may read files: where a run is set up)."""
    found = split_spec(spec)
    if found is None:
        return spec
    kind, argument = found
    return kind.spec(kind.resolve(argument))


def labeller_from_spec(spec: str) -> Labeller:
    """The labeller a spec names: its kind's, or a simulated :class:`rlhf.Teacher`."""
    found = split_spec(spec)
    if found is None:
        return Teacher.parse(spec)
    kind, argument = found
    return kind.make(argument)
