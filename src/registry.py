"""Find rewards by name through the ``migr.rewards`` entry-point group.

Our rewards are declared in ``pyproject.toml``; a third-party package declares its own the same way, and after
``pip install`` its rewards are available by name with no change to migr::

    [project.entry-points."migr.rewards"]
    length_penalty = "my_package.rewards:LengthPenalty"

Discovery reads installed metadata only; a reward's module is imported the first time the reward is asked for
(lazy loading), so a broken or heavy plug-in costs nothing until used.

Name collisions, precisely:

- a plug-in that declares the name of a built-in (a reward of the ``migr`` distribution) is *shadowed*: a
  :class:`RewardRegistryWarning` names both providers and the built-in is used;
- two plug-ins that declare the same name are *ambiguous*: a warning names both at discovery, and asking for
  that name raises :class:`DuplicateRewardError` naming both, until one is uninstalled. Other rewards work.

A plug-in whose import fails raises :class:`RewardImportError` when asked for, naming the reward and its
package; :meth:`RewardRegistry.check` imports every reward, warns about each failure by name, and keeps them
in :meth:`RewardRegistry.import_errors`, without disabling the others.

``python -m src.registry`` prints the table of rewards with their providers (``--check`` imports each).

Example:
    >>> "answer" in available_rewards()
    True
    >>> reward_provenance("answer")["object"]
    'rewards.answer:AnswerReward'
    >>> get_reward("answr")
    Traceback (most recent call last):
    ...
    src.registry.UnknownRewardError: Unknown reward 'answr'. Did you mean 'answer'? Available: answer, ...
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from rewards.base import Reward

GROUP = "migr.rewards"
BUILTIN_DISTRIBUTION = "migr"


class RewardRegistryWarning(UserWarning):
    """A reward plug-in problem that does not stop the run (shadowed name, duplicate, failed import)."""


class UnknownRewardError(KeyError):
    """No installed distribution declares a reward of that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DuplicateRewardError(LookupError):
    """Two plug-ins declare the same reward name."""


class RewardImportError(ImportError):
    """A declared reward could not be imported or built."""


@dataclass(frozen=True)
class RewardEntry:
    """One declared reward: where it comes from, before anything is imported."""

    name: str
    package: str
    version: str
    object: str
    entry_point: metadata.EntryPoint

    @property
    def builtin(self) -> bool:
        return _normalize(self.package) == BUILTIN_DISTRIBUTION

    def provider(self) -> str:
        """``"package version (module:object)"``, how messages name a provider."""
        return f"{self.package} {self.version} ({self.object})"


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


class RewardRegistry:
    """The rewards declared in an entry-point group; see the module docstring for the collision rules.

    Args:
        group: entry-point group to read.
        entry_points: the entry points to use instead of the installed ones (tests and tools).
    """

    def __init__(self, group: str = GROUP, *, entry_points: Iterable[metadata.EntryPoint] | None = None) -> None:
        self.group = group
        self._given = list(entry_points) if entry_points is not None else None
        self._entries: dict[str, RewardEntry] | None = None
        self._duplicates: dict[str, list[RewardEntry]] = {}
        self._loaded: dict[str, Callable[..., Any]] = {}
        self._import_errors: dict[str, str] = {}

    def refresh(self) -> None:
        """Forget what was discovered and imported (after installing or removing a plug-in)."""
        self._entries = None
        self._duplicates = {}
        self._loaded = {}
        self._import_errors = {}

    def _discover(self) -> dict[str, RewardEntry]:
        if self._entries is not None:
            return self._entries
        found = self._given if self._given is not None else metadata.entry_points(group=self.group)
        by_name: dict[str, list[RewardEntry]] = {}
        for ep in found:
            dist = getattr(ep, "dist", None)
            entry = RewardEntry(
                name=ep.name,
                package=dist.metadata["Name"] if dist is not None else "<unknown package>",
                version=dist.version if dist is not None else "<unknown version>",
                object=ep.value,
                entry_point=ep,
            )
            same = by_name.setdefault(ep.name, [])
            # The same distribution seen twice on sys.path (an egg-info next to a dist-info) is one provider.
            if not any(
                _normalize(e.package) == _normalize(entry.package) and e.object == entry.object for e in same
            ):
                same.append(entry)
        entries: dict[str, RewardEntry] = {}
        for name, providers in sorted(by_name.items()):
            builtins = [e for e in providers if e.builtin]
            plugins = [e for e in providers if not e.builtin]
            if builtins:
                entries[name] = builtins[0]
                for plugin in plugins:
                    warnings.warn(
                        f"reward {name!r} of plug-in {plugin.provider()} is shadowed by the built-in "
                        f"{builtins[0].provider()}; the built-in is used. Rename the plug-in's entry point to use it.",
                        RewardRegistryWarning,
                        stacklevel=3,
                    )
            elif len(plugins) == 1:
                entries[name] = plugins[0]
            else:
                self._duplicates[name] = plugins
                warnings.warn(_duplicate_message(name, plugins), RewardRegistryWarning, stacklevel=3)
        self._entries = entries
        return entries

    def available(self) -> list[str]:
        """Sorted names of every declared reward (ambiguous names included: asking for them fails)."""
        return sorted([*self._discover(), *self._duplicates])

    def entry(self, name: str) -> RewardEntry:
        """The provider of ``name``; unknown and ambiguous names fail with a message that says what to do."""
        entries = self._discover()
        if name in entries:
            return entries[name]
        if name in self._duplicates:
            raise DuplicateRewardError(_duplicate_message(name, self._duplicates[name]))
        names = self.available()
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        listing = ", ".join(names) if names else f"none (no installed package declares the {self.group!r} group)"
        raise UnknownRewardError(f"Unknown reward {name!r}.{hint} Available: {listing}")

    def load(self, name: str) -> Callable[..., Any]:
        """Import the reward's class (or factory); failures raise :class:`RewardImportError` naming the provider."""
        if name in self._loaded:
            return self._loaded[name]
        entry = self.entry(name)
        try:
            factory = entry.entry_point.load()
        except Exception as error:
            self._import_errors[name] = f"{type(error).__name__}: {error}"
            raise RewardImportError(
                f"reward {name!r} from {entry.provider()} failed to import: {type(error).__name__}: {error}"
            ) from error
        if not callable(factory):
            raise RewardImportError(
                f"reward {name!r} from {entry.provider()} is a {type(factory).__name__}, not a class or factory"
            )
        self._loaded[name] = factory
        return factory

    def create(self, name: str, **kwargs: Any) -> Reward:
        """Build reward ``name`` with ``kwargs`` and check that it follows the :class:`~rewards.base.Reward` contract."""
        factory = self.load(name)
        entry = self.entry(name)
        try:
            reward = factory(**kwargs)
        except TypeError as error:
            accepted = _parameters(factory)
            raise TypeError(
                f"reward {name!r} ({entry.object}) could not be built with {sorted(kwargs)}: {error}. "
                f"It accepts: {', '.join(accepted) if accepted else 'no arguments'}"
            ) from error
        if not isinstance(reward, Reward):
            raise TypeError(
                f"reward {name!r} ({entry.object}) built a {type(reward).__name__}, which lacks a `name` "
                "attribute or a `__call__`; see rewards/base.py for the contract"
            )
        if reward.name != name:
            raise ValueError(
                f"reward declared as {name!r} ({entry.provider()}) calls itself {reward.name!r}; "
                "the entry-point name and the class's `name` must be equal (logs and configs use it)"
            )
        return reward

    def provenance(self, name: str) -> dict[str, str]:
        """``{"package", "version", "object"}`` of the provider, as the run config records it."""
        entry = self.entry(name)
        return {"package": entry.package, "version": entry.version, "object": entry.object}

    def check(self) -> dict[str, Callable[..., Any]]:
        """Import every unambiguous reward; warn about each that fails (by name) and return the ones that load."""
        loaded: dict[str, Callable[..., Any]] = {}
        for name in self._discover():
            try:
                loaded[name] = self.load(name)
            except RewardImportError as error:
                warnings.warn(str(error), RewardRegistryWarning, stacklevel=2)
        return loaded

    def import_errors(self) -> dict[str, str]:
        """Rewards whose import failed so far, with the error (name -> ``"ErrorType: message"``)."""
        return dict(self._import_errors)


def _duplicate_message(name: str, providers: list[RewardEntry]) -> str:
    listed = " and ".join(p.provider() for p in providers)
    return (
        f"reward {name!r} is declared by two plug-ins: {listed}. Uninstall one of them or rename its entry point."
    )


def _parameters(factory: Callable[..., Any]) -> list[str]:
    try:
        return [p for p in inspect.signature(factory).parameters if p not in ("args", "kwargs")]
    except (TypeError, ValueError):
        return []


_default = RewardRegistry()


def default_registry() -> RewardRegistry:
    """The process-wide registry of installed rewards."""
    return _default


def get_reward(name: str, **kwargs: Any) -> Reward:
    """Build the installed reward ``name`` (e.g. ``get_reward("modality_grounding", judge=judge)``)."""
    return _default.create(name, **kwargs)


def available_rewards() -> list[str]:
    """Names of every installed reward, sorted."""
    return _default.available()


def reward_provenance(name: str) -> dict[str, str]:
    """Which package and version provide reward ``name``, and the object path."""
    return _default.provenance(name)


def import_errors() -> dict[str, str]:
    """Installed rewards whose import failed so far (see :meth:`RewardRegistry.check`)."""
    return _default.import_errors()


def refresh_rewards() -> None:
    """Re-read installed metadata (after ``pip install`` of a plug-in in a running process)."""
    _default.refresh()


def main(argv: list[str] | None = None) -> None:
    """``python -m src.registry [--check]``: list installed rewards and who provides them."""
    parser = argparse.ArgumentParser(prog="python -m src.registry", description=main.__doc__)
    parser.add_argument("--check", action="store_true", help="import every reward and report failures")
    args = parser.parse_args(argv)
    registry = default_registry()
    loaded = registry.check() if args.check else {}
    rows = []
    for name in registry.available():
        try:
            entry = registry.entry(name)
        except DuplicateRewardError:
            rows.append((name, "-", "-", "-", "DUPLICATE"))
            continue
        status = "builtin" if entry.builtin else "plug-in"
        if args.check:
            status += ", ok" if name in loaded else ", IMPORT ERROR"
        rows.append((name, entry.package, entry.version, entry.object, status))
    header = ("reward", "package", "version", "object", "status")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    for name, error in registry.import_errors().items():
        print(f"\n{name}: {error}")


if __name__ == "__main__":
    main()
