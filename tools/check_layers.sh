#!/usr/bin/env bash
# make test: calls go down only (../shared/STYLE.md):
#   tools -> {distill, prune, quantize, interop} -> runtime -> core
# Reads the symbols of the built objects (nm): every symbol an object of one
# room uses that another room defines must come from a lower room. Stages do
# not call each other; the checkpoint container (core/container.c, ckpt.c)
# knows nothing of models. Also: no file in core/ or runtime/ includes one
# from a higher room. Prints each violation; exits 1 if there is one.
# usage: tools/check_layers.sh BUILD_DIR OBJECT... (the library's and the
# CLI's objects, under BUILD_DIR/obj)
set -u
OBJ=$1/obj; shift
rank() { # room -> rank; what a room may call: a lower rank, or itself
  case $1 in
    core|core/layers) echo 0 ;; runtime) echo 1 ;;
    distill|prune|quantize|interop) echo 2 ;; tools) echo 3 ;; *) echo -1 ;;
  esac
}
defs=$(mktemp); uses=$(mktemp); trap 'rm -f "$defs" "$uses"' EXIT
for o in "$@"; do
  rel=${o#"$OBJ"/}
  nm "$o" | awk -v f="$rel" 'NF == 3 && $2 ~ /^[TDBRC]$/ { print $3, f }' >>"$defs"
  nm "$o" | awk -v f="$rel" 'NF == 2 && $1 == "U" { print $2, f }' >>"$uses"
done
bad=0
while read -r sym user owner; do
  ur=${user%/*}; orr=${owner%/*}
  [ "$ur" = "$orr" ] && continue
  a=$(rank "$ur"); b=$(rank "$orr")
  [ "$a" = -1 ] || [ "$b" = -1 ] && continue
  [ "$a" = 0 ] && [ "$b" = 0 ] && continue # core and core/layers are one room
  if [ "$b" -ge "$a" ]; then echo "layers: $user calls $sym of $owner"; bad=1; fi
done < <(join <(sort "$uses") <(sort "$defs"))
while read -r sym user owner; do
  case $user in core/container.o|core/ckpt.o) ;; *) continue ;; esac
  case $owner in core/model*.o) echo "layers: $user (the container) calls $sym of $owner"; bad=1 ;; esac
done < <(join <(sort "$uses") <(sort "$defs"))
if grep -nE '#include "(quantize|prune|distill|tools)/' core/*.c core/layers/*.c runtime/*.c runtime/*.h; then
  echo "layers: a file of core/ or runtime/ includes one of a higher room"; bad=1
fi
[ "$bad" -eq 0 ] && echo "layers: calls go down only (tools -> stages -> runtime -> core)"
exit $bad
