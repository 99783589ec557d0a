#!/usr/bin/env bash
# demo.sh BIN HOST PORT: serve the default model.
# The default model is the first found of $HOTPATH_MODEL, ./models/*.gguf,
# ../shared/models/stories260K.gguf.
set -euo pipefail
bin=$1 host=$2 port=$3
model=$(bash "$(dirname "$0")/find-model.sh" || true)
if [ -z "$model" ]; then
  cat >&2 <<MSG
demo: no model found. Looked at \$HOTPATH_MODEL, ./models/*.gguf and
../shared/models/stories260K.gguf. Pass one of:
  HOTPATH_MODEL=/path/to/model.gguf make demo
  mkdir -p models && cp /path/to/model.gguf models/ && make demo
MSG
  exit 1
fi
echo "demo: serving $model on http://$host:$port (Ctrl-C to stop)"
echo "demo: try: curl http://$host:$port/v1/chat/completions -H 'Content-Type: application/json' -d '{\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}],\"max_tokens\":40}'"
exec "$bin" serve -m "$model" --host "$host" --port "$port"
