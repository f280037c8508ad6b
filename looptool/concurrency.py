"""Running many model requests at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable


async def run_all(jobs: Iterable[Awaitable[None]]) -> None:
    """Run the jobs concurrently; the first that fails cancels the rest and its error is raised.

    Jobs write their results as they finish, so what finished before a failure (a server gone,
    say) is kept and a later run asks only for the rest.
    """
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
