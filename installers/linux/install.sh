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
# PREFIX/.refit-studio-install and PREFIX/.refit-studio-files, which uninstall.sh reads.
set -eu

die() {
    printf 'install.sh: %s\n' "$1" >&2
    exit 1
}

here=$(cd -P -- "$(dirname -- "$0")" && pwd -P)
record_name=.refit-studio-install
files_name=.refit-studio-files
prefix=
bindir=

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

# HOME is only needed for what was not given; an unset, empty or relative HOME is not used.
home=${HOME:-}
case $home in /*) ;; *) home= ;; esac
need_home() {
    [ -n "$home" ] || die "HOME is not set to an absolute folder: give --prefix and --bindir, and set XDG_DATA_HOME."
}
[ -n "$prefix" ] || { need_home; prefix="$home/.local/opt/refit-studio"; }
[ -n "$bindir" ] || { need_home; bindir="$home/.local/bin"; }
# The XDG base directory specification: a relative XDG_DATA_HOME is ignored.
case ${XDG_DATA_HOME:-} in
    /*) data=$XDG_DATA_HOME ;;
    *) need_home; data="$home/.local/share" ;;
esac

case $prefix in /*) ;; *) prefix="$PWD/$prefix" ;; esac
# No trailing slash: "$prefix.partial" must lie next to the prefix, and -L must see a link.
prefix=${prefix%"${prefix##*[!/]}"}
prefix=${prefix:-/}
case $bindir in /*) ;; *) bindir="$PWD/$bindir" ;; esac
case $prefix$bindir$data$here in *'
'*) die "folder names with a line break are not supported." ;; esac
[ -x "$here/refit-studio" ] || die "$here/refit-studio is missing: run install.sh from the unpacked refit-studio folder."
[ -z "$(find "$here" -name '*
*' -print | head -n 1)" ] || die "$here holds a file name with a line break; it is not a Refit Studio folder as released."
[ ! -L "$prefix" ] || die "$prefix is a link: give the folder itself, or another --prefix."

applications="$data/applications"
icon_dir="$data/icons/hicolor/256x256/apps"
desktop_file="$applications/refit-studio.desktop"
icon_file="$icon_dir/refit-studio.png"
# Every folder first, so that a bad one stops the install before anything is copied.
for folder in "$(dirname "$prefix")" "$bindir" "$applications" "$icon_dir"; do
    mkdir -p "$folder" 2>/dev/null && [ -w "$folder" ] || die "cannot write to the folder $folder."
done

# What the program consists of, as uninstall.sh finds it: ./-relative paths, one a line.
list_files() {
    (cd "$1" && find . ! -name . ! -path "./$record_name" ! -path "./$files_name" -print)
}

# Copy the program unless this folder already is the prefix: into a new folder next to the
# prefix first, then the previous install (if any) is removed and the copy takes its place.
if [ ! -d "$prefix" ] || [ "$(cd -P "$prefix" && pwd -P)" != "$here" ]; then
    case "$(cd -P "$(dirname "$prefix")" && pwd -P)/" in
        "$here"/*) die "the prefix cannot be inside the folder install.sh runs from ($here)." ;;
    esac
    if [ -e "$prefix" ] && [ ! -f "$prefix/$record_name" ] && [ -n "$(ls -A "$prefix")" ]; then
        die "$prefix exists and is not a Refit Studio install: choose another --prefix or remove it."
    fi
    partial="$prefix.partial.$$"
    mkdir "$partial" 2>/dev/null || die "cannot create $partial (is it left from an earlier try?)."
    trap 'rm -rf -- "$partial"' EXIT
    trap 'exit 1' HUP INT TERM
    cp -a "$here/." "$partial/"
    rm -f "$partial/$record_name" "$partial/$files_name"
    if [ -f "$prefix/$record_name" ]; then
        # A previous install: its own uninstall.sh removes what it installed and nothing else.
        sh "$prefix/uninstall.sh" >/dev/null ||
            die "could not remove the previous install in $prefix (see above); nothing was changed there."
    fi
    if [ -d "$prefix" ]; then
        rmdir "$prefix" 2>/dev/null || true
    fi
    if [ -e "$prefix" ]; then
        # The previous install left files that are not its own: the new one goes next to them.
        list_files "$partial" >"$prefix/$files_name"
        cp -a "$partial/." "$prefix/"
    else
        list_files "$partial" >"$partial/$files_name"
        mv "$partial" "$prefix"
    fi
    trap - EXIT HUP INT TERM
    rm -rf -- "$partial"
fi
prefix=$(cd -P "$prefix" && pwd -P)
if [ ! -f "$prefix/$files_name" ]; then
    # Installed where it was unpacked: everything here is the program's.
    list_files "$prefix" >"$prefix/$files_name"
fi

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

# rm first: cp and > follow a link that is already there, and would write where it points.
rm -f "$icon_file" "$desktop_file.partial"
cp "$prefix/refit-studio.png" "$icon_file"
while IFS= read -r line; do
    case $line in
        Exec=*) printf 'Exec=%s\n' "$(desktop_exec "$prefix/refit-studio")" ;;
        TryExec=*) printf 'TryExec=%s\n' "$(desktop_string "$prefix/refit-studio")" ;;
        Icon=*) printf 'Icon=%s\n' "$(desktop_string "$icon_file")" ;;
        *) printf '%s\n' "$line" ;;
    esac
done <"$prefix/refit-studio.desktop" >"$desktop_file.partial"
mv -f "$desktop_file.partial" "$desktop_file"

{
    printf 'desktop=%s\n' "$desktop_file"
    printf 'icon=%s\n' "$icon_file"
} >"$prefix/$record_name"

# A link is replaced only when it is one an install of Refit Studio made (or leads nowhere);
# anything else by that name is the user's.
for name in refit-studio refit; do
    link="$bindir/$name"
    if [ -L "$link" ]; then
        if [ -e "$link" ] && [ ! -f "$(dirname "$(readlink -f "$link")")/$record_name" ]; then
            printf 'install.sh: %s links to %s, not to Refit Studio; left as it is.\n' \
                "$link" "$(readlink "$link")" >&2
            continue
        fi
    elif [ -e "$link" ]; then
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
