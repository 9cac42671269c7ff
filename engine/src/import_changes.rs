//! `docker import --change`: Dockerfile instructions applied to an imported image's config
//! (`kiln import -c`, the API's `POST /images/create?fromSrc=-&changes=...`).
//!
//! The changes are metadata instructions only (docker's list: CMD, ENTRYPOINT, ENV, EXPOSE,
//! HEALTHCHECK, LABEL, ONBUILD, SHELL, STOPSIGNAL, USER, VOLUME, WORKDIR), so they are built
//! as the Dockerfile `FROM <the import>` plus the changes, by the build's own front end: the
//! same parsing, word expansion and config rules as a Dockerfile. No instruction but
//! WORKDIR adds a layer; WORKDIR makes its directory, as in a Dockerfile, where dockerd's
//! import only sets the field.

use crate::build::{BuildContext, BuildOptions, DockerfileSource};
use crate::images::RootfsSource;
use crate::{Engine, Error, Progress, Result, ResultExt};

/// The instructions docker accepts as an import's or commit's changes.
const CHANGE_INSTRUCTIONS: [&str; 12] = [
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Checks each change is one of docker's change instructions, with dockerd's message
/// otherwise.
pub fn check_changes(changes: &[String]) -> Result<()> {
    for change in changes {
        let word = change.split_whitespace().next().unwrap_or("");
        if word.is_empty() {
            continue;
        }
        if !CHANGE_INSTRUCTIONS.contains(&word.to_ascii_uppercase().as_str()) {
            return Err(Error::invalid(format!(
                "{word} is not a valid change command"
            )));
        }
    }
    Ok(())
}

impl Engine {
    /// [`Engine::import_rootfs`], then `changes` (Dockerfile instructions, one each) applied
    /// to the image's config; returns the final image's ID. A change that is not one of
    /// docker's change instructions is [`Error::Invalid`], checked before anything is read.
    pub fn import_rootfs_with_changes(
        &self,
        source: RootfsSource,
        name: &str,
        message: Option<String>,
        changes: &[String],
    ) -> Result<kiln_cache::Digest> {
        let changes: Vec<String> = changes
            .iter()
            .filter(|c| !c.trim().is_empty())
            .cloned()
            .collect();
        check_changes(&changes)?;
        let id = self.import_rootfs(source, name, message)?;
        if changes.is_empty() {
            return Ok(id);
        }
        let store = self.store()?;
        let context = store.scratch()?;
        let mut dockerfile = format!("FROM {name}\n");
        for change in &changes {
            dockerfile.push_str(change.trim());
            dockerfile.push('\n');
        }
        let mut opts = BuildOptions::new(BuildContext::Directory(context.clone()));
        opts.dockerfile = DockerfileSource::Bytes {
            name: "changes".into(),
            bytes: dockerfile.into_bytes(),
        };
        opts.tags = vec![name.to_string()];
        let built = self.build(opts, &Progress::none());
        // Best effort: an empty directory left behind costs nothing but an inode.
        let _ = std::fs::remove_dir(&context);
        let built = built.context("applying the import's changes")?;
        built
            .id
            .parse::<kiln_cache::Digest>()
            .map_err(|e| Error::Internal(format!("the built image's ID {}: {e}", built.id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dockers_change_instructions_pass() {
        let ok: Vec<String> = ["CMD [\"sh\"]", "env A=1", "  ", "WORKDIR /srv"]
            .map(String::from)
            .to_vec();
        check_changes(&ok).unwrap();
        let err = check_changes(&["RUN rm -rf /".to_string()]).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err:?}");
        assert_eq!(err.to_string(), "RUN is not a valid change command");
    }
}
