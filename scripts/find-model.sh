#!/usr/bin/env bash
# find-model.sh: print the default model's path, the first found of
# $HOTPATH_MODEL, ./models/*.gguf and ../shared/models/stories260K.gguf.
# Prints nothing and exits 1 when there is none. Run by demo.sh and
# bench.sh so both agree on what "the default model" is.
if [ -n "${HOTPATH_MODEL:-}" ]; then
  echo "$HOTPATH_MODEL"
  exit 0
fi
for f in models/*.gguf ../shared/models/stories260K.gguf; do
  if [ -f "$f" ]; then echo "$f"; exit 0; fi
done
exit 1
