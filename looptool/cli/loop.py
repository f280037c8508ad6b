"""`looptool loop`, `pause`, `probe` and `review`: run the closed loop and steer it.

The top-level commands here are registered on `app` in looptool/cli/__init__.py, in the order
`looptool --help` lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from looptool.cli.common import Workspace, TrainRound, _user_errors, _open_workspace
from looptool.config import WorkspaceConfig
from looptool.schema import EvalMetrics, RoundMetrics
from looptool.store import Store, StoreError


@_user_errors
def loop_command(
    workspace: Workspace = Path("."),
    rounds: Annotated[int | None, typer.Option(min=1, help="Run up to this round (default: \\[loop] rounds).")] = None,
    arm: Annotated[str, typer.Option(
        "--arm", help="Which arm to run: 'loop' (the default), 'static' (the paper's baseline w/o iterations: the "
        "whole seed pool every round, no probing, verification or expansion), or an ablation: 'no-jglv' (no judge: "
        "every mismatch is a model error), 'random-hppl' (random correct samples instead of high-perplexity ones), "
        "'no-edde' (no expansions), 'repeat-errors' (error seeds repeated instead of expanded). An arm other than "
        "the loop runs in the folder of its name in the workspace, made on first use from the seed state; it "
        "spends exactly the loop's GRPO steps in each round, so the loop must have trained a round first.",
    )] = "loop",
    static: Annotated[bool, typer.Option("--static", help="The same as --arm static.")] = False,
) -> None:
    """Run the closed loop: train -> probe -> verify -> expand -> assemble -> evaluate, round after
    round (\\[loop] in looptool.toml), or one of the arms it is compared with (--arm). Resumable:
    kill it at any point and run it again; it goes on from the stage that was running. With
    \\[loop] review on, it pauses after the judge's verdicts until 'looptool review --accept'.
    'looptool pause' (or p in 'looptool tui') stops it after the stage it is in; run it again to go
    on."""
    from looptool.loop.arms import LOOP, STATIC, ArmError, arm_of, check_arm, make_arm_workspace
    from looptool.loop.graph import run_loop
    from looptool.serving.server import ServerManager

    arm = check_arm(STATIC if static else arm)
    config, db_path = _open_workspace(workspace)
    own = arm_of(workspace)
    if own != LOOP:  # -w names an arm's own workspace: run that arm there
        if arm not in (LOOP, own):
            raise ArmError(f"{workspace} is the {own!r} arm's workspace; name the loop's workspace to run {arm!r}")
        arm = own
    elif arm != LOOP:
        ServerManager(workspace, config.serving).stop_all()  # the arm starts servers of its own
        workspace = make_arm_workspace(workspace, arm)
        typer.echo(f"{arm} arm in {workspace}")
        config, db_path = _open_workspace(workspace)
    try:
        outcome = run_loop(workspace, config, rounds=rounds, arm=arm, log=typer.echo)
    except KeyboardInterrupt:
        _say_what_is_left_running(workspace, config, err=True)
        raise
    with Store.open(db_path) as store:
        for info in store.rounds():
            at = f" at {info.stage}" if info.status != "done" and info.stage else ""
            typer.echo(f"round {info.n}: {info.status}{at}"
                       + "".join(f"; {k} {v}" for k, v in _round_summary(info.metrics).items()))
    if outcome.paused:
        typer.echo(f"paused for review of round {outcome.round}'s verdicts: 'looptool review -w {workspace}'")
    _say_what_is_left_running(workspace, config)


def _say_what_is_left_running(workspace: Path, config: WorkspaceConfig, *, err: bool = False) -> None:
    """When the loop ends -- finished, paused, or interrupted with Ctrl-C -- say which of the
    workspace's vLLM servers it left running (they outlive it on purpose) and how to stop them."""
    from looptool.serving.server import left_running

    line = left_running(workspace, config)
    if line:
        typer.echo(line, err=err)


def _round_summary(metrics: RoundMetrics) -> dict[str, str]:
    out: dict[str, str] = {}
    if metrics.composition is not None:
        out["data"] = ", ".join(f"{k} {v}" for k, v in metrics.composition.items())
    if metrics.probe is not None:
        probe = metrics.probe
        out["probe"] = f"mastered {probe.mastered}, boundary {probe.boundary}, failed {probe.failed}"
    if metrics.expansion is not None:
        out["expansion"] = ", ".join(f"{k} {v}" for k, v in metrics.expansion.items())
    ev = metrics.eval or EvalMetrics()
    if ev.heldout is not None:
        out["held-out"] = f"{100 * ev.heldout:.1f}%"
    if ev.bfcl:
        out["BFCL subset"] = f"{100 * (ev.bfcl.get('all') or 0):.1f}%"
    return out


@_user_errors
def pause_command(workspace: Workspace = Path(".")) -> None:
    """Ask the loop running on this workspace to stop after the stage it is in (its checkpoint
    saved); 'looptool loop' goes on from the next stage. The request is the file loop.pause in the
    workspace; with no loop running, nothing is asked."""
    from looptool.loop.control import request_pause, running_loop_pid

    _open_workspace(workspace)
    pid = running_loop_pid(workspace)
    if pid is None:
        typer.echo(f"no loop is running on {workspace}: nothing to pause")
        return
    request_pause(workspace)
    typer.echo(f"pause requested: the loop (pid {pid or '?'}) stops after its current stage; 'looptool loop' goes "
               "on from there")


@_user_errors
def probe_command(workspace: Workspace = Path("."), round: TrainRound = 1) -> None:
    """Probe a trained round: decode its samples greedily with its adapter and sort them into
    mastered / boundary (correct, high perplexity) / failed. Resumable; the loop runs this itself."""
    from looptool.loop.probe import probe_round

    config, _ = _open_workspace(workspace)
    summary = probe_round(workspace, config, round, log=lambda line: typer.echo(line, err=True))
    cut = "" if summary.cut is None else f"; boundary above perplexity {summary.cut:.3f}"
    typer.echo(f"round {round}: " + ", ".join(f"{k} {v}" for k, v in summary.counts.items()) + cut)


@_user_errors
def review_command(
    workspace: Workspace = Path("."),
    round: Annotated[int | None, typer.Option("--round", "-r", min=1, help="Round (default: the latest with verdicts).")] = None,
    override: Annotated[list[str] | None, typer.Option(
        help="SAMPLE_ID=VERDICT (LABEL_WRONG, PRED_WRONG, BOTH_OK, BOTH_WRONG, or 'judge' to clear); the id or a "
        "unique prefix of it; repeatable. Every override is checked before any is recorded: one that is wrong "
        "records none.")] = None,
    accept: Annotated[bool, typer.Option("--accept", help="Accept the verdicts (with any overrides) and go on with the loop.")] = False,
) -> None:
    """List a round's judge verdicts with the label and the prediction each is about, override some,
    and (--accept) let the paused loop apply them. An override is kept for the label it was about:
    while a sample keeps that label, a later round reuses the decision instead of asking the judge."""
    from looptool.loop.control import review_pending
    from looptool.loop.graph import run_loop
    from looptool.review import read_overrides, review_items, review_lines

    config, db_path = _open_workspace(workspace, write=bool(override or accept))
    with Store.open(db_path) as store:
        rounds_with = store.verdict_rounds()
        if not rounds_with:
            raise StoreError(f"{workspace} has no verdicts to review")
        if round is not None and round not in rounds_with:
            raise StoreError(f"round {round} has no verdicts; rounds with verdicts: "
                             + ", ".join(map(str, rounds_with)))
        r = round or rounds_with[-1]
        decisions = read_overrides(override or [], [v.sample_id for v in store.verdicts(r)], r)
        if decisions:
            store.set_human_overrides(r, decisions)
        items = review_items(store, r)
    for line in review_lines(r, items, waiting=review_pending(workspace) == r):
        typer.echo(line)
    if decisions:
        typer.echo(f"\n{len(decisions)} override{'' if len(decisions) == 1 else 's'} recorded for round {r}")
    if accept:
        outcome = run_loop(workspace, config, resume_review=True, log=typer.echo)
        typer.echo(f"loop: round {outcome.round}, " + ("finished" if outcome.finished else
                                                        "paused again" if outcome.paused else "stopped"))
        _say_what_is_left_running(workspace, config)
