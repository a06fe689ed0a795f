"""`make demo` runs the main job: it must keep passing."""

from __future__ import annotations

from pathlib import Path

from printcloud.core.settings import Settings
from printcloud.demo import run_demo


def test_demo_passes(tmp_path: Path) -> None:
    assert run_demo(Settings(data_dir=tmp_path, log_level="ERROR")) == 0
