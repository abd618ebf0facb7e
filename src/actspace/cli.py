"""Command line: questions answered from stored results without rerunning the pipeline.

    actspace locate --svd results/weights_svd/smollm2-135m/svd.zarr \\
        --model results/models/smollm2-135m fire flame burning

prints every (matrix, direction, sign) whose singular vector points at the query words
(SVD tracing, Millidge & Black 2022), best first.

    actspace steer --vectors results/steering/smollm2-135m/requests/vectors.safetensors \
        --model results/models/smollm2-135m --set ortho --index 3 "How do I bake bread?"

continues the prompt with a stored steering vector added after its source block (greedy,
or sampled with ``--seed``), as the steering job wrote its generations.

    actspace verify results/activations/smollm2-135m/generated-200.zarr

reads every chunk of a store, checking each one's crc32c checksum and that none is missing.

    actspace readme --summary results/summary.json

copies a finished run's summary to docs/summary-of-results.json and regenerates the README's
"Summary of results" tables from it (``--check``: only say whether they are in step).

    actspace compare results/summary.json

lists the rows of a run's summary that differ from the README's snapshot (another verdict, a
value outside ``--rtol``, a row only one has; timings left out); exit 1 when any does.
"""

from __future__ import annotations

import argparse
import sys

from actspace.errors import ActspaceError
from actspace.reporting.readme import SNAPSHOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="actspace", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    locate = commands.add_parser("locate", help="find singular directions matching query words")
    locate.add_argument("words", nargs="+", help="query words, e.g. fire flame burning")
    locate.add_argument("--svd", required=True, help="a weights_svd svd.zarr store")
    locate.add_argument("--model", required=True, help="the materialised model directory")
    locate.add_argument("--threshold", type=float, default=0.15, help="cosine threshold")
    locate.add_argument("--top", type=int, default=20, help="rows to print")
    steer = commands.add_parser("steer", help="generate with a stored steering vector added")
    steer.add_argument("prompt", help="the prompt text (tokenised as the pipeline's prompts)")
    steer.add_argument("--vectors", required=True, help="a steering run's vectors.safetensors")
    steer.add_argument("--model", required=True, help="the materialised model directory")
    steer.add_argument(
        "--set", default="ortho", help="melbo, melbo_random or ortho (row 0 = theta_0)"
    )
    steer.add_argument("--index", type=int, default=0, help="row of the set")
    steer.add_argument("--tokens", type=int, default=48, help="new tokens")
    steer.add_argument(
        "--seed", type=int, default=None, help="sample (temperature 1) from this seed"
    )
    steer.add_argument("--norm", type=float, default=None, help="rescale the vector to this norm")
    steer.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    verify = commands.add_parser("verify", help="check every chunk of stores (checksums)")
    verify.add_argument("stores", nargs="+", help="Zarr stores under results/")
    readme = commands.add_parser("readme", help="regenerate the README's summary of results")
    readme.add_argument("--summary", help="a run's results/summary.json to take in first")
    readme.add_argument("--snapshot", default=str(SNAPSHOT))
    readme.add_argument("--readme", default="README.md")
    readme.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    compare = commands.add_parser(
        "compare", help="a run's summary against the README's snapshot, row by row"
    )
    compare.add_argument("summary", help="a run's results/summary.json")
    compare.add_argument("--snapshot", default=str(SNAPSHOT))
    compare.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance")
    args = parser.parse_args(argv)
    try:
        if args.command == "verify":
            from actspace.store import verify_store

            for store in args.stores:
                print(f"{store}: {verify_store(store)} chunks, every checksum matches")
            return 0
        if args.command == "readme":
            from actspace.reporting.readme import update_readme

            in_step = update_readme(args.readme, args.snapshot, args.summary, args.check)
            if not in_step:
                print(
                    f"{args.readme} does not show {args.snapshot}: run `actspace readme`",
                    file=sys.stderr,
                )
            return 0 if in_step else 1
        if args.command == "compare":
            from actspace.reporting.compare import changes_report, compare_summaries
            from actspace.reporting.readme import read_summary

            changes, compared = compare_summaries(
                read_summary(args.snapshot), read_summary(args.summary), args.rtol
            )
            print(changes_report(changes, compared, args.rtol))
            return 1 if changes else 0
        if args.command == "steer":
            from actspace.methods.steering.command import steer_text

            print(
                steer_text(
                    args.vectors,
                    args.model,
                    args.set,
                    args.index,
                    args.prompt,
                    args.tokens,
                    args.seed,
                    args.norm,
                    args.device,
                )
            )
            return 0
    except ActspaceError as err:
        print(f"actspace: error: {err}", file=sys.stderr)
        return 1

    from actspace.methods.weights_svd.read import locate_in_store

    try:
        hits = locate_in_store(args.svd, args.model, args.words, args.threshold)
    except ActspaceError as err:
        print(f"actspace: error: {err}", file=sys.stderr)
        return 1
    print(f"{'kind':<9} {'layer':>5} {'head':>4} {'dir':>4} {'sign':<8} {'cosine':>6}")
    for hit in hits[: args.top]:
        print(
            f"{hit['kind']:<9} {hit['layer']:>5} {hit['head']:>4} {hit['direction']:>4} "
            f"{hit['sign']:<8} {hit['cosine']:>6.3f}"
        )
    print(f"{len(hits)} directions above cosine {args.threshold}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
