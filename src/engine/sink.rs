//! The journal as a step sees it: StepData records (for example row before-images) that a
//! step saves before its side effect, and reads back for probe and undo.

use std::cell::RefCell;

use crate::journal::{Journal, NewRecord, Phase};
use crate::steps::{self, StepError, StepJournal};

/// Records saved but not yet durable are kept here; more than this many are flushed early.
const MAX_PENDING: usize = 64;

pub struct JournalSink<'a> {
    journal: &'a RefCell<Journal>,
    run_id: [u8; 16],
    step: u32,
    pending: RefCell<Vec<NewRecord>>,
}

impl<'a> JournalSink<'a> {
    pub fn new(journal: &'a RefCell<Journal>, run_id: [u8; 16], step: u32) -> JournalSink<'a> {
        JournalSink {
            journal,
            run_id,
            step,
            pending: RefCell::new(Vec::new()),
        }
    }
}

fn journal_error(e: crate::journal::JournalError) -> StepError {
    StepError::Refused(format!("journal: {e}"))
}

impl StepJournal for JournalSink<'_> {
    fn save(&self, payload: Vec<u8>) -> steps::Result<()> {
        let full = {
            let mut p = self.pending.borrow_mut();
            p.push(NewRecord {
                run_id: self.run_id,
                step: Some(self.step),
                phase: Phase::StepData,
                payload,
            });
            p.len() >= MAX_PENDING
        };
        if full {
            self.sync()?;
        }
        Ok(())
    }

    fn sync(&self) -> steps::Result<()> {
        let batch = std::mem::take(&mut *self.pending.borrow_mut());
        self.journal
            .borrow_mut()
            .append_batch(batch)
            .map_err(journal_error)
    }

    fn saved(&self, f: &mut dyn FnMut(&[u8]) -> steps::Result<()>) -> steps::Result<()> {
        let journal = self.journal.borrow();
        for r in journal.records() {
            if r.phase == Phase::StepData && r.run_id == self.run_id && r.step == Some(self.step) {
                f(&journal.read_payload(r.seq).map_err(journal_error)?)?;
            }
        }
        Ok(())
    }
}
