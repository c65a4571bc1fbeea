#!/bin/sh
# Remove what install.sh put in place: the menu entry, the icon, the links in the bin folder
# (only links that still point into this install) and this folder itself.
#
#   uninstall.sh                 # everything
#   uninstall.sh --keep-folder   # all but this folder (install.sh uses it before reinstalling)
set -eu

here=$(cd "$(dirname "$0")" && pwd -P)
record="$here/.refit-studio-install"
keep_folder=0
[ "${1:-}" = --keep-folder ] && keep_folder=1

if [ ! -f "$record" ]; then
    printf 'uninstall.sh: %s is not a Refit Studio install made by install.sh (no %s).\n' \
        "$here" "$record" >&2
    exit 1
fi

while IFS= read -r line; do
    path=${line#*=}
    case $line in
        desktop=*) rm -f "$path"; applications=$(dirname "$path") ;;
        icon=*) rm -f "$path" ;;
        link=*)
            if [ -L "$path" ]; then
                case $(readlink "$path") in "$here"/*) rm -f "$path" ;; esac
            fi
            ;;
    esac
done <"$record"

if [ -n "${applications:-}" ] && command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database -q "$applications" 2>/dev/null || true
fi

if [ "$keep_folder" = 0 ]; then
    rm -rf "$here"
    printf 'Refit Studio is removed (%s).\n' "$here"
fi
