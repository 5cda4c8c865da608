#!/bin/bash
# tcplab load workers on several machines, started over ssh by GNU parallel, all at
# one --start-at; their reports come back here and `tcplab merge` makes one report
# of them, percentiles exact. The same command line runs on every machine, only
# --worker-index changing ({2} below).
#
#   deploy/parallel/run-workers.sh
#
# EDIT:
#   - HOSTS: the load machines (ssh logins; tcplab on each one's PATH);
#   - SOURCES: one address of each machine, in HOSTS' order, as a range
#     FIRST-LAST (worker I connects from the I-th share of it), or leave it empty
#     to let each machine choose;
#   - SERVER, PORT, BYTES, CONNECTIONS (over all the workers);
#   - LEAD: seconds from now to the start; enough for ssh and for every worker to
#     connect its share (a worker that comes up after it refuses, exit 2);
#   - the machines' clocks must agree (NTP or chrony): each starts by its own clock.
set -euo pipefail

HOSTS=(load1.example.net load2.example.net load3.example.net)   # EDIT
SOURCES=10.0.0.1-10.0.0.3                                        # EDIT (or empty)
SERVER=10.0.0.10 PORT=4000 BYTES=4K CONNECTIONS=30000            # EDIT
LEAD=15                                                          # EDIT

command -v parallel >/dev/null || { echo "needs GNU parallel (apt-get install parallel)" >&2; exit 1; }
n=${#HOSTS[@]}
start_at=$(( $(date +%s) + LEAD ))
out=reports-$start_at
mkdir -p "$out"
source_arg=${SOURCES:+--source $SOURCES}

# --jobs 0: every worker at once (by default parallel runs one job per local core,
# and a worker started late would refuse its past --start-at). Each writes its
# report remotely (also when its run fails), prints its summary on standard error,
# then the report on standard output, which lands in $out/wI.json here. --tag
# prefixes the summaries with the host.
parallel --will-cite --jobs 0 --link --tag \
  "ssh {1} 'tcplab uppercase client $SERVER $PORT $BYTES --connections $CONNECTIONS \
     --workers $n --worker-index {2} --start-at $start_at $source_arg --no-progress \
     --report /tmp/tcplab-$start_at-{2}.json >&2; cat /tmp/tcplab-$start_at-{2}.json' \
     > $out/w{2}.json" \
  ::: "${HOSTS[@]}" ::: $(seq 0 $((n - 1))) || echo "some workers failed: merging the others" >&2

# A worker that wrote no report (it could not start) left an empty file.
find "$out" -name 'w*.json' -empty -delete
tcplab merge "$out"/w*.json
