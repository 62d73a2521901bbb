"""``dipseg bench``: the command-line front of :func:`dipseg.eval.runner.run_bench`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..api import MAX_SEED
from .common import OUT_HELP, check_out_dir, fail, user_errors


def bench_cmd(
    dataset: str = typer.Option(..., "--dataset", "-d", help="voc, grabcut, camvid or coco-mval (clicks only)."),
    root: Optional[Path] = typer.Option(None, "--root", help="Dataset folder (default: ../shared/data/<dataset> or $DIPSEG_<DATASET>_ROOT)."),
    split: Optional[str] = typer.Option(None, "--split", help="Split list, e.g. val (the dataset's default if omitted)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N images of the split."),
    methods: Optional[str] = typer.Option(None, "--methods", "-m", help="Comma-separated: dipseg, dipseg-norgb, dipseg:PRESET, grabcut, random-walker, trainable."),
    sweep: Optional[Path] = typer.Option(None, "--sweep", metavar="FILE", help="TOML file of named method variants (preset, fit and network options) and optionally labels; added after --methods. See docs/study.md."),
    labels: Optional[List[str]] = typer.Option(None, "--labels", "-l", help="SAMPLER:N1,N2,... pixels per class (uniform, blobs), or scribbles[:set-1,set-2] (GrabCut). Repeatable. Not with --protocol clicks."),
    protocol: str = typer.Option("labels", "--protocol", help="labels (sparse labels drawn from ground truth), clicks (a robot clicks until IoU 90 %: NoC@85/90) or transfer (label frame t of a sequence, segment frames t+k; docs/transfer.md)."),
    starts: Optional[str] = typer.Option(None, "--starts", metavar="T1,T2,...", help="transfer: start frames (positions in the sorted ids; default 0,20,40,70)."),
    distances: Optional[str] = typer.Option(None, "--distances", metavar="K1,K2,...", help="transfer: frame distances (default 1,5,15,30,60; pairs past the end are left out)."),
    finetune_steps: int = typer.Option(20, "--finetune-steps", min=1, help="transfer: steps of the dipseg-transfer-ft fine-tune."),
    warm: str = typer.Option("both", "--warm", help="clicks: DIPSEG refits from scratch at every click (off), continues its previous fit (on), or both."),
    max_clicks: int = typer.Option(20, "--max-clicks", min=1, max=100, help="clicks: clicks per object at most."),
    robot: str = typer.Option("oracle", "--robot", help="clicks: oracle (at the largest error), suggest (where the tool suggests; DIPSEG) or both."),
    seed: int = typer.Option(0, "--seed", "-s", min=0, max=MAX_SEED, help=f"First seed, 0..{MAX_SEED}."),
    seeds: int = typer.Option(1, "--seeds", min=1, help="Number of seeds: --seed, --seed+1, ..."),
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help=f"{OUT_HELP}; rerun with the same folder to resume."),
    executor: str = typer.Option("local", "--executor", help="local (process pool) or ray."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Local worker processes (default: one per core, 1 thread each)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to join (host:6379 or ray://host:10001); a local Ray instance if omitted."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (DIPSEG only; with ray, cuda requests a GPU per DIPSEG task)."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="DIPSEG preset for methods given without :PRESET (with --protocol clicks: clicks)."),
    iterations: Optional[int] = typer.Option(None, "--iterations", "-n", min=1, help="Override the DIPSEG preset's steps (>= 1, as for segment)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads per worker (default: cores // workers; under ray: --cpus-per-task); recorded in every row."),
    cpus_per_task: float = typer.Option(1.0, "--cpus-per-task", min=0.01, help="Ray: CPUs requested per job."),
    gpus_per_task: float = typer.Option(1.0, "--gpus-per-task", min=0.0, help="Ray with --device cuda: GPUs per DIPSEG job (fractions share a GPU)."),
    examples: int = typer.Option(4, "--examples", min=0, help="Images shown in examples.png (0: no figure)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Benchmark methods on a dataset with identical sparse labels, or by robot clicks; resumable.

    Writes OUT/results.jsonl (one row per image, method, sampler, budget, seed),
    summary.csv, summary.md, miou_vs_budget.png and examples.png. With --protocol clicks:
    one row per image, method and click, summary_clicks.csv/.md and miou_vs_clicks.png.
    """
    if protocol == "transfer":
        _transfer(dataset, root, split, methods, labels, seed, seeds, out, device, preset, iterations, threads,
                  starts, distances, finetune_steps, quiet)
        return
    if protocol == "clicks":
        from ..eval.interactive import protocol_preset

        preset = protocol_preset(preset)
    with user_errors():
        methods, file_labels = _methods(methods, sweep, preset, iterations)
    if protocol == "clicks":
        _clicks(dataset, root, limit, methods, labels, seed, seeds, out, executor, workers, ray_address, device,
                preset, iterations, threads, cpus_per_task, gpus_per_task, warm, max_clicks, robot, quiet)
        return
    if protocol != "labels":
        fail(f"--protocol must be labels, clicks or transfer, got {protocol!r}")
    labels = labels or file_labels
    if not labels:
        fail("no --labels given; e.g. --labels uniform:1,10,100 --labels blobs:30,100,300")
    from ..eval.runner import run_bench

    written = [0]

    def count(_row: dict) -> None:
        written[0] += 1

    try:
        with user_errors():
            check_out_dir(out)
            report = run_bench(
                dataset, methods, labels, out, root=root, split=split, limit=limit,
                seeds=list(range(seed, seed + seeds)), executor=executor, workers=workers,
                ray_address=ray_address, device=device, preset=preset,
                fit_overrides={"iterations": iterations} if iterations is not None else None,
                threads=threads, cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task,
                examples=examples, progress=not quiet, on_row=count,
                log=lambda msg: typer.echo(msg, err=True),
            )
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        typer.echo(
            f"\ninterrupted: {written[0]} new row(s) are safe in {out / 'results.jsonl'}; "
            "rerun the same command to resume",
            err=True,
        )
        raise typer.Exit(130) from None
    except RuntimeError as exc:
        fail(str(exc).splitlines()[0])

    typer.echo((report.out / "summary.md").read_text().split("\n\n")[1])
    typer.echo(
        f"{report.jobs} jobs: {report.skipped} already done, {report.ran} run now, "
        f"{len(report.failed)} failed, in {report.seconds:.1f} s"
    )
    if report.other_rows:
        typer.echo(f"note: results.jsonl also holds {report.other_rows} row(s) of other sweeps (kept, not in this summary)")
    for name, path in report.files.items():
        typer.echo(f"  {name:12s} {path}")
    if report.failed:
        job, msg = report.failed[0]
        typer.echo(
            f"dipseg: error: {len(report.failed)} job(s) failed (first: {job.image} {job.method.label} "
            f"{job.sampler}:{job.budget}: {msg}); rerun to retry them",
            err=True,
        )
        raise typer.Exit(1)


def _methods(methods: str | None, sweep: Path | None, preset: str | None, iterations: int | None) -> tuple[list, list]:
    """``--methods`` and the variants of ``--sweep``, in that order, and the sweep file's labels."""
    if not methods and sweep is None:
        raise ValueError("no --methods given; e.g. --methods dipseg,grabcut,random-walker (or --sweep FILE)")
    from ..eval.specs import parse_methods, parse_sweep

    fit = {"iterations": iterations} if iterations is not None else None
    specs = parse_methods(methods, preset, fit) if methods else []
    file_labels: list[str] = []
    if sweep is not None:
        variants, file_labels = parse_sweep(sweep, preset, fit)
        taken = {s.label for s in specs}
        clash = [v.label for v in variants if v.label in taken]
        if clash:
            raise ValueError(f"--sweep {sweep}: name {clash[0]!r} is also in --methods; rename it")
        specs += variants
    return specs, file_labels


def _clicks(dataset, root, limit, methods, labels, seed, seeds, out, executor, workers, ray_address, device,
            preset, iterations, threads, cpus_per_task, gpus_per_task, warm, max_clicks, robot, quiet) -> None:
    """``--protocol clicks``: :func:`dipseg.eval.interactive.run_clicks`."""
    from ..eval.interactive import run_clicks

    if labels:
        fail("--labels does not apply to --protocol clicks (the robot makes the labels)")
    try:
        with user_errors():
            check_out_dir(out)
            report = run_clicks(
                dataset, methods, out, root=root, limit=limit, seeds=list(range(seed, seed + seeds)), warm=warm,
                max_clicks=max_clicks, robot=robot, executor=executor, workers=workers, ray_address=ray_address, device=device,
                preset=preset, fit_overrides={"iterations": iterations}, threads=threads,
                cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task, progress=not quiet,
                log=lambda msg: typer.echo(msg, err=True),
            )
    except KeyboardInterrupt:
        typer.echo(f"\ninterrupted: finished sessions are safe in {out / 'results.jsonl'}; rerun the same command "
                   "to resume", err=True)
        raise typer.Exit(130) from None
    typer.echo((report.out / "summary_clicks.md").read_text().split("\n\n")[1])
    typer.echo(f"{report.jobs} sessions: {report.skipped} already done, {report.ran} run now, "
               f"{len(report.failed)} failed, in {report.seconds:.1f} s")
    for name, path in report.files.items():
        typer.echo(f"  {name:12s} {path}")
    if report.failed:
        job, msg = report.failed[0]
        typer.echo(f"dipseg: error: {len(report.failed)} session(s) failed (first: {job.image} {job.method.label}: "
                   f"{msg}); rerun to retry them", err=True)
        raise typer.Exit(1)



def _transfer(dataset, root, split, methods, labels, seed, seeds, out, device, preset, iterations, threads,
              starts, distances, finetune_steps, quiet) -> None:
    """``--protocol transfer``: :func:`dipseg.eval.transfer.run_transfer_bench`."""
    from ..eval.transfer import run_transfer_bench

    if not labels:
        fail("no --labels given; e.g. --labels blobs:100 --labels uniform:10")
    try:
        with user_errors():
            check_out_dir(out)
            report = run_transfer_bench(
                dataset, labels, out, root=root, split=split, methods=methods, starts=starts, distances=distances,
                seeds=list(range(seed, seed + seeds)), preset=preset,
                fit_overrides={"iterations": iterations} if iterations is not None else None,
                device=device, threads=threads, finetune_steps=finetune_steps,
                progress=not quiet, log=lambda msg: typer.echo(msg, err=True),
            )
    except KeyboardInterrupt:
        typer.echo(f"\ninterrupted: finished rows are safe in {out / 'results.jsonl'}; rerun the same command "
                   "to resume", err=True)
        raise typer.Exit(130) from None
    typer.echo(report.files["summary_md"].read_text())
    typer.echo(f"{report.rows} rows: {report.skipped} already done, {report.ran} run now, in {report.seconds:.1f} s")
    for name, path in report.files.items():
        typer.echo(f"  {name:12s} {path}")
