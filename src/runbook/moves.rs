//! The Temp -> Work move table: what the vendor's `Upgrade-Files` moves is not published
//! (see docs/usercube-installation.md); this table is our model of it, kept in one place
//! and shown by `plan`. Edit it here.

/// Who produces the folder: server-side folders move in every mode, agent-side folders
/// only with `--migrate-agent` (integrated and agent modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Server,
    Agent,
}

/// One move, relative to the Temp and Work folders.
#[derive(Debug, Clone, Copy)]
pub struct Move {
    pub from_temp: &'static str,
    pub to_work: &'static str,
    pub side: Side,
    pub why: &'static str,
}

/// [guess] The moves, in the order they run.
pub const MOVES: &[Move] = &[
    Move {
        from_temp: "ProvisioningOrders",
        to_work: "ProvisioningOrders",
        side: Side::Server,
        why: "[guess] provisioning orders waiting for the agent must survive a Temp purge",
    },
    Move {
        from_temp: "Synchronization",
        to_work: "Synchronization",
        side: Side::Agent,
        why: "[guess] synchronization state of the agent's connectors",
    },
    Move {
        from_temp: "FulfillPowerShell",
        to_work: "FulfillPowerShell",
        side: Side::Agent,
        why: "[guess] PowerShell fulfillment state",
    },
    Move {
        from_temp: "ExportCookies",
        to_work: "ExportCookies",
        side: Side::Agent,
        why: "[guess] incremental export cookies (losing them forces a full export)",
    },
];

/// The folder the seed deletes before moving files.
pub const COLLECT: &str = "Collect";

/// The moves that apply with or without `--migrate-agent`.
pub fn moves_for(migrate_agent: bool) -> impl Iterator<Item = &'static Move> {
    MOVES
        .iter()
        .filter(move |m| migrate_agent || m.side == Side::Server)
}
