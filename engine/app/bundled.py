"""Where the bundled definitions live, and which files of a folder are request types."""

from __future__ import annotations

from pathlib import Path

from engine.errors import InvalidValue

ORGANISATION_FILE = "organisation.yaml"


def bundled_dir() -> Path:
    import workflows

    return Path(workflows.__file__).parent


def definition_files(folder: str | Path) -> list[str]:
    """The request-type files of a folder (*.yaml, *.yml), without the organisation file."""
    path = Path(folder)
    if not path.is_dir():
        raise InvalidValue(f"no such folder: {folder}")
    files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.name != ORGANISATION_FILE)
    if not files:
        raise InvalidValue(f"no request-type files (*.yaml) in {folder}")
    return [str(p) for p in files]


def sample_paths() -> tuple[str, list[str]]:
    folder = bundled_dir()
    return str(folder / ORGANISATION_FILE), definition_files(folder)
