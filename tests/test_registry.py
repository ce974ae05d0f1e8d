"""The reward registry: lookup messages, collisions, import failures, provenance, and a real installed plug-in."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from importlib import metadata
from pathlib import Path

import pytest

from src.registry import (
    GROUP,
    DuplicateRewardError,
    RewardImportError,
    RewardRegistry,
    RewardRegistryWarning,
    UnknownRewardError,
    available_rewards,
    get_reward,
    refresh_rewards,
    reward_provenance,
)
from src.reward_set import RewardSet, RewardSpec
from tests.rewards.conftest import make_batch

BUILTINS = ["answer", "format", "format_r1omni", "modality_grounding", "modality_order"]

PLUGIN_CODE = """
class LengthReward:
    name = "length"

    def __init__(self, max_chars=10):
        self.max_chars = max_chars

    def __call__(self, *, completions, **batch):
        return [1.0 if len(text) <= self.max_chars else 0.0 for text in completions]


class ShadowAnswer:
    name = "answer"

    def __call__(self, *, completions, **batch):
        return [42.0 for _ in completions]


class Misnamed:
    name = "something_else"

    def __call__(self, *, completions, **batch):
        return [0.0 for _ in completions]
"""


def builtin_entry_points() -> list[metadata.EntryPoint]:
    return list(metadata.distribution("migr").entry_points.select(group=GROUP))


def write_distribution(site: Path, name: str, version: str, entry_points: dict[str, str], modules: dict[str, str]):
    """An installed distribution as pip leaves it: a dist-info folder plus top-level modules."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "\n".join(f"{key} = {value}" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{lines}\n")
    for module, code in modules.items():
        (site / f"{module}.py").write_text(code)


def registry_with(site: Path) -> RewardRegistry:
    plugins = [
        ep for dist in metadata.distributions(path=[str(site)]) for ep in dist.entry_points.select(group=GROUP)
    ]
    return RewardRegistry(entry_points=builtin_entry_points() + plugins)


@pytest.fixture
def site(tmp_path, monkeypatch):
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    yield path
    for module in ("plugin_a", "plugin_b", "plugin_broken"):
        sys.modules.pop(module, None)


def test_builtins_are_installed_with_provenance():
    assert set(BUILTINS) <= set(available_rewards())
    assert reward_provenance("modality_order") == {
        "package": "migr",
        "version": metadata.version("migr"),
        "object": "rewards.modality_order:ModalityOrderReward",
    }


def test_unknown_name_suggests_the_closest_and_lists_all():
    with pytest.raises(UnknownRewardError) as info:
        get_reward("modality_ordr")
    message = str(info.value)
    assert message.startswith("Unknown reward 'modality_ordr'. Did you mean 'modality_order'? Available: answer, ")
    assert all(name in message for name in BUILTINS)


def test_unknown_name_without_a_close_match_has_no_suggestion():
    with pytest.raises(UnknownRewardError, match=r"^Unknown reward 'zzz'\. Available: "):
        get_reward("zzz")


def test_get_reward_passes_constructor_arguments_and_checks_them():
    reward = get_reward("modality_grounding", multi_label=True)
    assert reward.multi_label is True
    with pytest.raises(
        TypeError, match=r"reward 'answer' \(rewards.answer:AnswerReward\) could not be built with"
    ):
        get_reward("answer", judge=object())


def test_plugin_reward_is_found_with_its_provenance(site):
    write_distribution(site, "plugin-a", "1.2.0", {"length": "plugin_a:LengthReward"}, {"plugin_a": PLUGIN_CODE})
    registry = registry_with(site)
    assert "length" in registry.available()
    reward = registry.create("length", max_chars=3)
    assert reward(completions=["abc", "abcd"]) == [1.0, 0.0]
    assert registry.provenance("length") == {
        "package": "plugin-a",
        "version": "1.2.0",
        "object": "plugin_a:LengthReward",
    }


def test_plugin_shadowing_a_builtin_warns_and_the_builtin_wins(site):
    write_distribution(site, "plugin-a", "1.0", {"answer": "plugin_a:ShadowAnswer"}, {"plugin_a": PLUGIN_CODE})
    registry = registry_with(site)
    with pytest.warns(
        RewardRegistryWarning,
        match=r"reward 'answer' of plug-in plugin-a 1.0 \(plugin_a:ShadowAnswer\) is shadowed by the built-in migr",
    ):
        provider = registry.provenance("answer")
    assert provider["package"] == "migr"
    assert registry.create("answer")(**make_batch(["<answer>fear</answer>"])) == [1.0]


def test_two_plugins_with_one_name_fail_naming_both_and_leave_the_rest_working(site):
    write_distribution(site, "plugin-a", "1.0", {"length": "plugin_a:LengthReward"}, {"plugin_a": PLUGIN_CODE})
    write_distribution(site, "plugin-b", "2.0", {"length": "plugin_b:LengthReward"}, {"plugin_b": PLUGIN_CODE})
    registry = registry_with(site)
    with pytest.warns(RewardRegistryWarning, match="declared by two plug-ins"):
        names = registry.available()
    assert "length" in names
    with pytest.raises(DuplicateRewardError) as info:
        registry.create("length")
    assert "plugin-a 1.0 (plugin_a:LengthReward)" in str(info.value)
    assert "plugin-b 2.0 (plugin_b:LengthReward)" in str(info.value)
    assert registry.create("answer").name == "answer"


def test_a_plugin_that_fails_to_import_is_reported_by_name(site):
    write_distribution(
        site,
        "plugin-broken",
        "0.1",
        {"broken": "plugin_broken:Broken", "missing": "plugin_nowhere:Reward"},
        {"plugin_broken": "raise RuntimeError('plug-in bug at import')\n"},
    )
    registry = registry_with(site)
    with pytest.warns(RewardRegistryWarning) as caught:
        loaded = registry.check()
    assert set(BUILTINS) <= set(loaded)  # the others still load
    assert "broken" not in loaded and "missing" not in loaded
    messages = [str(w.message) for w in caught]
    assert any("reward 'broken' from plugin-broken 0.1" in m and "plug-in bug at import" in m for m in messages)
    assert registry.import_errors() == {
        "broken": "RuntimeError: plug-in bug at import",
        "missing": "ModuleNotFoundError: No module named 'plugin_nowhere'",
    }
    with pytest.raises(
        RewardImportError,
        match=r"reward 'broken' from plugin-broken 0.1 \(plugin_broken:Broken\) failed to import",
    ):
        registry.create("broken")


def test_entry_point_name_must_equal_the_reward_name(site):
    write_distribution(site, "plugin-a", "1.0", {"other": "plugin_a:Misnamed"}, {"plugin_a": PLUGIN_CODE})
    with pytest.raises(ValueError, match=r"reward declared as 'other' .* calls itself 'something_else'"):
        registry_with(site).create("other")


def test_an_object_without_the_contract_is_rejected(site):
    write_distribution(
        site, "plugin-a", "1.0", {"nothing": "plugin_a:NotAReward"}, {"plugin_a": "class NotAReward:\n    pass\n"}
    )
    with pytest.raises(TypeError, match=r"lacks a `name` attribute or a `__call__`"):
        registry_with(site).create("nothing")


def test_registry_cli_lists_rewards(capsys):
    from src.registry import main

    main(["--check"])
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["reward", "package", "version", "object", "status"]
    assert "modality_order      migr" in out and "builtin, ok" in out


# A real plug-in: two distributions with a pyproject each, installed by pip into a temporary target (offline,
# about a second: no build isolation, setuptools from this environment).
PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "{version}"

[tool.setuptools]
py-modules = ["{module}"]

[project.entry-points."migr.rewards"]
{entries}
"""


def _project(root: Path, name: str, version: str, module: str, code: str, entries: dict[str, str]) -> Path:
    folder = root / name
    folder.mkdir()
    lines = "\n".join(f'{key} = "{value}"' for key, value in entries.items())
    (folder / "pyproject.toml").write_text(
        PYPROJECT.format(name=name, version=version, module=module, entries=lines)
    )
    (folder / f"{module}.py").write_text(textwrap.dedent(code))
    return folder


def test_pip_installed_plugin_is_found_through_the_registry(tmp_path):
    projects = [
        _project(
            tmp_path,
            "migr-length-reward",
            "0.3.0",
            "plugin_a",
            PLUGIN_CODE,
            {
                "length": "plugin_a:LengthReward",
                "answer": "plugin_a:ShadowAnswer",
                "twin": "plugin_a:LengthReward",
            },
        ),
        _project(
            tmp_path,
            "migr-other-plugin",
            "1.0.0",
            "plugin_b",
            "raise ImportError('needs a package that is not installed')\n",
            {"twin": "plugin_b:Twin", "broken": "plugin_b:Broken"},
        ),
    ]
    target = tmp_path / "site"
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
    ]
    subprocess.run([*command, "--target", str(target), *map(str, projects)], check=True, capture_output=True)

    sys.path.insert(0, str(target))
    try:
        refresh_rewards()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            names = available_rewards()
        assert {"length", "twin", "broken", *BUILTINS} <= set(names)
        assert reward_provenance("length") == {
            "package": "migr-length-reward",
            "version": "0.3.0",
            "object": "plugin_a:LengthReward",
        }
        messages = " | ".join(str(w.message) for w in caught)
        assert "shadowed by the built-in" in messages and "declared by two plug-ins" in messages
        assert reward_provenance("answer")["package"] == "migr"  # the built-in wins
        with pytest.raises(DuplicateRewardError, match=r"migr-length-reward 0\.3\.0.*migr-other-plugin 1\.0\.0"):
            get_reward("twin")
        with pytest.raises(RewardImportError, match=r"reward 'broken' from migr-other-plugin 1\.0\.0"):
            get_reward("broken")

        # The plug-in works end to end in a reward set next to a built-in.
        rewards = RewardSet([RewardSpec("length", 0.5, {"max_chars": 25}), RewardSpec("answer")])
        result = rewards(**make_batch(["<answer>fear</answer>", "<answer>sad</answer> and more"]))
        assert result.total == [1.5, 0.0]
        assert rewards.provenance["length"] == {
            "package": "migr-length-reward",
            "version": "0.3.0",
            "object": "plugin_a:LengthReward",
            "weight": 0.5,
        }
    finally:
        sys.path.remove(str(target))
        for module in ("plugin_a", "plugin_b"):
            sys.modules.pop(module, None)
        refresh_rewards()
    assert "length" not in available_rewards()
