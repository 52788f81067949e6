#!/usr/bin/env bash
# The GPU runbook: everything a short, offline GPU block needs, one step per call.
#
# The GPU machine has no network, takes a few carried files per call (64 MiB) and gives back at most
# 8 files of 16 MiB. So: carry the data parts and the wheels once, one call each, and `stash` them outside
# the checkout; `setup` joins and verifies the data and installs the wheels; `bench` measures; `start` runs the
# sweep detached (it outlives the call); `progress` polls it; `pack` brings back records, executed notebooks,
# logs and the checkpoints of unfinished runs. CI rehearses all of it on CPU (tests/test_gpu_runbook.py).
#
#   scripts/gpu-runbook.sh prepare DATA_DIR [XFER]  (here, committed tree) all that the calls carry, in XFER
#                                               (default .xfer): data parts sized to travel in the fewest calls
#                                               beside this tree, wheels (kept if there), manifest, the committed
#                                               checkpoints lifted out of the tree into .xfer/lifted/resume (they
#                                               travel once, not with every call); then `calls`
#   scripts/gpu-runbook.sh restore [CHECKOUT]   (here) put the lifted checkpoints back in git, but for those that
#                                               came back newer or whose run is complete (`unpack` does it too)
#   scripts/gpu-runbook.sh split SRC_DIR PARTS_DIR [PART_SIZE]  (here) a folder -> part-NN + SHA256SUMS (50M parts)
#   scripts/gpu-runbook.sh manifest DIR         (here) DIR/manifest.json: the commit + blob ids of the checkout
#   scripts/gpu-runbook.sh calls [PATH...]      (here) which device calls carry what (default: .xfer's data parts,
#                                               meta, wheels or wheel-bundles, resume checkpoints), within 64 MiB with the tree
#   scripts/gpu-runbook.sh stash DIR...         copy carried folders (data/, wheels/, meta/, resume/, compile-cache/)
#                                               into $RUNBOOK_HOME/stage; `start` puts resume/ checkpoints in place
#                                               and seeds the sweep's torch.compile cache from compile-cache/
#   scripts/gpu-runbook.sh setup                join + verify the data, install wheels offline, print versions
#   scripts/gpu-runbook.sh bench [BENCH ARGS]   se-res2net bench ...   -> $RUNBOOK_HOME/results/
#   scripts/gpu-runbook.sh mps start|stop|status  the CUDA MPS control daemon (its folders under $RUNBOOK_HOME/mps):
#                                               while started, every later step's CUDA processes are its clients
#   scripts/gpu-runbook.sh start SWEEP ARGS     se-res2net sweep ... detached -> $RUNBOOK_HOME/logs/sweep.log
#   scripts/gpu-runbook.sh block [SWEEP ARGS]   unattended, detached: bench (capped at $BENCH_SECONDS), choose
#                                               --jobs/--compile (and MPS or not) from it (rule below), start the
#                                               sweep, run parity;
#                                               what an earlier block measured on this same machine is taken, not
#                                               measured again ($PRIOR_RESULTS; REBENCH=1 measures everything)
#   scripts/gpu-runbook.sh progress             is the sweep alive; which runs are done; images/s; ETA
#   scripts/gpu-runbook.sh poll [SECONDS]       start again a sweep ended from outside (not by itself or `stop`),
#                                               then progress, then wait up to SECONDS for it to end
#   scripts/gpu-runbook.sh wait [SECONDS]       until the detached sweep ends (or SECONDS pass; exit 124)
#   scripts/gpu-runbook.sh stop                 SIGTERM the detached sweep (its runs resume next time)
#   scripts/gpu-runbook.sh pack OUT_DIR [PACK ARGS]  <= 8 archives of <= 16 MiB (se-res2net pack), the sweep's
#                                               compile cache last (unpack puts it in .xfer/compile-cache/)
#   scripts/gpu-runbook.sh unpack DIR [--force] (here) verify and extract archives into the checkout; delete the
#                                               checkpoints of complete runs; compact (lossless) those >= 6 MB,
#                                               move those still >= 6 MB to .xfer/resume;
#                                               file results/ and logs/ in benchmarks/gpu/block-<time>/
#
# Environment: RUNBOOK_HOME (default ~/se_res2net_gpu: staging, data, logs, results, runs; outside the checkout),
# PY (default .venv/bin/python if present, else python3), RUNS_ROOT (the sweep's runs; default $RUNBOOK_HOME/runs),
# SEED_RUNS (what `start` seeds RUNS_ROOT from; default the checkout's book/runs),
# PIP_* variables pass through to pip (CI installs into PIP_TARGET); `unpack`: UNPACK_DEST (default the checkout),
# COMMIT_LIMIT (bytes; default 6 MB); `block`: BENCH_SECONDS, BENCH_STEPS, CONC_STEPS (timed steps per process of
# the concurrency benches, default 200: 50 gave windows of 0.3-2.3 s on the H200, too short for a steady reading),
# BENCH_WARMUP, PARITY_DEVICE, PARITY_VARIANTS, PARITY_EPOCHS, PARITY_SUBSET, PARITY_TEST_SUBSET, PARITY_ARGS,
# PARITY_NOISE_SEEDS (extra seeds of the eager fp32 reference whose seed-to-seed difference is the noise a switch
# may stay within; default 2; 0: fixed tolerances only; an earlier result is taken only with the same count),
# PRIOR_RESULTS (':'-separated files or folders of earlier blocks' results; default benchmarks/gpu:book/parity),
# REBENCH (non-empty: take nothing measured before), MPS (0: never measure under CUDA MPS), STACKED_LEVELS (models
# stacked into one step by the stacked bench, default 4; empty: not measured); `start`: NO_COMPILE_CACHE
# (non-empty: do not seed the compile cache); `prepare`: PREPARE_DIRTY_OK (non-empty: a dirty tree goes), LIFT (0:
# leave the committed checkpoints in the tree).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
HOME_DIR=${RUNBOOK_HOME:-$HOME/se_res2net_gpu}
STAGE=$HOME_DIR/stage
RESULTS=$HOME_DIR/results
LOGS=$HOME_DIR/logs
if [ -z "${PY:-}" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PY=$REPO/.venv/bin/python; else PY=python3; fi
fi
# The sweep writes its runs OUTSIDE the checkout: the device refreshes the checkout from this machine's working
# tree at every call, and runs written into it could be deleted or overwritten by the next call's copy. `start`
# seeds this folder with the checkout's runs of the sweep's profile (records and checkpoints of earlier blocks:
# complete runs are skipped, unfinished ones resume); `pack` puts them under book/runs in the archives.
RUNS_ROOT=${RUNS_ROOT:-$HOME_DIR/runs}
SEED_RUNS=${SEED_RUNS:-$REPO/book/runs}  # where `start` seeds from (tests point it elsewhere)
ARCHIVE_RUNS=book/runs  # the runs folder of the checkout: the path in the archives, where `unpack` puts them
# where `prepare` lifts the committed checkpoints to, so that they travel once (transfer.LIFTED_DIR)
LIFTED_REL=.xfer/lifted
LIFTED=$REPO/$LIFTED_REL
# where `block` looks for results measured in earlier blocks (':'-separated; `unpack` files them there)
PRIOR_RESULTS=${PRIOR_RESULTS-$REPO/benchmarks/gpu:$REPO/book/parity}
# The checkout is the package: no install needed (the sweep's workers and kernels inherit this).
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
[ -f "$HOME_DIR/env.sh" ] && . "$HOME_DIR/env.sh"
# written by `mps start`, removed by `mps stop`: the CUDA processes of every later step are the daemon's clients
[ -f "$HOME_DIR/mps.env" ] && . "$HOME_DIR/mps.env"

say() { printf '[runbook %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { printf '[runbook] error: %s\n' "$*" >&2; exit 2; }
se() { "$PY" -m se_res2net "$@"; }
# the --profile of the sweep arguments in FILE (one per line, as `start` writes sweep.args); smoke if none
sweep_profile() {
  local profile=smoke prev=
  [ -f "$1" ] && while read -r a; do [ "$prev" = "--profile" ] && profile=$a; prev=$a; done < "$1"
  echo "$profile"
}

# seed_compile_cache DIR: the compile cache an earlier block brought back (stashed compile-cache/), into DIR (a
# TORCHINDUCTOR_CACHE_DIR) when DIR is empty and the cache was compiled on this very machine; NO_COMPILE_CACHE=1: never
seed_compile_cache() {
  [ -f "$STAGE/compile-cache/inductor.tar.gz" ] && [ -z "${NO_COMPILE_CACHE:-}" ] || return 0
  [ -f "$HOME_DIR/machine-now.json" ] || se decide machine --out "$HOME_DIR/machine-now.json" \
    || { say "this machine could not be named (above): the carried compile cache is not used"; return 0; }
  "$PY" -c "
import json, sys
from se_res2net.training.transfer import seed_compile_cache
print(seed_compile_cache(sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))))" \
    "$STAGE/compile-cache/inductor.tar.gz" "$1" "$HOME_DIR/machine-now.json" | while read -r line; do say "$line"; done \
    || { rm -rf "$1.partial"; say "the carried compile cache could not be used (above): compiling without it"; }
}

# the MPS control program: on the PATH, or in the driver's folders (the GPU machine mounts the driver's tools in
# /usr/local/nvidia, whose bin/ need not be on the PATH); its folder goes on the PATH for the server it starts
find_mps_control() {
  local d
  command -v nvidia-cuda-mps-control 2> /dev/null && return 0
  for d in /usr/local/nvidia/bin /usr/local/cuda/bin /usr/bin; do
    [ -x "$d/nvidia-cuda-mps-control" ] && { echo "$d/nvidia-cuda-mps-control"; return 0; }
  done
  return 1
}

step=${1:-}
[ -n "$step" ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2; }
shift

case "$step" in
  split)
    # The format of shared/tools/split-for-transfer.sh: tar | gzip -1 | split, plus SHA256SUMS.
    src=${1:-}; parts=${2:-}; size=${3:-50M}
    [ -d "$src" ] && [ -n "$parts" ] || die "usage: $0 split SRC_DIR PARTS_DIR [PART_SIZE]"
    mkdir -p "$parts"
    [ -z "$(ls -A "$parts")" ] || die "$parts is not empty; split into an empty folder"
    tar -C "$(dirname "$src")" -cf - "$(basename "$src")" | gzip -1 | split -b "$size" -d -a 2 - "$parts/part-"
    (cd "$parts" && sha256sum part-* > SHA256SUMS)
    say "split $src into $(ls "$parts"/part-* | wc -l) part(s) in $parts"
    ;;

  prepare)
    # Everything the device calls carry, from one command, for the tree as it is now: the part size is chosen
    # so that the parts, the manifest and the wheels travel in the fewest calls beside it (it grows when
    # unfinished checkpoints are committed). The wheels take a minute of network: kept when already there.
    src=${1:-}; xfer=${2:-.xfer}
    [ -d "$src" ] || die "usage: $0 prepare CIFAR10_DIR [XFER_DIR] (the class folders: train/ and test/)"
    # an earlier `prepare` whose block never came back: its lifted checkpoints go back first (see below)
    [ -f "$LIFTED/LIFTED.json" ] && bash "$0" restore
    if [ -n "$(git status --porcelain --untracked-files=no 2> /dev/null)" ] && [ -z "${PREPARE_DIRTY_OK:-}" ]; then
      die "the checkout has uncommitted changes: commit them first (the manifest names the commit, and every record of the block would say git_dirty); PREPARE_DIRTY_OK=1 to go on anyway"
    fi
    rm -rf "$xfer/data" "$xfer/meta" "$xfer/stream" "$xfer/wheel-bundles"
    if [ -f "$xfer/wheels/requirements.txt" ] && compgen -G "$xfer/wheels/*.whl" > /dev/null; then
      say "wheels: kept $(ls "$xfer"/wheels/*.whl | wc -l) in $xfer/wheels (rm -r it to download them again)"
    else
      rm -rf "$xfer/wheels"
      bash "$0" wheels "$xfer/wheels"
    fi
    bash "$0" manifest "$xfer/meta"
    # the committed checkpoints of unfinished runs travel once, as carried files, not with every call as part of
    # the tree (8 of them were 44 of its 47 MiB after the first block): `git rm`'d here, put back by `unpack`
    # (or `restore`) unless a newer one came back. LIFT=0 leaves them in the tree.
    lifted=()
    if [ "${LIFT:-1}" != 0 ]; then
      "$PY" -c '
import sys
from se_res2net.training.transfer import lift_checkpoints
s = lift_checkpoints(".", lifted=sys.argv[1])["lifted"]
mib = sum(e["bytes"] for e in s) / 2**20
if s: print(f"[runbook] lifted {len(s)} committed checkpoint(s), {mib:.1f} MiB, out of the tree into "
            f"{sys.argv[1]}/resume: they travel once. git shows them deleted (staged) until unpack or restore: "
            "commit nothing before that, or the commit deletes them")' "$LIFTED_REL" \
        || die "could not lift the committed checkpoints (see above); LIFT=0 leaves them in the tree"
      [ -d "$LIFTED_REL/resume" ] && mapfile -t lifted < <(find "$LIFTED_REL/resume" -type f -name '*.pt' | sort)
    fi
    # the wheels as one folder, or, when the tree leaves too little room for that in any call (committed
    # checkpoints), as bundles of wheels/ folders that `stash` merges on the device
    mapfile -t wheels < <("$PY" -c '
import sys
from se_res2net.training.transfer import carried_folder
print("\n".join(map(str, carried_folder(".", sys.argv[1], sys.argv[2]))))' "$xfer/wheels" "$xfer/wheel-bundles") \
      || die "the wheels cannot travel (see above)"
    [ "${#wheels[@]}" -eq 1 ] || say "wheels: $(du -sh "$xfer/wheels" | cut -f1) do not fit beside the tree in one call: ${#wheels[@]} bundles in $xfer/wheel-bundles"
    # the compile cache an earlier block brought back (`unpack`), kept: the sweep's first epochs load it
    cache=(); [ -f "$xfer/compile-cache/inductor.tar.gz" ] && cache=("$xfer/compile-cache")
    mkdir -p "$xfer/stream" "$xfer/data"
    # the format of `split` (and shared/tools/split-for-transfer.sh): tar | gzip -1, cut into parts
    tar -C "$(dirname "$src")" -cf - "$(basename "$src")" | gzip -1 > "$xfer/stream/data.tar.gz"
    read -r size ncalls < <("$PY" -c '
import sys
from se_res2net.training.transfer import part_size_for, path_bytes, working_tree_bytes
size, n = part_size_for(working_tree_bytes("."), path_bytes(sys.argv[1]), [(p, path_bytes(p)) for p in sys.argv[2:]])
print(size, n)' "$xfer/stream/data.tar.gz" "$xfer/meta" "${wheels[@]}" "${cache[@]}" "${lifted[@]}") || die "no part size fits (see above)"
    split -b "$size" -d -a 2 "$xfer/stream/data.tar.gz" "$xfer/data/part-"
    rm -rf "$xfer/stream"
    (cd "$xfer/data" && sha256sum part-* > SHA256SUMS)
    say "split $src into $(ls "$xfer"/data/part-* | wc -l) part(s) of $((size / 1048576)) MiB in $xfer/data: $ncalls carrying call(s)"
    bash "$0" calls "$xfer"/data/* "$xfer/meta" "${wheels[@]}" "${cache[@]}" "${lifted[@]}"
    ;;

  restore)
    # put back what `prepare` lifted out of the tree, for every checkpoint that did not come back newer (`unpack`
    # does this itself; run it by hand when a block brought nothing back, or before working on without a block)
    checkout=${1:-$REPO}
    "$PY" -c '
import sys
from se_res2net.training.transfer import restore_lifted
done = restore_lifted(sys.argv[1])
for p in done["restored"]: print("put back as committed:", p)
for p in done["newer"]: print("kept the newer checkpoint that came back (commit it):", p)
for p in done["complete"]: print("its run is complete: stays deleted (commit that):", p)
for p in done["carried"]: print("a newer copy waits in .xfer/resume: stays deleted here (commit that):", p)
for p in done["untracked"]: print("WARNING: a commit made while it was lifted deleted it from git; git add it again:", p)' "$checkout"
    ;;

  wheels)
    # The closure of what the runs need beyond the machine's torch stack, as Python 3.12 manylinux wheels,
    # and a requirements.txt naming the top-level packages: `setup` installs only what is missing there.
    out=${1:-}; [ -n "$out" ] || die "usage: $0 wheels WHEELS_DIR (e.g. .xfer/wheels)"
    mkdir -p "$out"
    want=(papermill ipykernel thop submitit)
    plat=(--python-version "${WHEELS_PYTHON:-3.12}" --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64
          --platform any --only-binary=:all:)
    report=$(mktemp)
    "$PY" -m pip install -q --dry-run --ignore-installed --report "$report" "${plat[@]}" --target "$(mktemp -d)" "${want[@]}"
    # torch and what torch brings are on the machine already (and far too big to carry)
    mapfile -t pins < <("$PY" -c '
import json, sys
skip = {"torch", "triton", "sympy", "mpmath", "networkx", "setuptools", "jinja2", "markupsafe", "fsspec", "filelock"}
for item in json.load(open(sys.argv[1]))["install"]:
    name = item["metadata"]["name"]
    if not name.lower().startswith("nvidia") and name.lower() not in skip:
        print(name + "==" + item["metadata"]["version"])
' "$report")
    "$PY" -m pip download -q --no-deps "${plat[@]}" -d "$out" "${pins[@]}"
    # grad-cam 1.5 and ttach are published as sources only: build them here (pure Python)
    "$PY" -m pip wheel -q --no-deps -w "$out" "grad-cam>=1.5,<2" "ttach>=0.0.3"
    printf '%s\n' papermill ipykernel thop "grad-cam>=1.5,<2" ttach submitit > "$out/requirements.txt"
    say "$(ls "$out"/*.whl | wc -l) wheel(s), $(du -sh "$out" | cut -f1), requirements in $out/requirements.txt"
    ;;

  manifest)
    # The device gets a copy of the working tree without .git: this names the commit, and the records' provenance
    # names it only when every tracked file there still matches it (se_res2net.training.records.git_state)
    out=${1:-}; [ -n "$out" ] || die "usage: $0 manifest DIR (e.g. .xfer/meta)"
    mkdir -p "$out"
    "$PY" -c "import sys; from se_res2net.training.records import write_source_manifest as w; m = w(sys.argv[1]); print(m['commit'], 'dirty' if m['dirty_at_write'] else 'clean', len(m['files']), 'files')" "$out/manifest.json"
    ;;

  calls)
    # Every call sends the working tree (tracked + untracked-not-ignored files: committed checkpoints too) and
    # its carried paths, 64 MiB together: plan which call carries what before the first device minute.
    if [ $# -eq 0 ]; then
      set -- .xfer/data/* .xfer/meta
      if [ -d .xfer/wheel-bundles ]; then set -- "$@" .xfer/wheel-bundles/*/wheels; else set -- "$@" .xfer/wheels; fi
      [ -d .xfer/resume ] && mapfile -t resume < <(find .xfer/resume -type f -name "*.pt" | sort) && set -- "$@" "${resume[@]}"
      [ -d "$LIFTED_REL/resume" ] && mapfile -t resume < <(find "$LIFTED_REL/resume" -type f -name "*.pt" | sort) && set -- "$@" "${resume[@]}"
      [ -f .xfer/compile-cache/inductor.tar.gz ] && set -- "$@" .xfer/compile-cache
    fi
    "$PY" -c "import sys; from se_res2net.training.transfer import carry_plan_text as f; print(f('.', sys.argv[1:]))" "$@"
    ;;

  stash)
    [ $# -ge 1 ] || die "usage: $0 stash DIR... (folders named data/, wheels/, meta/, resume/ or compile-cache/, e.g. .xfer/data)"
    mkdir -p "$STAGE"
    for d in "$@"; do
      [ -d "$d" ] || die "$d is not a folder"
      name=$(basename "$d")
      case "$name" in data|wheels|meta|resume|compile-cache) ;; *) die "stash folders named data/ (split parts), wheels/ (*.whl), meta/ (manifest.json), resume/ (checkpoints) or compile-cache/ (inductor.tar.gz), not $name/" ;; esac
      mkdir -p "$STAGE/$name"
      cp -pR "$d"/. "$STAGE/$name/"
      say "stashed $(find "$d" -type f | wc -l) file(s) of $d into $STAGE/$name ($(du -sh "$STAGE/$name" | cut -f1))"
    done
    ;;

  setup)
    mkdir -p "$RESULTS" "$LOGS"
    # 1. data: every part present and intact (checksums), joined, then verified by its fingerprint
    if [ -d "$STAGE/data" ]; then
      [ -f "$STAGE/data/SHA256SUMS" ] || die "$STAGE/data has no SHA256SUMS; stash the parts folder written by 'split'"
      missing=$(cd "$STAGE/data" && awk '{print $2}' SHA256SUMS | while read -r f; do [ -f "$f" ] || echo "$f"; done)
      [ -z "$missing" ] || die "data parts not stashed yet: $(echo $missing); carry and stash them first"
      (cd "$STAGE/data" && sha256sum -c --quiet SHA256SUMS) || die "a data part is corrupt (checksum); carry it again"
      rm -rf "$HOME_DIR/data.partial"
      mkdir -p "$HOME_DIR/data.partial"
      cat "$STAGE/data"/part-* | gzip -dc | tar -C "$HOME_DIR/data.partial" -xf -
      top=$(ls "$HOME_DIR/data.partial")
      [ "$(echo "$top" | wc -l)" -eq 1 ] || die "the parts hold more than one top-level folder: $top"
      rm -rf "$HOME_DIR/data"
      mv "$HOME_DIR/data.partial" "$HOME_DIR/data"
      data_dir=$HOME_DIR/data/$top
      say "joined $(ls "$STAGE/data"/part-* | wc -l) part(s) into $data_dir"
      se data --source folder --data-dir "$data_dir" --no-progress | tee "$RESULTS/data-check.txt"
      echo "export SE_RES2NET_DATA_DIR='$data_dir'" > "$HOME_DIR/env.sh"
      export SE_RES2NET_DATA_DIR=$data_dir
    else
      say "no data stashed ($STAGE/data); runs will use SE_RES2NET_DATA_DIR=${SE_RES2NET_DATA_DIR:-<unset>}"
    fi
    # 1b. which code this is: the stashed manifest (checked file by file when a record is written), also where
    #     the copy has a .git: the device's held the landed commit's, not the one whose files it ran (stop 27)
    if [ -f "$STAGE/meta/manifest.json" ]; then
      echo "export SE_RES2NET_SOURCE_MANIFEST='$STAGE/meta/manifest.json'" >> "$HOME_DIR/env.sh"
      export SE_RES2NET_SOURCE_MANIFEST=$STAGE/meta/manifest.json
    fi
    # 2. wheels: offline, no dependency resolution (they were chosen to fill exactly what the machine lacks)
    if compgen -G "$STAGE/wheels/*.whl" > /dev/null; then
      # with requirements.txt (written by `wheels`): only what is missing is installed, its dependencies
      # taken from the stashed wheels; without: every stashed wheel
      if [ -f "$STAGE/wheels/requirements.txt" ]; then what=(-r "$STAGE/wheels/requirements.txt"); else what=("$STAGE"/wheels/*.whl); fi
      # --no-compile: no byte-compiling of ~50 packages at install (seconds of the block); imports compile what they use
      pip_in() { "$PY" -m pip install -q --no-index --no-compile --find-links "$STAGE/wheels" "$@" "${what[@]}"; }
      if ! pip_in 2> "$LOGS/pip.err"; then
        grep -q externally-managed "$LOGS/pip.err" || { cat "$LOGS/pip.err" >&2; die "offline pip install failed (a wheel missing? see above)"; }
        pip_in --break-system-packages
      fi
      say "installed offline from $(ls "$STAGE"/wheels/*.whl | wc -l) stashed wheel(s)"
    else
      say "no wheels stashed ($STAGE/wheels)"
    fi
    # 3. the Jupyter kernel the sweep's papermill runs use
    if ! "$PY" -c "from se_res2net.training.sweep import check_kernel; check_kernel()" 2> /dev/null; then
      "$PY" -m ipykernel install --user --name python3 > /dev/null
      say "installed the python3 Jupyter kernel for $PY"
    fi
    # 4. versions (kept with the results)
    {
      echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"; echo "host: $(hostname)"
      echo "checkout: $("$PY" -c 'from se_res2net.training.records import git_state; print(git_state())')"
      "$PY" - <<'EOF'
import platform, importlib
import torch
print("python:", platform.python_version())
print("torch:", torch.__version__, "cuda:", torch.version.cuda, "cudnn:", torch.backends.cudnn.version())
print("devices:", [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] or "none (CPU)")
for m in ("torchvision", "numpy", "papermill", "nbclient", "ipykernel", "thop", "pytorch_grad_cam", "submitit"):
    try:
        print(f"{m}:", getattr(importlib.import_module(m), "__version__", "?"))
    except ImportError:
        print(f"{m}: MISSING")
EOF
      command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    } | tee "$RESULTS/versions.txt"
    "$PY" -c "import papermill, thop, pytorch_grad_cam" || die "a package the runs need is missing (see above); stash its wheel"
    say "setup done"
    ;;

  bench)
    mkdir -p "$RESULTS"
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    se bench --json "$@" > "$RESULTS/bench-$stamp.json"
    "$PY" -c "import json,sys; from se_res2net.training.bench import format_result; print(format_result(json.load(open(sys.argv[1]))))" \
      "$RESULTS/bench-$stamp.json" | tee "$RESULTS/bench-$stamp.txt"
    ;;

  mps)
    # `mps status --clients` exits 3 when no server runs and no client connection is logged (the block's check that
    # a bench really ran under it).
    # CUDA MPS (Multi-Process Service): one server runs the kernels of all its client processes side by side;
    # without it, processes take turns on the GPU (the first block's aggregate was flat from 2 processes on).
    # The daemon's pipe and log folders are the runbook's own, so only processes started with mps.env (every
    # runbook step after `mps start`) are its clients, never another program on the machine.
    pipe=$HOME_DIR/mps/pipe; mlog=$HOME_DIR/mps/log
    control=$(find_mps_control) || control=""
    ctl() {
      PATH="$(dirname "$control"):$PATH" CUDA_MPS_PIPE_DIRECTORY=$pipe CUDA_MPS_LOG_DIRECTORY=$mlog timeout 20 "$control" "$@"
    }
    answers() { [ -e "$pipe/control" ] && echo get_server_list | ctl > /dev/null 2>&1; }
    case ${1:-status} in
      start)
        [ -n "$control" ] || die "no nvidia-cuda-mps-control on this machine (PATH, /usr/local/nvidia/bin, /usr/local/cuda/bin, /usr/bin): no CUDA MPS here"
        if answers; then
          say "MPS control daemon already running ($pipe)"
        else
          mkdir -p "$pipe" "$mlog"
          ctl -d || die "nvidia-cuda-mps-control -d failed (exit $?); see $mlog/control.log"
          for _ in $(seq 1 50); do answers && break; sleep 0.2; done
          answers || die "the MPS control daemon started but does not answer at $pipe/control; see $mlog/control.log"
          say "MPS control daemon started ($pipe, log $mlog)"
        fi
        printf 'export CUDA_MPS_PIPE_DIRECTORY=%q\nexport CUDA_MPS_LOG_DIRECTORY=%q\n' "$pipe" "$mlog" > "$HOME_DIR/mps.env"
        ;;
      stop)
        rm -f "$HOME_DIR/mps.env"  # first: whatever starts from now on takes turns on the GPU
        if answers; then
          echo quit | ctl > /dev/null 2>&1 || true
          for _ in $(seq 1 100); do answers || break; sleep 0.2; done
          answers && die "the MPS control daemon did not quit ($pipe)"
          say "MPS control daemon stopped"
        else
          say "no MPS control daemon running"
        fi
        ;;
      status)
        # 0: running; its servers (one starts with the first client) and whether a client ever connected
        answers || { say "no MPS control daemon running"; exit 1; }
        servers=$(echo get_server_list | ctl 2> /dev/null | tr '\n' ' ')
        # the control log names each client as it connects ("NEW CLIENT <pid> from user ...")
        clients=$(grep -c -i "new client" "$mlog/control.log" 2> /dev/null || true)
        say "MPS control daemon running; server(s): ${servers:-none}; client connections logged: ${clients:-0}"
        [ "${2:-}" != "--clients" ] || [ -n "${servers// /}" ] || [ "${clients:-0}" -gt 0 ] || exit 3
        ;;
      *) die "usage: $0 mps start|stop|status" ;;
    esac
    ;;

  start)
    [ $# -ge 1 ] || die "usage: $0 start --profile P [sweep args] (see se-res2net sweep --help)"
    mkdir -p "$LOGS"
    if [ -f "$HOME_DIR/sweep.pid" ] && kill -0 "$(cat "$HOME_DIR/sweep.pid")" 2> /dev/null; then
      die "a sweep is running already (pid $(cat "$HOME_DIR/sweep.pid")); 'progress' to watch it, 'stop' to end it"
    fi
    printf '%s\n' "$@" > "$HOME_DIR/sweep.args"
    # the checkout's runs of this profile (committed in earlier blocks), copied where the sweep looks: only the
    # files the runs root lacks, so what the sweep wrote on this machine is never replaced by an older copy
    profile=$(sweep_profile "$HOME_DIR/sweep.args")
    if [ -d "$SEED_RUNS/$profile" ]; then
      seeded=0
      while IFS= read -r f; do
        rel=${f#"$SEED_RUNS/"}; target=$RUNS_ROOT/$rel
        [ -e "$target" ] || { mkdir -p "$(dirname "$target")"; cp -p "$f" "$target"; seeded=$((seeded + 1)); }
      done < <(find "$SEED_RUNS/$profile" -type f ! -name '*.lock' ! -name '.*.tmp' | sort)
      say "seeded $RUNS_ROOT/$profile with $seeded file(s) of $SEED_RUNS/$profile it lacked"
    fi
    # checkpoints too big for git came as carried files: put them where the sweep resumes from
    if [ -d "$STAGE/resume" ]; then
      while IFS= read -r f; do
        rel=${f#"$STAGE/resume/"}; target=$RUNS_ROOT/$rel
        if [ -e "$target" ]; then say "kept $target (a carried copy of it was stashed too)"
        else mkdir -p "$(dirname "$target")"; cp -p "$f" "$target"; say "resume from $target (carried)"; fi
      done < <(find "$STAGE/resume" -type f -name '*.pt' | sort)
    fi
    # the compile cache of an earlier block, carried: used when compiled on this very machine (NO_COMPILE_CACHE=1:
    # never); the sweep's compiles then load kernels instead of generating them
    seed_compile_cache "$HOME_DIR/inductor-sweep"
    # setsid + nohup: the sweep outlives this call (and the machine's command limit); its workers die with it.
    # The wrapper writes sweep.exit when the sweep ends by itself; one ended from outside leaves none (`poll`)
    rm -f "$HOME_DIR/sweep.exit" "$HOME_DIR/sweep.stopped"
    # its compiles go to a cache of the runbook's own, which `poll` may delete (below)
    # shellcheck disable=SC2016  # $0 and $@ belong to the inner shell
    TORCHINDUCTOR_CACHE_DIR=$HOME_DIR/inductor-sweep setsid nohup bash -c '"$@"; echo $? > "$0"' "$HOME_DIR/sweep.exit" \
      "$PY" -m se_res2net sweep --no-progress --out-root "$RUNS_ROOT" "$@" >> "$LOGS/sweep.log" 2>&1 < /dev/null &
    echo $! > "$HOME_DIR/sweep.pid"
    how=""; [ -n "${CUDA_MPS_PIPE_DIRECTORY:-}" ] && how=" under CUDA MPS ($CUDA_MPS_PIPE_DIRECTORY)"
    say "sweep started (pid $!)$how, log $LOGS/sweep.log"
    ;;

  block)
    # The machine goes back 30 s after a call ends, so nothing may wait on a person between measuring and
    # running: this measures, decides by a fixed rule, and starts the sweep, detached; poll with `progress`.
    mkdir -p "$LOGS" "$RESULTS"
    printf '%s\n' "$@" > "$HOME_DIR/block.args"
    rm -f "$RESULTS/decision.txt"
    setsid nohup "$0" block-fg "$@" >> "$LOGS/block.log" 2>&1 < /dev/null &
    echo $! > "$HOME_DIR/block.pid"
    say "block started (pid $!), log $LOGS/block.log"
    ;;

  block-fg)
    # 1. se_res2net29 in every variant, then its concurrency in the fastest trainer variant (the decision needs
    #    both), then it stacked (STACKED_LEVELS models in one step), then the other report models while the bench
    #    budget lasts (BENCH_SECONDS, default 390).
    deadline=$(( $(date +%s) + ${BENCH_SECONDS:-390} ))
    left() { echo $(( deadline - $(date +%s) )); }
    BENCH_STEPS=${BENCH_STEPS:-50}; BENCH_WARMUP=${BENCH_WARMUP:-10}; CONC_STEPS=${CONC_STEPS:-200}
    # the benches compile into a cache of their own: a compile cut by the budget can leave a truncated artifact
    # behind (seen on CPU: "main.so: file too short" in the next compile), and it must not reach the sweep's
    bench_cache=$HOME_DIR/inductor-bench
    # the benches compile se_res2net29 as the sweep does: from the carried cache when there is one, seeded anew
    # after every cut (which deletes what the cut bench wrote)
    cut() { rm -rf "$bench_cache"; seed_compile_cache "$bench_cache"; }
    cut  # a block ended from outside before may have left one behind
    # keep PARTIAL as FINAL when it is a bench result with at least one row: a bench rewrites it (--out) after
    # every row, and one cut by the budget (SIGINT, or SIGKILL 20 s later) leaves there what it measured before
    # the cut (`interrupted` says where); with nothing measured it is dropped
    keep() {
      if "$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r['rows'] else 1)" "$1" 2> /dev/null; then
        mv "$1" "$2"
        "$PY" -c "import json,sys; from se_res2net.training.bench import format_result; print(format_result(json.load(open(sys.argv[1]))))" "$2"
      else
        rm -f "$1"; return 1
      fi
    }
    # timed WHAT NAME SECONDS BENCH-ARGS...: `se-res2net bench` within SECONDS into results/NAME.json
    timed() {
      local what=$1 name=$2 t=$3 rc=0; shift 3
      TORCHINDUCTOR_CACHE_DIR=$bench_cache timeout -s INT -k 20 "$t" "$PY" -m se_res2net bench --json --data auto \
        --steps "$BENCH_STEPS" --warmup "$BENCH_WARMUP" --out "$RESULTS/$name.json.partial" "$@" > /dev/null || rc=$?
      [ "$rc" -eq 0 ] || cut
      if keep "$RESULTS/$name.json.partial" "$RESULTS/$name.json"; then
        case $rc in
          0) ;;
          1) say "$what: a variant failed (its FAILED line above); the others were measured" ;;
          *) say "$what cut short (exit $rc): kept the rows it measured" ;;
        esac
      else
        say "$what measured nothing (exit $rc)"
      fi
    }
    # what an earlier block measured on this very machine (GPU name, torch, CUDA: read from each result's own
    # fields) and complete is taken instead of measured again (se_res2net.training.decision); REBENCH=1: never
    here=$RESULTS/machine.json
    se decide machine --out "$here"
    IFS=: read -ra prior <<< "$PRIOR_RESULTS"
    # measured KIND NAME [FIND ARGS]: results/NAME.json holds a complete result of this machine, this block's own
    # (an earlier `block` of this session) or one copied there from an earlier block's committed results
    measured() {
      local kind=$1 name=$2; shift 2
      [ -z "${REBENCH:-}" ] || return 1
      se decide find "$kind" --here "$here" --roots "$RESULTS/$name.json" "${prior[@]}" \
        --copy-to "$RESULTS/$name.json" "$@" | while read -r line; do say "$line"; done
      return "${PIPESTATUS[0]}"
    }
    variants=(plain eager compile cudagraphs)
    bench_model() {
      measured bench "bench-$1" --model "$1" --variants "${variants[@]}" --batch-size 128 --steps "$BENCH_STEPS" \
        --warmup "$BENCH_WARMUP" && return 0
      t=$(left); [ "$t" -gt 15 ] || { say "bench budget spent: $1 not measured"; return 0; }
      say "bench $1 (at most ${t}s)"
      timed "bench of $1" "bench-$1" "$t" --models "$1" --variants "${variants[@]}" --floor
    }
    bench_model se_res2net29
    # the rule (se_res2net.training.decision.decide): the fastest trainer variant of se_res2net29 ...
    variant=$(se decide rule --bench "$RESULTS/bench-se_res2net29.json" --print variant)
    if ! measured concurrency concurrency --model se_res2net29 --variants "$variant" --batch-size 128 \
         --steps "$CONC_STEPS" --warmup "$BENCH_WARMUP"; then
      t=$(left)
      if [ "$t" -gt 15 ]; then
        say "concurrency of se_res2net29 $variant (at most ${t}s)"
        timed "concurrency bench" concurrency "$t" --models se_res2net29 --variants "$variant" --concurrency 1 2 4 8 \
          --steps "$CONC_STEPS"
      fi
    fi
    # the same under CUDA MPS, where this machine has it (MPS=0: never); why not, if not, goes to results/mps.txt
    if ! measured concurrency concurrency-mps --model se_res2net29 --variants "$variant" --batch-size 128 \
         --steps "$CONC_STEPS" --warmup "$BENCH_WARMUP" --sharing mps; then
      t=$(left)
      if [ "${MPS:-1}" = 0 ]; then
        say "concurrency under CUDA MPS not measured (MPS=0)"
      elif ! find_mps_control > /dev/null; then
        say "concurrency under CUDA MPS not measured: no nvidia-cuda-mps-control on this machine" | tee -a "$RESULTS/mps.txt"
      elif [ "$t" -le 15 ]; then
        say "bench budget spent: concurrency under CUDA MPS not measured"
      elif "$0" mps start 2>&1 | tee -a "$RESULTS/mps.txt" && [ "${PIPESTATUS[0]}" -eq 0 ]; then
        say "concurrency of se_res2net29 $variant under CUDA MPS (at most ${t}s)"
        (. "$HOME_DIR/mps.env" && timed "concurrency bench under MPS" concurrency-mps "$t" --models se_res2net29 \
           --variants "$variant" --concurrency 1 2 4 8 --sharing mps --steps "$CONC_STEPS")
        # a result labelled mps whose processes never reached the daemon would be a time-slicing result
        if [ -f "$RESULTS/concurrency-mps.json" ] && ! "$0" mps status --clients 2>&1 | tee -a "$RESULTS/mps.txt"; then
          why="no process reached the MPS daemon"
          "$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); r['rejected']=sys.argv[3]; json.dump(r, open(sys.argv[2], 'w'), indent=2)" \
            "$RESULTS/concurrency-mps.json" "$RESULTS/concurrency-mps-rejected.json" "$why" && rm "$RESULTS/concurrency-mps.json"
          say "$why: that result is not one under MPS (kept as concurrency-mps-rejected.json, marked rejected)" \
            | tee -a "$RESULTS/mps.txt"
        fi
        "$0" mps stop 2>&1 | tee -a "$RESULTS/mps.txt" || say "the MPS daemon would not stop (above); what starts without its mps.env is not its client"
      else
        say "CUDA MPS could not be started (above): concurrency under it not measured" | tee -a "$RESULTS/mps.txt"
      fi
    fi
    # N models of se_res2net29 stacked into one vmapped step (se_res2net.training.stacked) in the same variant, to
    # set beside N processes: the first block's step was bound by its ~750 small kernels (floor: launches), which
    # processes taking turns cannot shorten and N-times-wider kernels might. Nothing decides from it (the sweep does
    # not stack); measured once per machine, as the rest; STACKED_LEVELS= (empty): never
    read -ra stacked_levels <<< "${STACKED_LEVELS-4}"
    if [ ${#stacked_levels[@]} -gt 0 ] && ! measured stacked stacked --model se_res2net29 --variants "$variant" \
         --batch-size 128 --steps "$CONC_STEPS" --warmup "$BENCH_WARMUP" --levels "${stacked_levels[@]}"; then
      t=$(left)
      if [ "$t" -gt 15 ]; then
        say "stacked se_res2net29 $variant, ${stacked_levels[*]} model(s) in one step (at most ${t}s)"
        timed "stacked bench" stacked "$t" --models se_res2net29 --variants "$variant" --stacked "${stacked_levels[@]}" \
          --steps "$CONC_STEPS"
      else
        say "bench budget spent: stacked se_res2net29 not measured"
      fi
    fi
    if [ ${#stacked_levels[@]} -gt 0 ] && [ -f "$RESULTS/stacked.json" ]; then
      "$PY" -c "import glob,json,sys; from se_res2net.training.bench import stacked_vs_processes as f; [print(l) for l in f(json.load(open(sys.argv[1])), [json.load(open(c)) for c in sorted(glob.glob(sys.argv[2] + '/concurrency*.json'))])]" \
        "$RESULTS/stacked.json" "$RESULTS" | while read -r line; do say "$line"; done | tee "$RESULTS/stacked.txt" || true
    fi
    for m in res2net29 resnet56 se_resnet110 densenet_bc100; do bench_model "$m"; done
    # ... and the number of concurrent runs with the most aggregate images/s (1 when not measured), taking turns
    # or under MPS; when MPS wins but cannot be started again, the rule decides again without it
    conc=("$RESULTS/concurrency.json" "$RESULTS/concurrency-mps.json")
    decide_now() {
      read -ra comp < <(se decide rule --bench "$RESULTS/bench-se_res2net29.json" --concurrency "${conc[@]}" \
        --here "$here" --out "$RESULTS/decision.json" --print args)
      sharing=$(se decide rule --bench "$RESULTS/bench-se_res2net29.json" --concurrency "${conc[@]}" --print sharing)
    }
    decide_now
    if [ "$sharing" = mps ] && ! "$0" mps start; then
      say "the rule took CUDA MPS, which does not start now: deciding again without it"
      conc=("$RESULTS/concurrency.json"); decide_now
    fi
    se decide rule --bench "$RESULTS/bench-se_res2net29.json" --concurrency "${conc[@]}" \
      | while read -r line; do say "$line"; done | tee "$RESULTS/decision.txt"
    # 2. the sweep, detached (it outlives this script too), and the GPU parity check beside it
    "$0" start "$@" "${comp[@]}"
    "$0" parity-fg
    say "block done"
    ;;

  progress)
    profile=$(sweep_profile "$HOME_DIR/sweep.args")
    if [ -f "$HOME_DIR/sweep.pid" ] && kill -0 "$(cat "$HOME_DIR/sweep.pid")" 2> /dev/null; then
      say "sweep running (pid $(cat "$HOME_DIR/sweep.pid"))"
    else
      say "no sweep running; last lines of its log:"; tail -n 3 "$LOGS/sweep.log" 2> /dev/null || true
    fi
    se progress --profile "$profile" --out-root "$RUNS_ROOT" "$@"
    ;;

  parity-fg)
    # the GPU parity check of se_res2net29 (its verdict and curves -> results/parity-cuda.json); parity.exit
    # says it ran to its end (pass or fail), so `poll` runs it again only when it was ended from outside
    echo $$ > "$HOME_DIR/parity.pid"; rm -f "$HOME_DIR/parity.exit"
    read -ra pvariants <<< "${PARITY_VARIANTS:-cuda_defaults cuda_defaults_cudagraphs}"
    # measured before on this machine (an earlier block's committed result, judged from its own fields; REBENCH=1:
    # never): the GPU is left to the sweep. Its verdict, pass or fail, stands until the code or the machine changes
    here=$RESULTS/machine-parity.json
    IFS=: read -ra prior <<< "$PRIOR_RESULTS"
    if [ -z "${REBENCH:-}" ] && se decide machine --device "${PARITY_DEVICE:-cuda}" --out "$here" && [ ${#prior[@]} -gt 0 ] \
       && found=$(se decide find parity --here "$here" --roots "${prior[@]}" --model se_res2net29 \
                  --variants eager_fp32 "${pvariants[@]}" --epochs "${PARITY_EPOCHS:-4}" \
                  --noise-seeds "${PARITY_NOISE_SEEDS:-2}"); then
      say "$found; not run again"
      echo 0 > "$HOME_DIR/parity.exit"
      exit 0
    fi
    say "parity: eager fp32 against ${PARITY_VARIANTS:-the CUDA defaults, with and without CUDA graphs}"
    rc=0
    # shellcheck disable=SC2086  # PARITY_ARGS is a word list
    "$PY" -m se_res2net parity --model se_res2net29 --variants "${pvariants[@]}" \
      --epochs "${PARITY_EPOCHS:-4}" --subset "${PARITY_SUBSET:-10000}" --test-subset "${PARITY_TEST_SUBSET:-2000}" --data auto \
      --device "${PARITY_DEVICE:-cuda}" --noise-seeds "${PARITY_NOISE_SEEDS:-2}" ${PARITY_ARGS:-} \
      --json "$RESULTS/parity-cuda.json" > "$LOGS/parity.log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || say "parity failed (exit $rc); see $LOGS/parity.log"
    echo "$rc" > "$HOME_DIR/parity.exit"
    ;;

  poll)
    # The device calls after the one that started a block: the machine ends a call's detached processes too
    # when commands run as an ordinary user rather than root (device README). So: a sweep that ended neither by
    # itself (sweep.exit) nor by `stop` (sweep.stopped) is started again, resuming from its checkpoints; then
    # progress; then wait up to SECONDS (default 0) for it to end, which keeps the machine held meanwhile.
    limit=${1:-0}
    mkdir -p "$LOGS"
    say "polling as uid $(id -u)"
    if [ -f "$LOGS/block.log" ]; then say "last lines of the block's log:"; tail -n 4 "$LOGS/block.log"; fi
    alive() { [ -f "$HOME_DIR/$1.pid" ] && kill -0 "$(cat "$HOME_DIR/$1.pid")" 2> /dev/null; }
    if [ -f "$HOME_DIR/block.pid" ] && ! alive block && [ ! -f "$RESULTS/decision.txt" ]; then
      say "the block ended before it decided (ended from outside?); run 'block' again, its benches' results are kept"
    fi
    if [ -f "$RESULTS/decision.txt" ] && [ -f "$HOME_DIR/parity.pid" ] && ! alive block && ! alive parity \
       && [ ! -f "$HOME_DIR/parity.exit" ]; then
      say "the parity check was ended from outside: starting it again, detached (log $LOGS/parity.log)"
      setsid nohup "$0" parity-fg >> "$LOGS/block.log" 2>&1 < /dev/null &
    fi
    if [ -f "$HOME_DIR/sweep.args" ] && ! alive sweep && [ ! -f "$HOME_DIR/sweep.exit" ] && [ ! -f "$HOME_DIR/sweep.stopped" ]; then
      say "the sweep was ended from outside (not by itself, not by 'stop'): starting it again from its checkpoints"
      # under MPS (mps.env kept): its daemon went with it; without one the clients could not start at all
      if [ -f "$HOME_DIR/mps.env" ] && ! "$0" mps status > /dev/null 2>&1; then
        if ! "$0" mps start; then
          rm -f "$HOME_DIR/mps.env"; unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
          say "MPS does not start again: the sweep takes turns on the GPU"
        fi
      fi
      # a kill mid-compile can leave a truncated artifact that fails every later compile: start with none
      rm -rf "$HOME_DIR/inductor-sweep"
      mapfile -t args < "$HOME_DIR/sweep.args"
      "$0" start "${args[@]}"
    fi
    "$0" progress
    if [ "$limit" -gt 0 ] && [ -f "$HOME_DIR/sweep.pid" ]; then "$0" wait "$limit" || true; fi
    ;;

  wait)
    limit=${1:-0}; t0=$(date +%s)
    [ -f "$HOME_DIR/sweep.pid" ] || die "no sweep was started"
    while kill -0 "$(cat "$HOME_DIR/sweep.pid")" 2> /dev/null; do
      if [ "$limit" -gt 0 ] && [ $(( $(date +%s) - t0 )) -ge "$limit" ]; then say "still running after ${limit}s"; exit 124; fi
      sleep 2
    done
    say "the sweep has ended; last lines of its log:"; tail -n 5 "$LOGS/sweep.log"
    ;;

  stop)
    [ -f "$HOME_DIR/sweep.pid" ] || die "no sweep was started"
    pid=$(cat "$HOME_DIR/sweep.pid")
    touch "$HOME_DIR/sweep.stopped"  # `poll` leaves a stopped sweep alone
    if kill -0 "$pid" 2> /dev/null; then
      kill -TERM -- "-$pid" 2> /dev/null || kill -TERM "$pid"  # the session: the sweep and its workers
      for _ in $(seq 1 60); do kill -0 "$pid" 2> /dev/null || break; sleep 0.5; done
      say "sweep $pid stopped; its runs resume from their checkpoints when started again"
    else
      say "sweep $pid is not running"
    fi
    ;;

  pack)
    out=${1:-}; [ -n "$out" ] || die "usage: $0 pack OUT_DIR [se-res2net pack args]"; shift
    extras=()
    for d in "$RESULTS" "$LOGS"; do [ -d "$d" ] && extras+=(--extra "$d"); done
    # the sweep's compile cache, for the next block (optional: left out, not failing, when it does not fit)
    if [ -d "$HOME_DIR/inductor-sweep" ]; then
      extras+=(--compile-cache "$HOME_DIR/inductor-sweep")
      [ -f "$RESULTS/machine.json" ] && extras+=(--compile-cache-machine "$RESULTS/machine.json")
    fi
    # a checkpoint carried in that trained nothing here stays behind: the checkout has it (unpack's restore puts
    # the lifted copy back), and the archives' room goes to the runs that did train
    [ -d "$STAGE/resume" ] && extras+=(--skip-unchanged "$STAGE/resume")
    se pack "$out" --runs-root "$RUNS_ROOT" --prefix "$ARCHIVE_RUNS" "${extras[@]}" "$@"
    ls -l "$out"
    ;;

  unpack)
    [ -n "${1:-}" ] || die "usage: $0 unpack ARCHIVE_DIR [--force]"
    dest=${UNPACK_DEST:-$REPO}
    archives=$1; shift
    # a conflict (a complete local record that differs: exit 1) or a broken set of archives (nothing extracted)
    # must not leave the lifted checkpoints out of the tree: settle, restore and file run all the same, and this
    # step ends with unpack's status
    unpack_rc=0
    se unpack "$archives" --dest "$dest" "$@" || unpack_rc=$?
    # a complete run needs no checkpoint; an unfinished one's of >= COMMIT_LIMIT bytes (default 6 MB) is compacted
    # (lossless); if it is still that big, git cannot hold it: it goes to .xfer/resume, to be carried to the next
    # block (`calls` plans it, `stash` takes it)
    "$PY" -c "
import sys
from se_res2net.training.transfer import COMMIT_LIMIT, settle_checkpoints
done = settle_checkpoints(sys.argv[1], sys.argv[2], int(sys.argv[3] or COMMIT_LIMIT))
for path in done['removed']: print('removed the checkpoint of a complete run:', path)
for path in done['compacted']: print('compacted (lossless, checked):', path)
for path in done['moved']: print('too big for git; carry it to resume:', path)
for path in done['kept']: print('to resume from (commit it):', path)
for path in done['carried']: print('to resume from (carry it):', path)" "$dest/$ARCHIVE_RUNS" "$dest/.xfer/resume" "${COMMIT_LIMIT:-}"
    # what `prepare` lifted out of this checkout: back in git, unless a newer checkpoint came back
    if [ -f "$dest/$LIFTED_REL/LIFTED.json" ]; then bash "$0" restore "$dest"; fi
    # the block's results/ and logs/ (extracted under extra/): filed as benchmarks/gpu/block-<time>/, where the
    # next block finds what it need not measure again; a GPU parity check also goes to book/parity/
    "$PY" -c "
import sys
from se_res2net.training.transfer import file_block_results
done = file_block_results(sys.argv[1])
if done['block']: print(f\"filed {len(done['filed'])} file(s) of the block's results and logs in {done['block']}\")
for new, old in done['duplicates']: print('already filed, byte for byte, as', old)
for path in done['parity']: print('the GPU parity check, for the protocol chapter:', path)" "$dest"
    if [ -f "$dest/.xfer/compile-cache/inductor.tar.gz" ]; then
      echo "the sweep's compile cache, for the next block: $dest/.xfer/compile-cache ($(du -h "$dest/.xfer/compile-cache/inductor.tar.gz" | cut -f1); 'calls' carries it, 'start' seeds from it)"
    fi
    if [ "$unpack_rc" -ne 0 ]; then
      echo "unpack ended with status $unpack_rc (see its message above); what prepare lifted is back in place" >&2
      exit "$unpack_rc"
    fi
    ;;

  *) die "unknown step '$step'; steps: prepare restore split manifest calls stash setup bench mps block start progress wait stop pack unpack" ;;
esac
