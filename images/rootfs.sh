# shellcheck shell=bash
# Helpers for the image recipes (sourced by images/*/build.sh): images are imported from a
# root file system assembled out of this machine's Debian packages; no registry is needed.

# start_image IMAGE RECIPE_DIR: exit (the whole recipe, successfully) when IMAGE was built from
# this recipe already; otherwise set $recipe and $root, an empty root file system removed on exit.
start_image() {
  recipe=$(cat "$2"/* "$2/../rootfs.sh" | sha256sum | cut -c1-12)
  if [ "$(docker image inspect -f '{{index .Config.Labels "hotport.recipe"}}' "$1" 2>/dev/null)" = "$recipe" ]; then
    exit 0
  fi
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  ln -s busybox "$root/bin/sh"
}

# add_binary ROOT PATH: copy a dynamically linked program into ROOT/bin, with the shared
# libraries it loads at their own paths.
add_binary() {
  local root=$1 program=$2 library
  cp "$program" "$root/bin/$(basename "$program")"
  for library in $(ldd "$program" | grep -oE '/[^ ]+'); do
    mkdir -p "$root$(dirname "$library")"
    cp -L "$library" "$root$library"
  done
}

# debian_mirror: the Debian mirror this machine's apt already uses (override: HOTPORT_DEBIAN_MIRROR),
# for debootstrap; fails with the variable to set when there is none.
debian_mirror() {
  local found=${HOTPORT_DEBIAN_MIRROR:-}
  [ -n "$found" ] || found=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -oE '(https?|file)://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ' || true)
  [ -n "$found" ] || { echo "no Debian mirror found in apt sources; set HOTPORT_DEBIAN_MIRROR" >&2; return 1; }
  echo "$found"
}
