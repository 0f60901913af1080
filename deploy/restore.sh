#!/bin/sh
# Put a backup in place of a Barri server's database: stop the service, restore, start it.
#
#     deploy/restore.sh CONFIG BACKUP [SERVICE]
#
# SERVICE (barri-instance, barri-aggregator) is stopped with systemctl first and started
# again afterwards. `barri restore` refuses while the server still answers on its listen
# address, checks the backup (intact, a Barri database of the same kind), and keeps the
# database it replaces beside it as <name>.before-restore-<time>, with its WAL. Run as root
# (the restore then runs as the owner of the config's folder, so the server can open the
# file) or as that owner. The restored server sends the deliveries that were still queued
# when the backup was taken.
#
# Environment: BARRI, the barri command (default: barri).
set -eu
BARRI=${BARRI:-barri}
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: $0 CONFIG BACKUP [SERVICE]" >&2
    exit 2
fi
config=$1
backup=$2
service=${3:-}
if [ -n "$service" ]; then
    systemctl stop "$service"
fi
owner=$(stat -c %U "$(dirname "$config")")
# $BARRI unquoted on purpose: it may be a command with arguments (python -m federation.cli).
if [ "$(id -u)" = 0 ] && [ "$owner" != root ]; then
    runuser -u "$owner" -- $BARRI restore --config "$config" --from "$backup"
else
    $BARRI restore --config "$config" --from "$backup"
fi
if [ -n "$service" ]; then
    systemctl start "$service"
fi
