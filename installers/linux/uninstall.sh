#!/bin/sh
# Remove what install.sh put in place: the menu entry and the icon (while they are still the ones
# it wrote for this install), the links in the bin folder (only links that still point into this
# install) and the program's files listed in .refit-studio-files. Files someone else put into
# this folder stay, and so does the folder then.
#
#   uninstall.sh                 # everything
#   uninstall.sh --keep-folder   # the menu entry, the icon and the links; not the program
set -eu

die() {
    printf 'uninstall.sh: %s\n' "$1" >&2
    exit 1
}
warn() {
    printf 'uninstall.sh: %s\n' "$1" >&2
}

keep_folder=0
while [ $# -gt 0 ]; do
    case $1 in
        --keep-folder) keep_folder=1; shift ;;
        -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help); nothing was removed." ;;
    esac
done

here=$(cd -P -- "$(dirname -- "$0")" && pwd -P)
record="$here/.refit-studio-install"
files="$here/.refit-studio-files"

if [ ! -f "$record" ] || [ -L "$record" ]; then
    die "$here is not a Refit Studio install made by install.sh (no $record)."
fi
if [ ! -f "$here/refit-studio" ] || [ ! -f "$files" ] || [ -L "$files" ]; then
    die "$here does not hold a whole Refit Studio install (its program or its list of files is missing); nothing was removed."
fi
home=$(cd -P -- "${HOME:-/}" 2>/dev/null && pwd -P) || home=/
if [ "$here" = / ] || [ "$here" = "$home" ]; then
    die "$here is not a folder Refit Studio can have been installed in; nothing was removed."
fi

# What the desktop entry must say for it to be this install's (see desktop_string in install.sh).
tryexec="TryExec=$(printf '%s' "$here/refit-studio" | sed -e 's/\\/\\\\/g')"

# The record names files outside this folder; each is removed only when it is, by its name and
# its content, what install.sh wrote for this install. A line naming anything else is refused.
while IFS= read -r line || [ -n "$line" ]; do
    path=${line#*=}
    case $path in
        /*) ;;
        *) [ -z "$line" ] || warn "left '$line' in $record alone: not an absolute path."; continue ;;
    esac
    case $line in
        desktop=*/applications/refit-studio.desktop)
            if [ -f "$path" ] && [ ! -L "$path" ] && grep -qxF -e "$tryexec" "$path"; then
                rm -f "$path"
                applications=$(dirname "$path")
            elif [ -e "$path" ] || [ -L "$path" ]; then
                warn "left $path: it is not the menu entry of this install."
            fi
            ;;
        icon=*/icons/hicolor/256x256/apps/refit-studio.png)
            if [ -f "$path" ] && [ ! -L "$path" ] && cmp -s "$path" "$here/refit-studio.png"; then
                rm -f "$path"
            elif [ -e "$path" ] || [ -L "$path" ]; then
                warn "left $path: it is not the icon this install put there."
            fi
            ;;
        link=*/refit | link=*/refit-studio)
            if [ -L "$path" ] && [ "$(readlink "$path")" = "$here/${path##*/}" ]; then
                rm -f "$path"
            fi
            ;;
        *) warn "left '$line' in $record alone: install.sh never writes such a line." ;;
    esac
done <"$record"

if [ -n "${applications:-}" ] && command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database -q "$applications" 2>/dev/null || true
fi

[ "$keep_folder" = 0 ] || exit 0

# The program's files: only those both listed and found by walking this folder (find does not
# follow links, so nothing outside the folder is reached), files first, then the folders that
# are left empty, deepest first. A path a line: install.sh refuses names with a line break.
cd "$here"
listed() {
    awk 'NR == FNR { listed[$0] = 1; next } ($0 in listed)' "$files" -
}
find . ! -name . ! -type d -print | listed | tr '\n' '\0' | xargs -0 rm -f --
find . -depth ! -name . -type d -print | listed | tr '\n' '\0' | xargs -0 rmdir -- 2>/dev/null ||
    true
rm -f -- "$files" "$record"
cd /
if rmdir -- "$here" 2>/dev/null; then
    printf 'Refit Studio is removed (%s).\n' "$here"
else
    printf 'Refit Studio is removed; %s is left with the files in it that it did not install.\n' \
        "$here"
fi
