"""A writer for the TUI tests, in a process of its own. `hammer_writer.py WS SECONDS` appends
events as fast as it can for SECONDS; `hammer_writer.py WS 0 STAGE` sets round 2's stage to STAGE
and exits."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's looptool, not an installed one

from looptool.store import Store  # noqa: E402


def main(workspace: Path, seconds: float, stage: str | None) -> None:
    with Store.open(workspace / "looptool.db") as store:
        if stage is not None:
            info = store.get_round(2)
            store.upsert_round(info.model_copy(update={"stage": stage}))
            return
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            with store.transaction():
                for _ in range(20):
                    store.log_event("info", "hammer", f"write {n}")
                    n += 1


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
