#!/usr/bin/env bash
# The whole runbook against plain tools: `usercube-upgrade run` (integrated plan) on a large
# demo installation against a plain bash script doing the same work, step by step, with
# mv, cp -a, unzip, rm -rf and sqlite3, each on a fresh copy of the same installation.
#
# usage: scripts/runbook-compare.sh [FILES [BYTES [ROWS [RUNS [ENCRYPTED]]]]]
#   defaults: the issue's large demo, 50000 runtime files, 2G, 200000 rows per table, 3 runs,
#   and 3000 small legacy-encrypted agent files (`demo --encrypted-files`, 4-16 KiB each)
#   besides the demo's own few, as a real agent installation holds (issue 15).
# env: CARGO_TARGET_DIR (default ./target), WORK (scratch folder, default a new mktemp -d;
#      needs about 5 times BYTES free), CARGO (default cargo; e.g. CARGO="nice -n 15 cargo").
#
# The plain script is generated from the engine's own plan (`plan --json`), one shell line
# per engine step, in the plan's order:
#   make-dir -> mkdir; rename, move-tree -> mv; copy -> cp -a; delete-tree -> rm -rf;
#   extract-zip -> mkdir + unzip -q; database-backup -> sqlite3 .backup;
#   delete-rows -> sqlite3 "DELETE FROM T"; write-file -> cp of the file the plan holds
#   (the appsettings and configuration migrations are computed when the plan is built, so
#   the plain script copies those precomputed results: it does no migration work);
#   database-version-upgrade -> nothing (the demo has no vendor tool: the engine skips it
#   too); reencrypt-files -> scripts/peer-reencrypt.py: the same conversion by Python's
#   `cryptography` (OpenSSL) in one process, as an administrator would script it (no plain
#   command-line tool reads the 5.1 format or writes ours). Without `cryptography` the plain
#   script falls back, with a message, to our `decrypt-file` then `encrypt-file` subcommands
#   (the vendor's Decrypt-File/Encrypt-File jobs, unjournaled).
# sqlite3 commits durably on its own; nothing else in the plain script fsyncs. The engine
# journals and fsyncs everything, so a second figure times the plain script plus `sync`.
#
# Both must end with the same tree (checked before timing), except by design: the journal
# folder (.usercube-upgrade, holding the trash: Temp/Collect, the replaced files, the
# re-encrypted originals, the deleted rows), the backup file's name in DatabaseBackup (both
# backups are checked to hold the starting rows), the database file (compared by a dump of
# every table) and the re-encrypted files (random keys: each side's are decrypted with
# `decrypt-file` and the plaintexts compared).
set -euo pipefail

for tool in hyperfine jq sqlite3 unzip; do
    command -v "$tool" >/dev/null || { echo "runbook-compare.sh: $tool is needed (e.g. apt-get install $tool)" >&2; exit 2; }
done

FILES=${1:-50000}
BYTES=${2:-2G}
ROWS=${3:-200000}
RUNS=${4:-3}
ENCRYPTED=${5:-3000}
HERE=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$HERE/target}
CARGO=${CARGO:-cargo}
WORK=${WORK:-$(mktemp -d -t usercube-runbook-compare.XXXXXX)}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
PRISTINE=$WORK/pristine
TREE=$WORK/tree
PRE=$WORK/precomputed
BIN=$TARGET/release/usercube-upgrade
ZIP_NAME=Runtime_5.2.3.3180.zip
# The runtime zip stays outside the copied tree (read in place by both sides): it halves
# each untimed preparation.
ZIP=$WORK/$ZIP_NAME
CERT=$WORK/demo-agent.pfx
PASS=usercube-demo
PEER=$HERE/scripts/peer-reencrypt.py
if python3 -c 'import cryptography' 2>/dev/null; then
    PLAIN_REENCRYPT=peer
else
    PLAIN_REENCRYPT=subcommands
    echo "== Python's cryptography is missing (pip install cryptography): the plain script" \
        "re-encrypts with usercube-upgrade decrypt-file + encrypt-file instead" >&2
fi

echo "== building (release)"
(cd "$HERE" && $CARGO build --release --quiet --bin usercube-upgrade)

SIZE="--files $FILES --bytes $BYTES --rows $ROWS --encrypted-files $ENCRYPTED"
if [ "$(cat "$PRISTINE/.complete" 2>/dev/null)" != "$SIZE" ]; then
    echo "== demo installation: $SIZE"
    rm -rf "$PRISTINE"
    # shellcheck disable=SC2086 # $SIZE is a list of options
    "$BIN" demo "$PRISTINE" --no-run $SIZE | sed 's/^/   /'
    mv "$PRISTINE/$ZIP_NAME" "$ZIP"
    cp "$PRISTINE/Certs/demo-agent.pfx" "$CERT"
    echo "$SIZE" > "$PRISTINE/.complete"
fi
du -sh "$PRISTINE" "$ZIP" | sed 's/^/   /'

fresh() { rm -rf "$TREE" && cp -a "$PRISTINE" "$TREE" && rm -f "$TREE/.complete"; }
# What `demo` prints, with the zip outside the tree.
ENGINE_ARGS=(run --root "$TREE" --mode integrated --runtime-zip "$ZIP" --runtime-path "$TREE/Runtime"
    --skip-database-upgrade --file-cert-file "$TREE/Certs/demo-agent.pfx" --file-cert-password "$PASS")

echo "== the plain script, from the engine's plan"
fresh
"$BIN" plan "${ENGINE_ARGS[@]:1}" --json > "$WORK/plan.json"
# The planned step list, for the record.
"$BIN" plan "${ENGINE_ARGS[@]:1}" | grep -E '^  [0-9.-]+ +step ' > "$WORK/plan-steps.txt" || true
# `plan --json` shows each written file as its SHA-256 only (appsettings hold secrets): the
# plain script's precomputed files are taken from an untimed engine run on a scratch copy,
# each checked against the digest the plan names.
rm -rf "$PRE" && mkdir -p "$PRE"
"$BIN" "${ENGINE_ARGS[@]}" --quiet
jq -r '.runbook.plan.steps[] | select(.action["write-file"]) | "\(.id) \(.action["write-file"].content.sha256) \(.action["write-file"].path)"' \
    "$WORK/plan.json" | while read -r id sha path; do
    case $path in /*) src=$path ;; *) src=$TREE/$path ;; esac
    cp -- "$src" "$PRE/$id"
    [ "$(sha256sum < "$PRE/$id" | cut -d' ' -f1)" = "$sha" ] \
        || { echo "runbook-compare: $path after the engine run is not the planned content" >&2; exit 1; }
done
fresh
cat > "$WORK/plain.jq" <<'JQ'
def db: sub("^sqlite:"; "") | @sh;
# A pattern's `*` left unquoted, for the shell to expand.
def glob: @sh | gsub("\\*"; "'*'");
.runbook.plan.steps[] | .id as $id | (.action | to_entries[0]) as $a | $a.value as $v |
"# step \($id): \($a.key)\n" +
if $a.key == "make-dir" then "mkdir -- \($v.path | @sh)"
elif $a.key == "rename" or $a.key == "move-tree" then "mv -- \($v.from | @sh) \($v.to | @sh)"
elif $a.key == "copy" then "cp -a -- \($v.from | @sh) \($v.to | @sh)"
elif $a.key == "delete-tree" then "rm -rf -- \($v.path | @sh)"
elif $a.key == "write-file" then
  "cp -- \"$PRE/\($id)\" \($v.path | @sh).tmp && mv -- \($v.path | @sh).tmp \($v.path | @sh)"
elif $a.key == "extract-zip" then
  "mkdir -- \($v.dest | @sh) && unzip -q \($v.archive | @sh) -d \($v.dest | @sh)"
elif $a.key == "database-backup" then
  "mkdir -p -- \($v.backup_dir | @sh) && sqlite3 \($v.connection | db) \".backup \($v.backup_dir)/plain-backup.sqlite\""
elif $a.key == "delete-rows" then "sqlite3 \($v.connection | db) 'DELETE FROM \($v.table);'"
elif $a.key == "database-version-upgrade" then
  error("the demo has no vendor schema tool: the engine runs with --skip-database-upgrade")
elif $a.key == "reencrypt-files" and $reencrypt == "peer" then
  "python3 \"$PEER\" \"$PFX\" \"$PASS\" \(($v.folders | map(@sh)) + ($v.files | map(glob)) | join(" "))"
elif $a.key == "reencrypt-files" then
  "mapfile -d '' enc < <(legacy \(($v.folders | map(@sh)) + ($v.files | map(glob)) | join(" ")))\n" +
  "\"$BIN\" decrypt-file --quiet --files \"${enc[@]}\" \"${CERT[@]}\"\n" +
  "\"$BIN\" encrypt-file --quiet --files \"${enc[@]}\" \"${CERT[@]}\""
else error("no plain equivalent for step kind \($a.key)") end
JQ
PLAIN=$WORK/plain.sh
{
    echo '#!/usr/bin/env bash'
    echo '# Generated by scripts/runbook-compare.sh from the engine plan: one command per step.'
    echo 'set -euo pipefail'
    echo 'cd "$1"'
    echo "PRE=$(printf '%q' "$PRE")"
    echo "BIN=$(printf '%q' "$BIN")"
    echo "CERT=(--file-cert-file $(printf '%q' "$CERT") --file-cert-password $PASS)"
    echo "PEER=$(printf '%q' "$PEER") PFX=$(printf '%q' "$CERT") PASS=$PASS"
    cat <<'SH'
# The legacy-encrypted (5.1) files among folders (searched) and files: first bytes 93 10 01 00.
legacy() {
    find "$@" -type f -print0 2>/dev/null | sort -zu | while IFS= read -r -d '' f; do
        if [ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')" = 93100100 ]; then printf '%s\0' "$f"; fi
    done
}
SH
    jq -r --arg reencrypt "$PLAIN_REENCRYPT" -f "$WORK/plain.jq" "$WORK/plan.json"
} > "$PLAIN"
chmod +x "$PLAIN"
sed 's/^/   /' "$WORK/plan-steps.txt"

dump() { # every table of an SQLite file, sorted rows
    for t in $(sqlite3 "$1" "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"); do
        echo "== $t"; sqlite3 "$1" "SELECT * FROM $t ORDER BY 1" | md5sum
    done
}

echo "== checking that both end with the same tree"
START_DUMP=$(dump "$PRISTINE/Database/Usercube.sqlite")
LEGACY=$(cd "$PRISTINE" && { find Temp Work -type f; ls Runtime/tracked-accounts-*.csv; } |
    while read -r f; do
        if [ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')" = 93100100 ]; then echo "$f"; fi
    done | wc -l)
# (what a stopped earlier check left would take the moved trees in as subfolders)
rm -rf "$WORK/after-engine" "$WORK/after-plain" "$WORK/decrypted-engine" "$WORK/decrypted-plain"
fresh && "$BIN" "${ENGINE_ARGS[@]}" --quiet && mv "$TREE" "$WORK/after-engine"
fresh && "$PLAIN" "$TREE" && mv "$TREE" "$WORK/after-plain"
for side in engine plain; do
    t=$WORK/after-$side
    [ "$(dump "$t/Database/Usercube.sqlite" | md5sum)" = "$(dump "$WORK/after-engine/Database/Usercube.sqlite" | md5sum)" ] ||
        { echo "database differs ($side)" >&2; exit 1; }
    b=$(find "$t/DatabaseBackup" -type f | head -1)
    [ "$(dump "$b")" = "$START_DUMP" ] || { echo "$side: the backup does not hold the starting rows" >&2; exit 1; }
    # New-format files hold random keys: each side's are decrypted (one decrypt-file call)
    # and then compared as plaintext; the encrypted files themselves leave the diff below.
    mapfile -d '' files < <(cd "$t" && find Temp Work -type f -print0)
    newfmt=()
    for f in "${files[@]}"; do
        magic=$(head -c 5 "$t/$f" | od -An -tx1 | tr -d ' \n')
        if [ "${magic:0:8}" = 93100100 ]; then
            echo "$side: $f is still in the legacy format" >&2; exit 1
        fi
        if [ "$magic" = 5543454e43 ]; then newfmt+=("$t/$f"); fi
    done
    rm -rf "$WORK/decrypted-$side" && mkdir -p "$WORK/decrypted-$side"
    "$BIN" decrypt-file --quiet --files "${newfmt[@]}" --output-path "$WORK/decrypted-$side" \
        --file-cert-file "$CERT" --file-cert-password "$PASS"
    rm -f -- "${newfmt[@]}"
    echo "   $side: ${#newfmt[@]} re-encrypted files (the demo holds $LEGACY legacy-encrypted files)"
    [ "${#newfmt[@]}" = "$LEGACY" ] || { echo "$side: not every legacy file was re-encrypted" >&2; exit 1; }
done
if ! diff -r "$WORK/decrypted-engine" "$WORK/decrypted-plain" >/dev/null; then
    echo "the re-encrypted files of the engine and of the plain script decrypt to different bytes" >&2
    exit 1
fi
if ! diff -r -x .usercube-upgrade -x DatabaseBackup -x Usercube.sqlite "$WORK/after-engine" "$WORK/after-plain" >/dev/null; then
    echo "the engine and the plain script end with different trees:" >&2
    diff -rq -x .usercube-upgrade -x DatabaseBackup -x Usercube.sqlite "$WORK/after-engine" "$WORK/after-plain" >&2 || true
    exit 1
fi
rm -rf "$WORK/after-engine" "$WORK/after-plain" "$WORK/decrypted-engine" "$WORK/decrypted-plain"
echo "   same tree (journal folder and backup file name aside; database rows equal; re-encrypted files equal once decrypted)"
echo "   plain re-encryption: $PLAIN_REENCRYPT"

echo "== timing, $RUNS runs each, fresh copy + sync before every run (not timed)"
echo "   load before timing: $(cut -d' ' -f1-3 /proc/loadavg)"
hyperfine --style basic --runs "$RUNS" --prepare "rm -rf $TREE && cp -a $PRISTINE $TREE && rm -f $TREE/.complete && sync" \
    --export-json "$WORK/hyperfine.json" \
    -n engine "$BIN ${ENGINE_ARGS[*]} --quiet" \
    -n plain "$PLAIN $TREE" \
    -n plain+sync "$PLAIN $TREE && sync"
echo "   load after timing: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$TREE"
mean() { jq --arg c "$1" '.results[] | select(.command==$c) | .mean' "$WORK/hyperfine.json"; }
awk -v e="$(mean engine)" -v p="$(mean plain)" -v s="$(mean plain+sync)" 'BEGIN {
    printf "engine (usercube-upgrade run):          %.2f s\n", e
    printf "plain (mv/cp -a/unzip/rm -rf/sqlite3):  %.2f s\n", p
    printf "plain + sync:                           %.2f s\n", s
    printf "engine/plain        = %.2fx\n", e / p
    printf "engine/(plain+sync) = %.2fx\n", e / s
}'
echo "(scratch folder: $WORK; remove it when done)"
