# Helpers for the image recipes (sourced by images/*/build.sh): images are imported from a
# root file system assembled out of this machine's Debian packages; no registry is needed.

# image_is_current IMAGE RECIPE: the image exists and was built from this recipe.
image_is_current() {
  [ "$(docker image inspect -f '{{index .Config.Labels "hotport.recipe"}}' "$1" 2>/dev/null)" = "$2" ]
}

# add_binary ROOT PATH [NAME]: copy a dynamically linked program into ROOT/bin, with the
# shared libraries it loads at their own paths.
add_binary() {
  local root=$1 program=$2 name=${3:-$(basename "$2")} library
  mkdir -p "$root/bin"
  cp "$program" "$root/bin/$name"
  for library in $(ldd "$program" | grep -oE '/[^ ]+'); do
    mkdir -p "$root$(dirname "$library")"
    cp -L "$library" "$root$library"
  done
}
