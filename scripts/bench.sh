#!/usr/bin/env bash
# bench.sh BIN: prompt and generation speed of the default model (the same
# lookup as `make demo`), as `hotpath run --bench` measures it. Extra
# arguments go to hotpath: `make bench BENCH_ARGS="-p 512 -n 128 -t 2"`.
set -euo pipefail
bin=$1; shift
model=$(bash "$(dirname "$0")/find-model.sh" || true)
if [ -z "$model" ]; then
  echo "bench: no model found; run HOTPATH_MODEL=/path/to/model.gguf make bench" >&2
  exit 1
fi
echo "bench: $model ($(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))" >&2
exec "$bin" run -m "$model" --bench ${BENCH_ARGS:--p 512 -n 128 --reps 3} "$@"
