"""The `ecg2abp` command: the same code paths the workflow's rules run."""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ecg2abp.errors import InputError


def _config(path: str | None) -> dict:
    from ecg2abp.config import load_config, validate_config

    return load_config(path) if path else validate_config({})


def cmd_synth(args: argparse.Namespace) -> None:
    from ecg2abp.data.synth import write_synthetic

    paths = write_synthetic(
        Path(args.out_dir),
        parts=args.parts,
        records_per_part=args.records,
        seed=args.seed,
        layout=args.layout,
        full_size=args.full_size,
        artefacts=not args.no_artefacts,
    )
    for path in paths:
        print(path)


def cmd_ingest(args: argparse.Namespace) -> None:
    from ecg2abp.data.ingest import ingest_part

    out = Path(args.out)
    report = Path(args.report) if args.report else out.with_suffix(".clean.parquet")
    summary = ingest_part(Path(args.part), out, report, _config(args.config))
    print(json.dumps(summary))


def cmd_split(args: argparse.Namespace) -> None:
    from ecg2abp.folds.protocols import split_to_file

    shards = [Path(s) for s in args.shards]
    print(json.dumps(split_to_file(shards, Path(args.out), _config(args.config))))


def cmd_train(args: argparse.Namespace) -> None:
    from ecg2abp.logs import configure
    from ecg2abp.training.jobs import train_variant

    configure()
    shards = [Path(s) for s in args.shards]
    train_variant(
        args.variant, _config(args.config), Path(args.split), shards, args.fold, Path(args.out)
    )
    print(json.dumps({"model": str(Path(args.out) / "model.pt")}))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from ecg2abp.evaluation.scoring import evaluate_variant
    from ecg2abp.logs import configure

    configure()
    shards = [Path(s) for s in args.shards]
    result = evaluate_variant(
        Path(args.model), Path(args.split), shards, args.fold, Path(args.out), _config(args.config)
    )
    print(json.dumps({level: values.get("mae") for level, values in result["levels"].items()}))


def cmd_models(args: argparse.Namespace) -> None:
    from ecg2abp.models.inventory import describe_models, describe_variants, format_table

    if args.config:
        config = _config(args.config)
        rows = describe_variants(config["variants"], window=config["window"])
    else:
        rows = describe_models(window=args.window, width=args.width)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))


def cmd_bench_windows(args: argparse.Namespace) -> None:
    from ecg2abp.bench.data import bench_windows

    shard = Path(args.shard) if args.shard else None
    if args.mapped and shard is None:
        raise InputError("bench windows: --mapped needs --shard FILE")
    result = bench_windows(
        shard=shard,
        batch=args.batch,
        threads=args.threads,
        mapped=args.mapped,
        seconds=args.seconds,
        device=args.device,
        resident=args.resident,
    )
    print(json.dumps(result))


def cmd_bench_ingest(args: argparse.Namespace) -> None:
    from ecg2abp.bench.data import bench_ingest

    part = Path(args.part)
    if not part.exists():
        raise InputError(f"{part}: no such file")
    print(json.dumps(bench_ingest(part, config=_config(args.config), bandpass=args.bandpass)))


def cmd_bench_model(args: argparse.Namespace) -> None:
    from ecg2abp.bench.models import bench_infer, bench_train

    bench = bench_train if args.what == "train" else bench_infer
    chosen = {"paths": tuple(args.paths.split(","))} if args.paths else {}
    result = bench(
        args.model,
        width=args.width,
        batch=args.batch,
        steps=args.steps,
        warmup=args.warmup,
        device=args.device,
        threads=args.threads,
        **chosen,
    )
    print(json.dumps(result))


def cmd_bench_matmul(args: argparse.Namespace) -> None:
    from ecg2abp.bench.matmul import bench_matmul

    result = bench_matmul(
        size=args.size,
        precision=args.precision,
        device=args.device,
        threads=args.threads,
        seconds=args.seconds,
    )
    print(json.dumps(result))


def _batch(value: str) -> int | str:
    """A batch size, or `max` (the largest that fits on the GPU)."""
    if value == "max":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither a number nor max") from None


def _add_fold_job_arguments(parser: argparse.ArgumentParser, *, out: str) -> None:
    parser.add_argument("--split", required=True, help="split file (.json)")
    parser.add_argument("--fold", type=int, required=True, help="fold number")
    parser.add_argument("--shards", nargs="+", required=True, help="the shard files it names")
    parser.add_argument("--out", required=True, help=out)
    parser.add_argument("--config", help="config YAML (default: built-in defaults)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecg2abp", description="Arterial blood pressure from single-lead ECG."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synth = commands.add_parser("synth", help="write synthetic part files (Kaggle or UCI layout)")
    synth.add_argument("out_dir", help="folder to write part_1.mat … into")
    synth.add_argument("--parts", type=int, default=3, help="number of part files (3)")
    synth.add_argument("--records", type=int, default=24, help="records per part (24)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (0)")
    synth.add_argument("--layout", choices=["kaggle", "uci"], default="kaggle")
    synth.add_argument(
        "--full-size",
        action="store_true",
        help="parts like the real ones: 1,000 records, ~32 M samples",
    )
    synth.add_argument("--no-artefacts", action="store_true", help="clean signals only")
    synth.set_defaults(run=cmd_synth)

    ingest = commands.add_parser("ingest", help="clean one part file into an HDF5 shard")
    ingest.add_argument("part", help="part_N.mat / Part_N.mat file or WFDB folder")
    ingest.add_argument("--out", required=True, help="shard to write (.h5)")
    ingest.add_argument("--report", help="cleaning report (.parquet); default beside the shard")
    ingest.add_argument("--config", help="config YAML (default: built-in defaults)")
    ingest.set_defaults(run=cmd_ingest)

    split = commands.add_parser("split", help="write the fold file for the configured protocol")
    split.add_argument("shards", nargs="+", help="shard files, in part order")
    split.add_argument("--out", required=True, help="split file to write (.json)")
    split.add_argument("--config", help="config YAML (default: built-in defaults)")
    split.set_defaults(run=cmd_split)

    train = commands.add_parser("train", help="train one variant on one fold (the train rule)")
    train.add_argument("variant", help="a variant declared in the config, or naive")
    _add_fold_job_arguments(train, out="folder for model.pt and history.parquet")
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser("evaluate", help="score one model on its fold (evaluate rule)")
    evaluate.add_argument("model", help="model.pt written by train")
    _add_fold_job_arguments(evaluate, out="folder for predictions and metrics")
    evaluate.set_defaults(run=cmd_evaluate)

    models = commands.add_parser("models", help="list every model with parameters and GFLOP")
    models.add_argument("--json", action="store_true", help="JSON instead of a Markdown table")
    models.add_argument("--window", type=int, default=88, help="window in samples (88)")
    models.add_argument("--width", type=float, default=1.0, help="width multiplier (1.0)")
    models.add_argument(
        "--config", help="list this config's variants at their widths and window instead"
    )
    models.set_defaults(run=cmd_models)

    bench = commands.add_parser("bench", help="benchmarks; each prints one JSON line")
    benches = bench.add_subparsers(dest="what", required=True, metavar="WHAT")
    windows = benches.add_parser("windows", help="window feed throughput")
    windows.add_argument("--shard", help="a shard file (default: random signals in memory)")
    windows.add_argument("--batch", type=int, default=1024, help="batch size (1024)")
    windows.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    windows.add_argument("--mapped", action="store_true", help="memory-map the shard")
    windows.add_argument("--seconds", type=float, default=2.0, help="how long to run (2)")
    windows.add_argument("--device", default="cpu", help="where batches go: cpu, cuda, auto (cpu)")
    windows.add_argument(
        "--resident",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="signals held on the device (--resident) or gathered on the host (--no-resident);"
        " default: on a GPU when they fit",
    )
    windows.set_defaults(run=cmd_bench_windows)
    ingest_bench = benches.add_parser("ingest", help="read and whole-ingest time of one part")
    ingest_bench.add_argument("part", help="part file")
    ingest_bench.add_argument("--config", help="config YAML (default: built-in defaults)")
    ingest_bench.add_argument("--bandpass", action="store_true", help="keep the ECG band-pass on")
    ingest_bench.set_defaults(run=cmd_bench_ingest)
    for what in ("train", "infer"):
        model_bench = benches.add_parser(what, help=f"{what} windows/s, reference vs fast paths")
        model_bench.add_argument("--model", default="msca_cssc_unet")
        model_bench.add_argument("--width", type=float, default=1.0, help="width multiplier (1)")
        model_bench.add_argument(
            "--batch", type=_batch, default=64, help="batch size, or max: largest that fits (64)"
        )
        model_bench.add_argument("--steps", type=int, default=3, help="timed steps per path (3)")
        model_bench.add_argument("--warmup", type=int, default=1, help="untimed steps first (1)")
        model_bench.add_argument(
            "--paths", help="comma-separated: reference,fp32,bf16,bf16_fp32_attention,compiled"
        )
        model_bench.add_argument("--device", default="auto", help="auto, cpu or cuda (auto)")
        model_bench.add_argument("--threads", type=int, default=None, help="torch threads (all)")
        model_bench.set_defaults(run=cmd_bench_model, what=what)
    matmul = benches.add_parser("matmul", help="the machine's dense matrix-product GFLOP/s")
    matmul.add_argument("--size", type=int, default=2048, help="square matrix size (2048)")
    matmul.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    matmul.add_argument("--device", default="auto", help="auto, cpu or cuda (auto)")
    matmul.add_argument("--threads", type=int, default=None, help="torch threads (all)")
    matmul.add_argument("--seconds", type=float, default=2.0, help="how long to run (2)")
    matmul.set_defaults(run=cmd_bench_matmul)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except InputError as err:
        print(f"ecg2abp: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ecg2abp: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
