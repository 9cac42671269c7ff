//! Listing containers (`ps`).

use kiln_executor::state::ContainerRecord;

use super::is_running;
use crate::{Engine, Result};

impl Engine {
    /// The containers' records, running ones only unless `all`. Records left behind by a
    /// supervisor that died are cleaned up first.
    pub fn list_containers(&self, all: bool) -> Result<Vec<ContainerRecord>> {
        let store = self.containers()?;
        store.cleanup_stale();
        Ok(store
            .list()
            .into_iter()
            .filter(|r| all || is_running(r))
            .collect())
    }
}
