"""The names after ``FAMILY:`` in ``env.id`` (Atari games, Mario levels), found without importing the envs.

Tab completion and ``--dry-run`` call these, so they read ale-py's ROM folder instead of importing ale-py
(0.2 s, numpy) and spell out Mario's level names instead of importing gym-super-mario-bros.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from rlcli.config.fields import ConfigError, close_match


def rom_name(game: str) -> str:
    """``MontezumaRevenge`` -> ``montezuma_revenge`` (ale-py's ROM and envpool's task names)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()


def game_from_id(env_id: str) -> str:
    """``atari:MontezumaRevenge`` -> ``MontezumaRevenge`` (also accepts ``...NoFrameskip-v4`` / ``-v5``)."""
    game = env_id.split(":", 1)[1] if ":" in env_id else ""
    game = re.sub(r"(NoFrameskip)?-v\d+$", "", game)
    if not game:
        raise ConfigError(f"environment '{env_id}' names no game; use e.g. atari:MontezumaRevenge or atari:Pong")
    return game


def ale_rom_dir() -> Path | None:
    """ale-py's ROM folder (``ALE_ROMS_DIR`` when set, as ale-py reads it), or None when ale-py is missing."""
    if os.environ.get("ALE_ROMS_DIR"):
        return Path(os.environ["ALE_ROMS_DIR"])
    spec = importlib.util.find_spec("ale_py")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "roms"


def atari_games() -> list[str]:
    """Games with a ROM in ale-py, CamelCase as in ``atari:MontezumaRevenge``; empty without ale-py."""
    rom_dir = ale_rom_dir()
    if rom_dir is None or not rom_dir.is_dir():
        return []
    return sorted("".join(part.capitalize() for part in p.stem.split("_")) for p in rom_dir.glob("*.bin"))


def check_atari_id(env_id: str) -> None:
    game = game_from_id(env_id)
    rom_dir = ale_rom_dir()
    if rom_dir is None or not rom_dir.is_dir():
        return  # no ale-py: the package check names what to install
    if not (rom_dir / f"{rom_name(game)}.bin").is_file():
        raise ConfigError(f"unknown Atari game '{game}'; ale-py has no ROM '{rom_name(game)}'"
                          f"{close_match(game, atari_games())}")


def mario_levels() -> list[str]:
    """gym-super-mario-bros 7.4's env names: the whole game or one world-stage, ROM modes v0 to v3."""
    whole = [f"SuperMarioBros-v{v}" for v in range(4)]
    stages = [f"SuperMarioBros-{w}-{s}-v{v}" for w in range(1, 9) for s in range(1, 5) for v in range(4)]
    return whole + stages


def check_mario_id(env_id: str) -> None:
    if ":" in env_id and env_id.split(":", 1)[1] not in mario_levels():
        raise ConfigError(f"unknown Mario environment '{env_id}'; use mario, mario:SuperMarioBros-v0 or "
                          f"mario:SuperMarioBros-<world>-<stage>-v<0-3>")
