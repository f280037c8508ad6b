"""A fake, fast loop for the TUI tests: opens the workspace store and moves round 3 through the
stages, one every 0.2 s, logging an event for each, then exits. Run as
`python fake_loop.py WORKSPACE [CYCLES]`; SIGTERM ends it like the real loop."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's looptool, not an installed one

from looptool.schema import ROUND_STAGES, Round  # noqa: E402
from looptool.store import Store  # noqa: E402


def main(workspace: Path, cycles: int) -> None:
    for i in range(cycles):
        stage = ROUND_STAGES[i % len(ROUND_STAGES)]
        with Store.open(workspace / "looptool.db") as store:
            info = store.get_round(3) or Round(n=3)
            store.upsert_round(info.model_copy(update={"status": "running", "stage": stage}))
            store.log_event("info", "loop", f"round 3: {stage} (fake)")
        time.sleep(0.2)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 10)
