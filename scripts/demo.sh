#!/usr/bin/env bash
# The whole pipeline on the real Online Retail data: publish, project until lag 0, read back over HTTP.
# Called by `make demo` after the services are up. Safe to run again: the import
# ledger skips files already published and projections ignore repeated event ids.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=stack/lib.sh
source "$(dirname -- "$0")/stack/lib.sh"
cd "$REPO_DIR"
cie=${CIE_VENV:-$REPO_DIR/.venv}/bin/cie
data_root=${CIE_SHARED_DATA:-$REPO_DIR/../shared/data}

say demo "1/5 creating topics and projection tables"
"$cie" init

# One API key per data folder: a second run reuses the token instead of creating another key.
demo_key=$CIE_DATA_DIR/demo-api-key
if [[ -s $demo_key ]]; then
    say demo "using the API key in $demo_key"
else
    rm -f -- "$demo_key"
    "$cie" keys create --name demo --scope profiles:read --scope analytics:read --scope events:write \
        --token-file "$demo_key"
fi

say demo "2/5 starting the stream workers: projections, the sentiment scorer and the recommender"
scripts/app.sh start worker scorer recommender

say demo "3/5 publishing the retail orders and the product reviews in $data_root as events"
"$cie" import-retail --data-dir "$data_root/online_retail"
"$cie" import-reviews --data-dir "$data_root"

say demo "4/5 waiting until every projection, the scorer and the recommender have consumer lag 0, and every recommendation list is exact"
"$cie" lag --wait "${CIE_DEMO_TIMEOUT:-1800}" --lists

say demo "5/5 starting the API"
scripts/app.sh start api
CIE_DATA_DIR=$CIE_DATA_DIR "$cie" report  # reads the key in $demo_key
