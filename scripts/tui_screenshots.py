"""Save an SVG screenshot of every screen of the TUI on a workspace, at 120x40 (for docs/tui/).

    python scripts/tui_screenshots.py WORKSPACE [OUT_DIR]     (default OUT_DIR: docs/tui)

The app runs headless under Textual's test pilot; the workspace is only read. The sample shown
in detail is the first one with a verdict (else the first sample).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from looptool.config import DB_FILE  # noqa: E402
from looptool.store import Store  # noqa: E402
from looptool.tui.app import LoopToolApp  # noqa: E402


def _sample_to_show(workspace: Path) -> str | None:
    with Store.open(workspace / DB_FILE) as store:
        for r in reversed(store.rounds()):
            verdicts = store.verdicts(r.n)
            if verdicts:
                return verdicts[0].sample_id
        rows, _ = store.sample_page(limit=1)
        return rows[0]["id"] if rows else None


async def _settle(pilot, seconds: float = 1.5) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(seconds)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def main(workspace: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sample = _sample_to_show(workspace)
    app = LoopToolApp(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        for key, name in (("1", "dashboard"), ("2", "samples"), ("3", "traces"), ("4", "review"), ("5", "config")):
            await pilot.press(key)
            await _settle(pilot, 3.0 if name == "config" else 1.5)
            app.save_screenshot(f"{name}.svg", str(out))
            print(out / f"{name}.svg")
        if sample is not None:
            await pilot.press("2")
            app.open_sample(sample)
            await _settle(pilot)
            app.save_screenshot("sample_detail.svg", str(out))
            print(out / "sample_detail.svg")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else Path("docs/tui")))
