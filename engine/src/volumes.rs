//! Named volumes: create, list, inspect, remove (`ROOT/volumes`).

use kiln_executor::volume::{Volume, Volumes};

use crate::containers::from_executor;
use crate::{Engine, Result};

impl Engine {
    fn volumes(&self) -> Result<Volumes> {
        Volumes::open(self.root()).map_err(from_executor)
    }

    /// Creates a volume (idempotent, as docker) and returns it; a bad name is
    /// [`crate::Error::Invalid`].
    pub fn create_volume(&self, name: &str) -> Result<Volume> {
        self.volumes()?.create(name).map_err(from_executor)
    }

    /// Every volume, by name.
    pub fn list_volumes(&self) -> Result<Vec<Volume>> {
        Ok(self.volumes()?.list())
    }

    /// A volume's record ([`crate::Error::NotFound`] when there is none).
    pub fn inspect_volume(&self, name: &str) -> Result<Volume> {
        self.volumes()?.inspect(name).map_err(from_executor)
    }

    /// Deletes a volume and its data.
    pub fn remove_volume(&self, name: &str) -> Result<()> {
        self.volumes()?.remove(name).map_err(from_executor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn volumes_round_trip_with_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(dir.path());
        assert_eq!(engine.create_volume("data").unwrap().name, "data");
        assert_eq!(engine.list_volumes().unwrap().len(), 1);
        assert!(engine.inspect_volume("data").unwrap().mountpoint.is_dir());
        engine.remove_volume("data").unwrap();
        let e = engine.inspect_volume("data").unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e}");
        assert!(matches!(
            engine.create_volume("../x").unwrap_err(),
            Error::Invalid(_)
        ));
    }
}
