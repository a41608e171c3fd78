//! The connection-string parser (src/db/mod.rs): redaction, the literal-password refusal and
//! the parse into a target (tiberius's ADO parser behind it) never panic, and redaction is
//! stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use usercube_upgrade::testing::db::{check_no_literal_password, conn_key, redact, target};

fuzz_target!(|data: &[u8]| {
    let Ok(conn) = std::str::from_utf8(data) else {
        return;
    };
    let shown = redact(conn);
    assert_eq!(redact(&shown), shown, "redaction is not stable");
    let _ = check_no_literal_password(conn);
    let _ = conn_key(conn);
    // No ${VAR} of the fuzzer's names is set, so resolution fails or passes text through.
    let _ = target(conn, Path::new("/srv/usercube"));
});
