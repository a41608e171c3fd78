#!/usr/bin/env bash
# The Windows build and its tests under wine, on a Linux machine of this kind.
#
#   scripts/windows.sh build   target/x86_64-pc-windows-gnu/release/usercube-upgrade.exe
#   scripts/windows.sh test    the crate's tests for the Windows target, run under wine
#   scripts/windows.sh demo    the demo upgrade, then its rollback, by the .exe under wine
#
# Both install what a fresh machine lacks (Debian's rustc-web with the standard library's
# sources, mingw-w64, wine). The toolchain is Debian's rustc 1.96 building the standard
# library for the target (-Zbuild-std); it never touches the rustup toolchain on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
TARGET=x86_64-pc-windows-gnu

install_toolchain() {
  local missing=()
  for p in rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64 wine64; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "windows.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Debian's cargo and rustc, with their own target folder so that the two toolchains never
# invalidate each other's builds.
wcargo() {
  RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
    CARGO_TARGET_DIR="$root/target/windows" \
    /usr/bin/cargo "$@"
}

# std for the target is built with the test crates too, so that `build` and `test` share one
# build of std and of every dependency.
BUILD_STD=-Zbuild-std=std,panic_abort,panic_unwind,test

# A wine prefix of our own, with the ProcessPrng shim (test-only; see the .c file).
setup_wine() {
  export WINEPREFIX="${WINEPREFIX:-$root/target/windows/wineprefix}"
  export WINEDEBUG=-all
  local shim="$root/target/windows/bcryptprimitives.dll"
  if [ ! -f "$shim" ] || [ "$root/scripts/windows/processprng.c" -nt "$shim" ]; then
    mkdir -p "$(dirname "$shim")"
    x86_64-w64-mingw32-gcc -shared -O2 -o "$shim" \
      "$root/scripts/windows/processprng.c" "$root/scripts/windows/processprng.def" -ladvapi32
  fi
  if [ ! -f "$WINEPREFIX/system.reg" ]; then
    echo "windows.sh: creating the wine prefix $WINEPREFIX" >&2
    wineboot -i >/dev/null 2>&1 || true
    wineserver -w
  fi
  [ -f "$WINEPREFIX/system.reg" ] || { echo "windows.sh: wineboot did not create $WINEPREFIX" >&2; exit 1; }
  cp "$shim" "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
}

build() {
  install_toolchain
  wcargo build --release "$BUILD_STD" --target $TARGET --bin usercube-upgrade
  mkdir -p "target/$TARGET/release"
  cp "target/windows/$TARGET/release/usercube-upgrade.exe" "target/$TARGET/release/"
  echo "built target/$TARGET/release/usercube-upgrade.exe"
}

# What wine cannot run, each with its reason (README, "Windows: what is tested where").
# Every one of these runs in the Linux suite.
NOT_UNDER_WINE=(
  # fixtures are made by the `openssl` command line tool, a Linux program that a Windows
  # process under wine cannot start (tests/reencrypt.rs is left out whole, for the same reason)
  crypto::cert::tests crypto::format::tests crypto::legacy::tests
  crypto::parallel::tests crypto::store::tests
  steps::reencrypt::tests::a_deleted_kept_original_is_missing
  steps::reencrypt::tests::files_never_converted_need_no_kept_original
  steps::reencrypt::tests::intact_kept_originals_are_no_problem
  steps::reencrypt::tests::one_byte_flipped_in_a_kept_original_names_it
  # wine keeps no file ACLs: SetSecurityInfo succeeds but keeps only the Unix permission
  # bits the DACL maps to, and GetSecurityInfo makes a DACL from those bits (SYSTEM, the
  # owner, Everyone; never protected), so a protected owner-only DACL reads back as the
  # default one (tests/hardening.rs: the journal folder and the database backups)
  journal::tests::journal_directory_is_owner_only
  platform::windows::tests::a_private_file_has_a_protected_dacl
  a_new_journal_folder_is_owner_only
  database_backups_are_owner_only_in_an_owner_only_folder
  # wine's CreateSymbolicLinkW makes no link (tests/hardening.rs: symbolic links on disk;
  # the zip's symlink entry is data in the zip and runs)
  durable_fs::tests::copy_tree_keeps_symlinks
  runbook::configuration::tree::tests::a_symlink_in_the_tree_is_refused_never_followed
  a_journal_folder_that_is_a_symlink_is_refused
  symlinks_under_runtime_conf_temp_and_work_are_refused_by_name
  # wine keeps no file ACLs: an owner-only staging file reads back as the default one
  filecrypt::tests::plaintext_staging_is_owner_only_from_its_creation
  # the server's stand-in schema tool is a python3 script
  rolling_back_a_server_before_its_agent_is_refused_then_works_in_order
  force_rolls_a_server_back_over_its_agents_changes
  # needs util-linux `script` for a pseudo-terminal
  progress_bar_only_on_a_terminal progress_bar_is_labelled_during_rollback
  # a shell script as the stand-in schema tool; chattr, chown and setpriv (Linux tools)
  database_upgrade_runs_or_the_run_does_not_start
  preflight_names_the_first_folder_it_cannot_write
  # Linux path forms (`sqlite:root/...` against a Linux current folder) in its expectations
  relative_paths_resolve_against_the_current_folder
  # cmd.exe is found in the system folder whatever PATH says: the shell cannot be made to
  # fail to start
  a_stop_command_that_cannot_start_changes_nothing
  # its start command fails while a folder is missing (`cd DIR&& ...`), and wine's cmd.exe
  # does not fail a `cd` to a missing folder
  resume_stops_the_service_again_then_finishes_and_starts_it
  # the stand-in schema upgrade tools are python3 scripts
  sqlite_version_upgrade_runs_is_journaled_and_rolled_back_by_the_backup
  sqlite_version_upgrade_killed_mid_way_is_restored_and_run_again
  sqlite_failed_version_upgrade_tool_output_is_journaled
  # sent with the Unix `kill` while a `sh` stop command waits; wine delivers no console
  # control event (Ctrl+C, Ctrl+Break, close) to a process started without a console
  sigint_stops_at_a_durable_point_then_rollback_restores_everything
  sigterm_stops_at_a_durable_point_then_resume_finishes
  a_second_sigint_ends_the_process_at_once
  sigint_during_rollback_stops_it_and_rollback_finishes_it
  sigint_to_the_process_group_lets_the_step_finish_then_stops
  # held at a `sh` stop command while a second run is tried (the root's lock)
  a_run_with_another_journal_is_refused_while_a_run_holds_the_root
)

run_tests() {
  install_toolchain
  setup_wine
  local skip=()
  for t in "${NOT_UNDER_WINE[@]}"; do skip+=(--skip "$t"); done
  # Library, binary and integration tests (examples and benches measure Linux tools).
  # Each process start costs several times more under wine than on Linux, so some suites are
  # thinned (all run whole on Linux): the kill test makes 25 kills instead of 200, the
  # integrated plan's crash test takes every 12th point, the sample plan's every 4th and the
  # database's every 2nd (random offset, printed), each plus the first four points and the
  # last. (50 kills, every 6th and every 2nd until CI grew with AWS-LC's C builds.)
  export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
  # The tests share the release build of std and of every dependency with the .exe; only the
  # crate itself (and its test crates) is built at opt-level 1 for them, about half the
  # compile time of opt-level 3 (the .exe keeps 3).
  local common=(--release "$BUILD_STD" --target $TARGET -p usercube-upgrade --features failpoints
    --config 'profile.release.package.usercube-upgrade.opt-level=1')
  USERCUBE_SIGKILL_ITERATIONS=25 USERCUBE_CRASH_STRIDE=2 wcargo test "${common[@]}" --lib --bins \
    --test cli --test db --test db_crash --test runbook --test sigkill \
    --test signals --test hardening --test secrets --test rollback_aftermath \
    "$@" -- "${skip[@]}"
  USERCUBE_CRASH_STRIDE=4 wcargo test "${common[@]}" --test crash "$@" -- "${skip[@]}"
  USERCUBE_CRASH_STRIDE=12 wcargo test "${common[@]}" --test runbook_crash --test rollback_faults "$@" -- "${skip[@]}"
}

# A command line split into arguments by the rules a Windows program's own parsing follows
# (the C runtime's; Rust's std::env::args): spaces and tabs separate outside double quotes;
# 2n backslashes before a quote are n and the quote toggles quoting, 2n+1 are n and a literal
# quote; "" inside quotes is a literal quote; other backslashes are literal. Prints each
# argument followed by NUL. The text is only split, never run by a shell.
WINDOWS_SPLIT='
import sys
line, words, cur, quoted, i = sys.argv[1].rstrip("\r\n"), [], None, False, 0
while i < len(line):
    c = line[i]
    if c in " \t" and not quoted:
        if cur is not None:
            words.append(cur)
        cur = None
        i += 1
    elif c == "\\":
        n = len(line[i:]) - len(line[i:].lstrip("\\"))
        i += n
        cur = cur or ""
        if line[i:i + 1] == "\"":
            cur += "\\" * (n // 2)
            if n % 2:
                cur += "\""
                i += 1
        else:
            cur += "\\" * n
    elif c == "\"":
        cur = cur or ""
        if quoted and line[i + 1:i + 2] == "\"":
            cur += "\""
            i += 2
        else:
            quoted = not quoted
            i += 1
    else:
        cur = (cur or "") + c
        i += 1
if quoted:
    sys.exit("unterminated quote in " + repr(line))
if cur is not None:
    words.append(cur)
sys.stdout.write("".join(w + "\0" for w in words))
'

# The demo upgrade by the .exe under wine, then its rollback: every file byte for byte as
# before, the SQLite database by its full dump (a restore rewrites pages, not rows). The
# installation's folder name has a space, so the printed command quotes its paths; it is
# run as printed, split as the .exe splits a command line.
demo() {
  build
  setup_wine
  local exe="target/$TARGET/release/usercube-upgrade.exe" dir inst line
  dir=$(mktemp -d)
  inst="$dir/demo install"
  wine "$exe" demo "$inst" --no-run | tee "$dir/demo.out"
  line=$(sed -n '/^run it with:/{n;p}' "$dir/demo.out")
  [ -n "$line" ] || { echo "windows.sh demo: no run command printed" >&2; exit 1; }
  python3 -c "$WINDOWS_SPLIT" "$line" >"$dir/args" || {
    echo "windows.sh demo: the run command does not split: $line" >&2; exit 1; }
  local args=()
  mapfile -d '' -t args <"$dir/args"
  [ "${args[0]:-}" = usercube-upgrade ] && [ "${args[1]:-}" = run ] || {
    echo "windows.sh demo: not a run command: $line" >&2; exit 1; }
  cp -a "$inst" "$dir/before"
  wine "$exe" "${args[@]:1}"
  wine "$exe" status --root "$inst"
  wine "$exe" rollback --root "$inst"
  diff -r --exclude=.usercube-upgrade --exclude='*.sqlite' "$dir/before" "$inst"
  local dump='import sqlite3, sys; print("\n".join(sqlite3.connect(sys.argv[1]).iterdump()))'
  local dbs
  dbs=$(cd "$dir/before" && find . -name '*.sqlite')
  [ -n "$dbs" ] || { echo "windows.sh demo: no database in the demo" >&2; exit 1; }
  for db in $dbs; do
    cmp <(python3 -c "$dump" "$dir/before/$db") <(python3 -c "$dump" "$inst/$db")
  done
  echo "demo: the .exe upgraded the demo installation under wine; rollback restored every file byte for byte and every database row"
  rm -rf "$dir"
}

case "${1:-}" in
  build) build ;;
  test) shift; run_tests "$@" ;;
  demo) demo ;;
  check) install_toolchain; wcargo check "$BUILD_STD" --target $TARGET --lib --bins ;;
  *) echo "usage: scripts/windows.sh build|test [cargo test args]|demo|check" >&2; exit 2 ;;
esac
