#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/, libFuzzer through libfuzzer-sys) on the stable toolchain and
# runs each for SECONDS. See FUZZING.md.
#
#   scripts/fuzz.sh SECONDS [TARGET...]
#
# No cargo-fuzz and no nightly: cargo builds with the same coverage instrumentation flags
# cargo-fuzz passes (`--sanitizer none`), all of them stable `-C` flags. Corpora grow in
# fuzz/corpus/TARGET (seeded from fuzz/seeds/TARGET); a crash is written to
# fuzz/artifacts/TARGET/ and makes the script exit 1 after the remaining targets ran.
set -euo pipefail

usage() { echo "usage: scripts/fuzz.sh SECONDS [TARGET...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
seconds=$1
shift
case $seconds in '' | *[!0-9]*) usage ;; esac

fuzz_dir=$(cd "$(dirname "$0")/../fuzz" && pwd)
cd "$fuzz_dir"
all_targets=(journal_log appsettings_json xml_config encrypted_file pfx_store connection_string zip_check)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

# The host triple is given explicitly, as cargo-fuzz does, so that RUSTFLAGS instrument the
# targets and their dependencies but not build scripts and proc-macros.
host=$(rustc -vV | sed -n 's/^host: //p')
flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters"
flags+=" -Cllvm-args=-sanitizer-coverage-pc-table"
flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
case $host in *-linux-*) flags+=" -Cllvm-args=-sanitizer-coverage-stack-depth" ;; esac
export RUSTFLAGS="$flags"
export CARGO_TARGET_DIR="$fuzz_dir/target"

bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
echo "== building ${targets[*]} ($host, release + debug assertions)"
cargo build --release --locked --target "$host" "${bins[@]}"

failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    seeds=()
    [ -d "seeds/$t" ] && seeds=("seeds/$t")
    echo "== $t: ${seconds}s"
    # -rss_limit_mb and -timeout turn a memory blow-up or a hang into a reported crash.
    if ! "target/$host/release/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 \
        -print_final_stats=1 -artifact_prefix="artifacts/$t/" "corpus/$t" "${seeds[@]}"; then
        failed+=("$t")
    fi
    echo "== $t: corpus $(find "corpus/$t" -type f | wc -l) files"
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crash"
