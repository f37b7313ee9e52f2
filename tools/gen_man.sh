#!/usr/bin/env bash
# tools/gen_man.sh MTC_BIN [MAN] [--check] — the COMMANDS section of the man
# page (docs/mtc.1 by default) rebuilt from `mtc <command> --help`, so the
# page cannot drift from the CLI: usage lines, the description paragraph and
# every option except the common ones (listed once under COMMON OPTIONS);
# `plot`, `data` (subcommands) and `pipeline` (recipe keys) keep their
# hand-written sections.
# Everything outside `.SH COMMANDS` ... `.SH EXIT STATUS` is hand-written and
# kept as it is. --check: print a diff and exit 1 when the page is stale
# (`make test` runs it).
set -euo pipefail
MTC=${1:?usage: tools/gen_man.sh MTC_BIN [MAN] [--check]}
MAN=docs/mtc.1
CHECK=0
for a in "${@:2}"; do
    case $a in --check) CHECK=1 ;; *) MAN=$a ;; esac
done
COMMANDS="train eval predict label distill prune quantize verify explain report inspect import export plot data pipeline"
# commands made of subcommands: their sections (a paragraph per subcommand,
# with its options) are written by hand in the page and kept as they are
HAND="plot data pipeline"

section() {
    local cmd=$1
    "$MTC" "$cmd" --help | awk -v cmd="$cmd" '
        # backslash as \e; a dash that starts an option (after a non-word
        # character or another such dash) as \-, hyphens inside words kept
        function esc(s,   o, i, c, p, dash) {
            gsub(/\\/, "\\e", s); o = ""; p = " "; dash = 0
            for (i = 1; i <= length(s); i++) {
                c = substr(s, i, 1)
                if (c == "-" && (dash || p !~ /[A-Za-z0-9]/)) { o = o "\\-"; dash = 1 }
                else { o = o c; dash = 0 }
                p = c
            }
            sub(/^[.\047]/, "\\\\&&", o); return o }
        BEGIN { part = "usage"; printf ".SS \"mtc %s\"\n.nf\n", cmd }
        part == "usage" && /^$/ { print ".fi\n.PP"; part = "desc"; desc = ""; next }
        part == "usage" { sub(/^usage: /, ""); sub(/^ +/, ""); print ".B " esc($0); next }
        part == "desc" && /^options:$/ { if (desc != "") print esc(desc); part = "opts"; next }
        part == "desc" && /^$/ { if (desc != "") { print esc(desc); pp = 1 } desc = ""; next }
        part == "desc" { if (pp) print ".PP"; pp = 0; desc = desc == "" ? $0 : desc " " $0; next }
        part == "opts" && match($0, /^  --[a-z0-9-]+( [A-Z])?  +/) {
            head = substr($0, 3, RLENGTH - 2); text = substr($0, RLENGTH + 1)
            sub(/ +$/, "", head); n = split(head, f, " "); name = substr(f[1], 3)
            if (name ~ /^(seed|threads|json|quiet|help)$/) next
            arg = n > 1 ? (f[2] == "S" ? "ARG" : f[2]) : ""
            print ".TP"
            if (name == "out") print "\\fB\\-o\\fR, \\fB\\-\\-out\\fR \\fIFILE\\fR"
            else if (arg != "") print ".B \\-\\-" esc(name) " \\fI" arg "\\fR"
            else print ".B \\-\\-" esc(name)
            print esc(text); next }
        part == "opts" && NF { print "gen_man: mtc " cmd " --help: unexpected option line: " $0 > "/dev/stderr"; exit 3 }
        END { print "" }'
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
{
    sed -n '1,/^\.SH COMMANDS$/p' "$MAN"
    for c in $COMMANDS; do
        if [[ " $HAND " == *" $c "* ]]; then
            awk -v h=".SS \"mtc $c\"" '$0 == h {f = 1; print; next} f && /^\.S[SH] / {exit} f' "$MAN"
        else
            section "$c"
        fi
    done
    sed -n '/^\.SH EXIT STATUS$/,$p' "$MAN"
} >"$out"
grep -q '^\.SH COMMANDS$' "$MAN" && grep -q '^\.SH EXIT STATUS$' "$MAN" ||
    { echo "gen_man: $MAN lacks .SH COMMANDS / .SH EXIT STATUS" >&2; exit 2; }
if [ $CHECK = 1 ]; then
    if ! diff -u "$MAN" "$out"; then
        echo "gen_man: $MAN is stale: run tools/gen_man.sh $MTC" >&2
        exit 1
    fi
    exit 0
fi
cp "$out" "$MAN.tmp" && mv "$MAN.tmp" "$MAN"
