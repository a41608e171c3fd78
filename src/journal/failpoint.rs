//! Crash injection for tests: `USERCUBE_UPGRADE_CRASH_AT=N` aborts the process right after
//! the N-th journal record written by this process has become durable.
//!
//! Compiled in only with the `failpoints` feature (or in unit tests); otherwise `reached`
//! is an empty function the optimiser removes.

#[cfg(any(test, feature = "failpoints"))]
mod imp {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    pub const ENV: &str = "USERCUBE_UPGRADE_CRASH_AT";
    static DURABLE: AtomicU64 = AtomicU64::new(0);
    static CRASH_AT: OnceLock<Option<u64>> = OnceLock::new();

    /// Called once per durable flush with the number of records it made durable.
    pub fn reached(records: u64) {
        let at = *CRASH_AT.get_or_init(|| std::env::var(ENV).ok().and_then(|v| v.parse().ok()));
        let before = DURABLE.fetch_add(records, Ordering::SeqCst);
        if let Some(n) = at {
            if before < n && before + records >= n {
                eprintln!("failpoint: aborting after durable journal record {n}");
                std::process::abort();
            }
        }
    }
}

#[cfg(any(test, feature = "failpoints"))]
pub use imp::reached;

#[cfg(not(any(test, feature = "failpoints")))]
#[inline(always)]
pub fn reached(_records: u64) {}
