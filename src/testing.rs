//! Internals for the integration tests, benches, fuzz targets and property tests, behind the
//! cargo feature `testing` (never in a release build): each module re-exported whole, so a
//! test names `usercube_upgrade::testing::journal::Journal`. Not part of the public API.

pub mod cli {
    pub use crate::cli::*;
}
pub mod crypto {
    pub use crate::crypto::*;
}
pub mod db {
    pub use crate::db::*;
}
pub mod durable_fs {
    pub use crate::durable_fs::*;
}
pub mod engine {
    pub use crate::engine::*;
}
pub mod filecrypt {
    pub use crate::filecrypt::*;
}
pub mod fuzzing {
    pub use crate::fuzzing::*;
}
pub mod journal {
    pub use crate::journal::*;
}
pub mod limits {
    pub use crate::limits::*;
}
pub mod manifest {
    pub use crate::manifest::*;
}
pub mod out {
    pub use crate::out::*;
}
pub mod plan {
    pub use crate::plan::*;
}
pub mod platform {
    pub use crate::platform::*;
}
pub mod pseudo_random {
    pub use crate::pseudo_random::*;
}
pub mod runbook {
    pub use crate::runbook::*;
}
pub mod sample {
    pub use crate::sample::*;
}
pub mod secrets {
    pub use crate::secrets::*;
}
pub mod steps {
    pub use crate::steps::*;
}
pub mod stream {
    pub use crate::stream::*;
}
