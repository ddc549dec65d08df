#!/usr/bin/env bash
# Print the local stack's master key, creating $CIE_DATA_DIR/master.key (mode 600) when missing.
# For development, the demo and CI only: production sets CIE_MASTER_KEY from its secret store.
set -euo pipefail
data_dir=${CIE_DATA_DIR:-$(cd -- "$(dirname -- "$0")/.." && pwd)/.data}
key_file=$data_dir/master.key
mkdir -p -- "$data_dir"
if [[ ! -s $key_file ]]; then
    (umask 077 && head -c 32 /dev/urandom | base64 >"$key_file")
fi
cat -- "$key_file"
