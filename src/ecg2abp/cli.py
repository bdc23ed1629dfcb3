"""The `ecg2abp` command: the same code paths the workflow's rules run."""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ecg2abp.errors import InputError
from ecg2abp.logs import configure, describe_os_error


def _config(path: str | None) -> dict:
    from ecg2abp.config import load_config, validate_config

    return load_config(path) if path else validate_config({})


def cmd_synth(args: argparse.Namespace) -> None:
    from ecg2abp.data.synth import write_pulsedb, write_synthetic

    if args.layout == "pulsedb":
        paths = write_pulsedb(
            Path(args.out_dir),
            subjects=args.subjects,
            segments_per_subject=args.segments,
            seed=args.seed,
        )
        for path in paths:
            print(path)
        return
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
    from ecg2abp.training.jobs import train_variant

    shards = [Path(s) for s in args.shards]
    config = _config(args.config)
    train_variant(
        args.variant, config, Path(args.split), shards, args.fold, Path(args.out), seed=args.seed
    )
    print(json.dumps({"model": str(Path(args.out) / "model.pt")}))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from ecg2abp.evaluation.scoring import evaluate_variant

    shards = [Path(s) for s in args.shards]
    result = evaluate_variant(
        Path(args.model),
        Path(args.split),
        shards,
        args.fold,
        Path(args.out),
        _config(args.config),
        args.variant,
    )
    print(json.dumps({level: values.get("mae") for level, values in result["levels"].items()}))


def cmd_import_original(args: argparse.Namespace) -> None:
    from ecg2abp.models.original import (
        import_original,
        original_fold,
        original_stats,
        stats_from_shards,
    )

    if bool(args.shards) == (args.ecg_min is not None or args.ecg_max is not None):
        raise InputError("import-original: give either --shards or --ecg-min and --ecg-max")
    if (args.split is None) != (args.fold is None) or (args.split and not args.shards):
        raise InputError("import-original: --split and --fold go together, with --shards")
    fold = None
    if args.split:
        fold = original_fold(Path(args.split), [Path(s) for s in args.shards], args.fold)
        stats = fold.stats
    elif args.shards:
        stats = stats_from_shards([Path(s) for s in args.shards])
    elif args.ecg_min is None or args.ecg_max is None:
        raise InputError("import-original: --ecg-min and --ecg-max go together")
    else:
        stats = original_stats(args.ecg_min, args.ecg_max)
    print(json.dumps(import_original(Path(args.checkpoint), Path(args.out), stats, fold=fold)))


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


def cmd_bench_pulsedb(args: argparse.Namespace) -> None:
    from ecg2abp.bench.pulsedb import pulsedb_check

    print(json.dumps(pulsedb_check(Path(args.subset), _config(args.config))))


def cmd_bench_verify(args: argparse.Namespace) -> None:
    from ecg2abp.bench.data import bench_verify

    shard = Path(args.shard) if args.shard else None
    print(json.dumps(bench_verify(shard=shard, n_samples=args.samples, repeats=args.repeats)))


def cmd_bench_knn(args: argparse.Namespace) -> None:
    from ecg2abp.bench.knn import bench_knn

    result = bench_knn(
        train=args.train,
        queries=args.queries,
        threads=args.threads,
        fraction=args.fraction,
        index=args.index,
        **({} if args.nprobe is None else {"nprobe": args.nprobe}),
    )
    print(json.dumps(result))


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


def _input_options(args: argparse.Namespace):
    from ecg2abp.serving.predict import InputOptions

    return InputOptions(fs=args.fs, lead=args.lead, column=args.column)


def cmd_predict(args: argparse.Namespace) -> None:
    import torch

    from ecg2abp.serving.predict import predict_file

    torch.set_num_threads(args.threads)
    summary = predict_file(
        Path(args.model),
        Path(args.input),
        Path(args.out),
        options=_input_options(args),
        beats=Path(args.beats) if args.beats else None,
        plot=Path(args.plot) if args.plot else None,
        progress=not args.quiet,
    )
    print(json.dumps(summary))


def cmd_external(args: argparse.Namespace) -> None:
    import torch

    from ecg2abp.serving.external import evaluate_external

    torch.set_num_threads(args.threads)
    result = evaluate_external(
        Path(args.model), Path(args.input), Path(args.out), options=_input_options(args)
    )
    levels = {"model": result["levels"], "naive": result["naive"]["levels"]}
    print(json.dumps({k: {lv: v.get("mae") for lv, v in ls.items()} for k, ls in levels.items()}))


def cmd_stream(args: argparse.Namespace) -> None:
    import torch

    from ecg2abp.serving.ensemble import load_model
    from ecg2abp.serving.stream import stream_stdin, stream_tcp

    torch.set_num_threads(args.threads)
    model = load_model(Path(args.model))
    if args.port is None:
        stream_stdin(model, sys.stdout)
    else:
        stream_tcp(model, args.port, sys.stdout)


def cmd_export(args: argparse.Namespace) -> None:
    import torch

    from ecg2abp.atomic import refuse_overwriting
    from ecg2abp.serving.export import export_onnx
    from ecg2abp.serving.inputs import read_inputs
    from ecg2abp.serving.predict import input_files

    torch.set_num_threads(args.threads)
    check = Path(args.check_input)
    refuse_overwriting([Path(args.onnx)], input_files(check))  # a WFDB record's files too
    records = list(read_inputs(check, fs=125.0, min_source_fs=0.0, source_fs=args.fs))
    print(json.dumps(export_onnx(Path(args.model), Path(args.onnx), records)))


def cmd_bench_predict(args: argparse.Namespace) -> None:
    from ecg2abp.bench.serving import bench_predict

    for line in bench_predict(
        width=args.width,
        hours=args.hours,
        full_seconds=args.full_seconds,
        paths=args.paths,
        source=args.input,
        source_fs=args.source_fs,
    ):
        print(json.dumps(line), flush=True)


def cmd_bench_report(args: argparse.Namespace) -> None:
    from ecg2abp.bench.report import bench_report_stream

    print(json.dumps(bench_report_stream(Path(args.results), args.variant)))


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


def _add_input_arguments(parser: argparse.ArgumentParser, *, positional: bool) -> None:
    what = "part file (either layout), WFDB .hea/folder, or CSV/Parquet ECG table"
    if positional:
        parser.add_argument("input", help=what)
    else:
        parser.add_argument("--input", required=True, help=what)
    parser.add_argument("--fs", type=float, help="sampling rate of a CSV/Parquet input (Hz)")
    parser.add_argument("--lead", help="WFDB ECG lead (default II, else the first ECG lead)")
    parser.add_argument("--column", help="CSV/Parquet ECG column (default: ecg, or the only one)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecg2abp", description="Arterial blood pressure from single-lead ECG."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synth = commands.add_parser(
        "synth", help="write synthetic part files (Kaggle or UCI layout) or PulseDB subsets"
    )
    synth.add_argument("out_dir", help="folder to write part_1.mat … (or *_Subset.mat) into")
    synth.add_argument("--parts", type=int, default=3, help="number of part files (3)")
    synth.add_argument("--records", type=int, default=24, help="records per part (24)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (0)")
    synth.add_argument("--layout", choices=["kaggle", "uci", "pulsedb"], default="kaggle")
    synth.add_argument("--subjects", type=int, default=10, help="pulsedb: subjects (10)")
    synth.add_argument(
        "--segments", type=int, default=4, help="pulsedb: 10-s segments per subject (4)"
    )
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
    train.add_argument("--seed", type=int, help="training seed (default: the first of train.seeds)")
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser("evaluate", help="score one model on its fold (evaluate rule)")
    evaluate.add_argument("model", help="model.pt written by train")
    evaluate.add_argument("--variant", help="variant it is scored as (a model of another: refused)")
    _add_fold_job_arguments(evaluate, out="folder for predictions and metrics")
    evaluate.set_defaults(run=cmd_evaluate)

    original = commands.add_parser(
        "import-original", help="a checkpoint of the original code as a model file (model.pt)"
    )
    original.add_argument("checkpoint", help="MSCA_CSSC_UNet.pth saved by the original code")
    original.add_argument("--out", required=True, help="model file to write (model.pt)")
    original.add_argument(
        "--shards", nargs="+", help="shards of every part (config/paper.yaml): the ECG min/max"
    )
    original.add_argument(
        "--split", help="split file of the shards: bind the model to a fold's data (evaluate it)"
    )
    original.add_argument("--fold", type=int, help="the fold of --split it is scored on")
    original.add_argument("--ecg-min", type=float, help="the original's global ECG minimum")
    original.add_argument("--ecg-max", type=float, help="the original's global ECG maximum")
    original.set_defaults(run=cmd_import_original)
    notice = "Research use only, not a medical device."
    model_help = "model.pt, a variant's folder of fold_*/seed_*/model.pt (mean ± spread) or a .onnx"
    predict = commands.add_parser(
        "predict", help=f"ABP for every ECG sample of new recordings ({notice})"
    )
    predict.description = (
        f"Predict ABP from ECG with a trained model. {notice} Never use it to diagnose or treat."
    )
    predict.add_argument("model", help=model_help)
    _add_input_arguments(predict, positional=True)
    predict.add_argument("--out", required=True, help="predictions (.parquet or .csv)")
    predict.add_argument("--beats", help="per predicted beat: time, SBP, DBP, MAP (.parquet/.csv)")
    predict.add_argument("--plot", help="PNG of a 10 s stretch of ECG and predicted ABP")
    predict.add_argument("--quiet", action="store_true", help="no progress bar")
    predict.set_defaults(run=cmd_predict)

    external = commands.add_parser(
        "external", help="score a model on recordings from elsewhere that carry ABP"
    )
    external.add_argument("model", help=model_help)
    _add_input_arguments(external, positional=False)
    external.add_argument("--out", required=True, help="folder for metrics.json, predictions")
    external.set_defaults(run=cmd_external)

    stream = commands.add_parser(
        "stream", help=f"ABP per sample from ECG arriving on stdin or a TCP port ({notice})"
    )
    stream.add_argument("model", help=model_help)
    stream.add_argument("--port", type=int, help="listen on 127.0.0.1:PORT instead of stdin")
    stream.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    stream.set_defaults(run=cmd_stream)

    export = commands.add_parser("export", help="a deep model.pt as ONNX, checked with ORT")
    export.add_argument("model", help="model.pt of a deep model")
    export.add_argument("--onnx", required=True, help="ONNX file to write")
    export.add_argument(
        "--check-input", required=True, help="a recording whose windows the check runs on"
    )
    export.add_argument("--fs", type=float, help="sampling rate of a CSV/Parquet check input")
    export.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    export.set_defaults(run=cmd_export)

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
    pulsedb_bench = benches.add_parser(
        "pulsedb-check", help="a PulseDB subset's SBP/DBP against the beats the pipeline finds"
    )
    pulsedb_bench.add_argument("subset", help="a PulseDB subset file (*_Subset.mat)")
    pulsedb_bench.add_argument("--config", help="config YAML (default: built-in defaults)")
    pulsedb_bench.set_defaults(run=cmd_bench_pulsedb)
    verify_bench = benches.add_parser(
        "verify", help="the shard fingerprint check every job makes: seconds and MB/s"
    )
    verify_bench.add_argument("--shard", help="a shard file (default: random signals in memory)")
    verify_bench.add_argument(
        "--samples", type=int, default=32_000_000, help="random samples (32 M: one part)"
    )
    verify_bench.add_argument("--repeats", type=int, default=3, help="best of (3)")
    verify_bench.set_defaults(run=cmd_bench_verify)
    knn_bench = benches.add_parser(
        "knn", help="knn build time, query speed and recall vs exact over paper-style windows"
    )
    knn_bench.add_argument("--train", type=int, default=1_150_000, help="training windows")
    knn_bench.add_argument("--queries", type=int, default=2048, help="test windows timed (2048)")
    knn_bench.add_argument("--threads", type=int, default=2, help="threads (2)")
    knn_bench.add_argument(
        "--fraction", type=float, default=0.005, help="share of stride-1 windows drawn (0.005)"
    )
    knn_bench.add_argument("--index", default="auto", help="knn option index (auto)")
    knn_bench.add_argument("--nprobe", type=int, help="knn option nprobe (the model's default)")
    knn_bench.set_defaults(run=cmd_bench_knn)
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
    serving_bench = benches.add_parser(
        "predict", help="predict throughput and memory per path (fp32, bf16, onnxruntime)"
    )
    serving_bench.add_argument("--width", type=float, default=0.0625, help="small width (1/16)")
    serving_bench.add_argument("--hours", type=float, nargs="+", default=[1.0, 3.0])
    serving_bench.add_argument(
        "--full-seconds", type=float, default=60.0, help="ECG for the full-width run (60; 0: skip)"
    )
    serving_bench.add_argument(
        "--paths", nargs="+", default=["fp32", "bf16", "onnxruntime"], help="paths to time"
    )
    serving_bench.add_argument(
        "--input",
        choices=["memory", "wfdb"],
        default="memory",
        help="memory: synthetic ECG fed to the pipeline; wfdb: predict_file on a WFDB record "
        "written first (the real file path)",
    )
    serving_bench.add_argument(
        "--source-fs", type=float, default=125.0, help="rate of the WFDB record (125 Hz)"
    )
    serving_bench.set_defaults(run=cmd_bench_predict)

    report_bench = benches.add_parser("report", help="the report's streaming pass, one variant")
    report_bench.add_argument("results", help="a results/{experiment} folder")
    report_bench.add_argument("--variant", default="naive", help="variant (naive)")
    report_bench.set_defaults(run=cmd_bench_report)

    matmul = benches.add_parser("matmul", help="the machine's dense matrix-product GFLOP/s")
    matmul.add_argument("--size", type=int, default=2048, help="square matrix size (2048)")
    matmul.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    matmul.add_argument("--device", default="auto", help="auto, cpu or cuda (auto)")
    matmul.add_argument("--threads", type=int, default=None, help="torch threads (all)")
    matmul.add_argument("--seconds", type=float, default=2.0, help="how long to run (2)")
    matmul.set_defaults(run=cmd_bench_matmul)
    return parser


WRITTEN_ARGUMENTS = ("out", "report", "beats", "plot", "onnx")
READ_ARGUMENTS = (
    "config",
    "model",
    "input",
    "part",
    "shards",
    "split",
    "checkpoint",
    "check_input",
)


def refuse_overwritten_arguments(args: argparse.Namespace) -> None:
    """No command writes over a file it was given to read (each job checks its other files)."""
    from ecg2abp.atomic import refuse_overwriting

    def given(names: Sequence[str]) -> list[Path]:
        values = [getattr(args, name, None) for name in names]
        flat = [v for value in values for v in (value if isinstance(value, list) else [value])]
        return [Path(value) for value in flat if value]

    refuse_overwriting(given(WRITTEN_ARGUMENTS), given(READ_ARGUMENTS))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure()  # warnings and progress to this run's stderr
    try:
        refuse_overwritten_arguments(args)
        args.run(args)
    except InputError as err:
        print(f"ecg2abp: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # unreadable input, unwritable output: no traceback either
        print(f"ecg2abp: error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ecg2abp: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
