#!/usr/bin/env bash
# Whole-program comparison: `usercube-upgrade run` on the sample plan against a plain shell
# script doing the same file work (mv, cp -a, unzip -q, rm -rf), each on a fresh copy of
# the same installation.
#
# usage: scripts/compare.sh [RUNTIME_FILES [FILE_BYTES [RUNS]]]
#   defaults: 2000 runtime files of 16384 bytes, 10 runs each.
# env: CARGO_TARGET_DIR (default ./target), WORK (scratch folder, default a new mktemp -d),
#      CARGO (default cargo; e.g. CARGO="nice -n 15 cargo").
#
# The engine journals and fsyncs (every file it writes, every folder it changes, every
# journal flush); the plain script does neither, so the ratio is the price of the journal
# and of durability. Both end with the same tree (checked below before timing).
set -euo pipefail

FILES=${1:-2000}
BYTES=${2:-16384}
RUNS=${3:-10}
HERE=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$HERE/target}
CARGO=${CARGO:-cargo}
WORK=${WORK:-$(mktemp -d -t usercube-compare.XXXXXX)}
mkdir -p "$WORK"
PRISTINE=$WORK/pristine
TREE=$WORK/tree
BIN=$TARGET/release/usercube-upgrade

echo "== building (release)"
(cd "$HERE" && $CARGO build --release --quiet --bin usercube-upgrade --example make_sample)

echo "== sample installation: $FILES runtime files of $BYTES bytes"
rm -rf "$PRISTINE"
"$TARGET/release/examples/make_sample" "$PRISTINE" "$FILES" "$BYTES"
du -sh "$PRISTINE" | sed 's/^/   /'

# The plain script: the sample plan (src/sample.rs) step by step.
PLAIN=$WORK/plain.sh
cat > "$PLAIN" <<'SCRIPT'
#!/usr/bin/env bash
set -euo pipefail
cd "$1"
mv Runtime RuntimeOld
mkdir Runtime && unzip -q Runtime_5.2.3.100.zip -d Runtime
cp -a RuntimeOld/appsettings.json Runtime/appsettings.json
cp -a RuntimeOld/appsettings.agent.json Runtime/appsettings.agent.json
rm -rf Temp/Collect
mv Temp/ProvisioningOrders Work/ProvisioningOrders
cp -a RuntimeOld/tracked-accounts-ADParis.csv Work/tracked-accounts-ADParis.csv
cat > Runtime/appsettings.json.tmp <<'JSON'
{
  // Usercube server settings (sample)
  "ApplicationUri": "http://localhost:5000",
  "TempFolderPath": "../Temp",
  "WorkFolderPath": "../Work",
  "ConnectionString": "sqlite:usercube.db",
  "EncryptionCertificate": { "File": "../Certs/agent.pfx", "Password": "secret" }
}
JSON
mv Runtime/appsettings.json.tmp Runtime/appsettings.json
mv Conf ConfOld
cp -a ConfOld Conf
SCRIPT
chmod +x "$PLAIN"

fresh() { rm -rf "$TREE" && cp -a "$PRISTINE" "$TREE"; }

echo "== checking that both end with the same tree"
fresh && "$BIN" run --root "$TREE" --sample-plan --quiet && mv "$TREE" "$WORK/after-engine"
fresh && "$PLAIN" "$TREE" && mv "$TREE" "$WORK/after-plain"
if ! diff -r -x .usercube-upgrade "$WORK/after-engine" "$WORK/after-plain" >/dev/null; then
    echo "the engine and the plain script end with different trees:" >&2
    diff -rq -x .usercube-upgrade "$WORK/after-engine" "$WORK/after-plain" >&2 || true
    exit 1
fi
rm -rf "$WORK/after-engine" "$WORK/after-plain"
echo "   same tree (journal folder aside)"

ENGINE_CMD="$BIN run --root $TREE --sample-plan --quiet"
PLAIN_CMD="$PLAIN $TREE"

echo "== timing, $RUNS runs each, fresh copy before every run (not timed)"
if command -v hyperfine >/dev/null; then
    hyperfine --style basic --runs "$RUNS" --warmup 1 --prepare "rm -rf $TREE && cp -a $PRISTINE $TREE" \
        --export-json "$WORK/hyperfine.json" -n engine "$ENGINE_CMD" -n plain "$PLAIN_CMD"
    engine=$(jq '.results[] | select(.command=="engine") | .mean' "$WORK/hyperfine.json")
    plain=$(jq '.results[] | select(.command=="plain") | .mean' "$WORK/hyperfine.json")
else
    mean_of() {
        local total=0 t0 t1
        for _ in $(seq "$RUNS"); do
            fresh
            t0=$(date +%s%N); $1 >/dev/null; t1=$(date +%s%N)
            total=$((total + t1 - t0))
        done
        awk -v t="$total" -v n="$RUNS" 'BEGIN { printf "%.6f", t / n / 1e9 }'
    }
    engine=$(mean_of "$ENGINE_CMD")
    plain=$(mean_of "$PLAIN_CMD")
fi
rm -rf "$TREE"

awk -v e="$engine" -v p="$plain" 'BEGIN {
    printf "engine (usercube-upgrade run): %.1f ms\n", e * 1000
    printf "plain (mv/cp -a/unzip/rm -rf): %.1f ms\n", p * 1000
    printf "engine/plain = %.2fx\n", e / p
}'
echo "(scratch folder: $WORK)"
