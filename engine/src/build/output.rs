//! `--output`: the image written somewhere besides the store (a directory, a tar of its
//! file system, an OCI or docker archive).

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiln_cache::Store;

use crate::{Error, Result, ResultExt};

/// `--output type=...,dest=...`.
pub(super) fn write_output(store: &Store, spec: &str, manifest: &kiln_cache::Digest) -> Result<()> {
    let fields: BTreeMap<&str, &str> = spec
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let kind = fields.get("type").copied().unwrap_or("local");
    let dest = fields
        .get("dest")
        .copied()
        .or_else(|| (!spec.contains('=')).then_some(spec))
        .ok_or_else(|| Error::invalid(format!("--output {spec}: dest= is missing")))?;
    let image = store.load_image(manifest, Vec::new())?;
    let items = [kiln_cache::transfer::SaveItem {
        image: image.clone(),
        names: Vec::new(),
    }];
    let tmp = PathBuf::from(format!("{dest}.kiln-tmp-{}", std::process::id()));
    match kind {
        "oci" | "docker" => {
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            let file = if kind == "oci" {
                kiln_cache::transfer::save_oci(store, &items, file)?
            } else {
                kiln_cache::transfer::save_docker(store, &items, file)?
            };
            file.sync_all()?;
            std::fs::rename(&tmp, dest)?;
        }
        "local" | "tar" => {
            let dir = if kind == "local" {
                PathBuf::from(dest)
            } else {
                tmp.with_extension("dir")
            };
            std::fs::create_dir_all(&dir)?;
            for (blob, _, _) in image.layers()? {
                let f = store.content().open_blob(&blob)?;
                kiln_cache::layer::apply_layer(
                    std::io::BufReader::new(f),
                    &dir,
                    &kiln_cache::layer::ApplyOptions {
                        mode: kiln_cache::layer::ApplyMode::Merged,
                        ..Default::default()
                    },
                )?;
            }
            if kind == "tar" {
                let file = std::fs::File::create(&tmp)?;
                let mut tar = tar::Builder::new(file);
                tar.follow_symlinks(false);
                tar.append_dir_all(".", &dir)?;
                tar.into_inner()?.sync_all()?;
                std::fs::rename(&tmp, dest)?;
                std::fs::remove_dir_all(&dir)?;
            }
        }
        other => {
            return Err(Error::invalid(format!(
                "--output type={other} is not supported (use local, tar, oci or docker)"
            )))
        }
    }
    Ok(())
}
