#!/bin/sh
# Back up Barri servers while they run: one dated copy per server, the newest KEEP kept.
#
#     deploy/backup.sh DEST CONFIG [CONFIG ...]
#
# Each CONFIG is a barri.toml (an instance's or the aggregator's). `barri backup` copies its
# database through SQLite's online backup API: a consistent snapshot even while the server
# writes. Copies go to DEST/<config's folder name>/<name>-<UTC time>.sqlite3, mode 0600 (they
# hold the actors' private keys), with a copy of barri.toml beside them (its secret is needed
# with the database). Run it as the servers' user (sudo -u barri), daily from cron or from
# systemd/barri-backup.timer. Copy DEST off the machine too.
#
# Environment: BARRI, the barri command (default: barri); KEEP, copies kept per server
# (default: 14). Exit status 1 if any server could not be backed up.
set -eu
BARRI=${BARRI:-barri}
KEEP=${KEEP:-14}
if [ $# -lt 2 ]; then
    echo "usage: $0 DEST CONFIG [CONFIG ...]" >&2
    exit 2
fi
dest=$1
shift
umask 077
status=0
for config in "$@"; do
    name=$(basename "$(cd "$(dirname "$config")" && pwd)")
    folder="$dest/$name"
    mkdir -p "$folder"
    file="$folder/$name-$(date -u +%Y%m%dT%H%M%SZ).sqlite3"
    # $BARRI unquoted on purpose: it may be a command with arguments (python -m federation.cli).
    if $BARRI backup --config "$config" --to "$file"; then
        cp "$config" "$folder/barri.toml"
        # Names sort by time: drop all but the newest $KEEP.
        ls -1 "$folder/$name"-*.sqlite3 | sort -r | tail -n +"$((KEEP + 1))" |
            while IFS= read -r old; do rm -f -- "$old"; done
    else
        echo "backup.sh: could not back up $config" >&2
        status=1
    fi
done
exit "$status"
