#!/bin/sh
# Install Refit Studio for the current user (no root needed):
#
#   ./install.sh                      # into ~/.local/opt/refit-studio
#   ./install.sh --prefix DIR         # into DIR (the folder that will hold the program)
#   ./install.sh --bindir DIR         # the links `refit` and `refit-studio` go there (~/.local/bin)
#
# Copies this folder to the prefix, writes the menu entry
# ($XDG_DATA_HOME or ~/.local/share)/applications/refit-studio.desktop with absolute paths (a
# .desktop file cannot name a program relative to itself), puts the 256 px icon into the hicolor
# theme and links both commands into the bin folder. What it wrote is listed in
# PREFIX/.refit-studio-install, which uninstall.sh reads.
set -eu

die() {
    printf 'install.sh: %s\n' "$1" >&2
    exit 1
}

here=$(cd "$(dirname "$0")" && pwd -P)
prefix="$HOME/.local/opt/refit-studio"
bindir="$HOME/.local/bin"
data="${XDG_DATA_HOME:-$HOME/.local/share}"

while [ $# -gt 0 ]; do
    case $1 in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a folder."; prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#--prefix=}; shift ;;
        --bindir) [ $# -ge 2 ] || die "--bindir needs a folder."; bindir=$2; shift 2 ;;
        --bindir=*) bindir=${1#--bindir=}; shift ;;
        -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)." ;;
    esac
done

case $prefix in /*) ;; *) prefix="$PWD/$prefix" ;; esac
case $bindir in /*) ;; *) bindir="$PWD/$bindir" ;; esac
case $prefix$bindir$data in *'
'*) die "folder names with a line break are not supported." ;; esac
[ -x "$here/refit-studio" ] || die "$here/refit-studio is missing: run install.sh from the unpacked refit-studio folder."

record_name=.refit-studio-install

# Copy the program unless this folder already is the prefix.
if [ ! -d "$prefix" ] || [ "$(cd "$prefix" && pwd -P)" != "$here" ]; then
    if [ -e "$prefix" ]; then
        if [ -f "$prefix/$record_name" ]; then
            "$prefix/uninstall.sh" --keep-folder >/dev/null 2>&1 || true
            rm -rf "$prefix"
        elif [ -d "$prefix" ] && [ -z "$(ls -A "$prefix")" ]; then
            rmdir "$prefix"
        else
            die "$prefix exists and is not a Refit Studio install: choose another --prefix or remove it."
        fi
    fi
    mkdir -p "$(dirname "$prefix")"
    partial="$prefix.partial.$$"
    rm -rf "$partial"
    cp -a "$here" "$partial"
    mv "$partial" "$prefix"
fi
prefix=$(cd "$prefix" && pwd -P)

# A .desktop Exec value: quoted when it has to be, then escaped as a desktop-file string.
desktop_exec() {
    case $1 in
        *[!A-Za-z0-9/._+-]*)
            printf '"%s"' "$(printf '%s' "$1" | sed -e 's/[\\"`$]/\\&/g')" |
                sed -e 's/\\/\\\\/g' -e 's/%/%%/g'
            ;;
        *) printf '%s' "$1" ;;
    esac
}
desktop_string() {
    printf '%s' "$1" | sed -e 's/\\/\\\\/g'
}

applications="$data/applications"
icon_dir="$data/icons/hicolor/256x256/apps"
desktop_file="$applications/refit-studio.desktop"
icon_file="$icon_dir/refit-studio.png"
mkdir -p "$applications" "$icon_dir"
cp "$prefix/refit-studio.png" "$icon_file"

while IFS= read -r line; do
    case $line in
        Exec=*) printf 'Exec=%s\n' "$(desktop_exec "$prefix/refit-studio")" ;;
        TryExec=*) printf 'TryExec=%s\n' "$(desktop_string "$prefix/refit-studio")" ;;
        Icon=*) printf 'Icon=%s\n' "$(desktop_string "$icon_file")" ;;
        *) printf '%s\n' "$line" ;;
    esac
done <"$prefix/refit-studio.desktop" >"$desktop_file.partial"
mv "$desktop_file.partial" "$desktop_file"

{
    printf 'desktop=%s\n' "$desktop_file"
    printf 'icon=%s\n' "$icon_file"
} >"$prefix/$record_name"

mkdir -p "$bindir"
for name in refit-studio refit; do
    link="$bindir/$name"
    if [ -e "$link" ] && [ ! -L "$link" ]; then
        printf 'install.sh: %s exists and is not a link; left as it is.\n' "$link" >&2
        continue
    fi
    ln -sfn "$prefix/$name" "$link"
    printf 'link=%s\n' "$link" >>"$prefix/$record_name"
done

if command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database -q "$applications" 2>/dev/null || true
fi
if command -v gtk-update-icon-cache >/dev/null 2>&1; then
    gtk-update-icon-cache -q -t "$data/icons/hicolor" 2>/dev/null || true
fi

printf 'Refit Studio is installed in %s\n' "$prefix"
printf 'Menu entry: %s\n' "$desktop_file"
case ":${PATH:-}:" in
    *":$bindir:"*) ;;
    *) printf 'Add %s to PATH to run `refit` and `refit-studio` from a terminal.\n' "$bindir" ;;
esac
printf 'To remove it: %s/uninstall.sh\n' "$prefix"
