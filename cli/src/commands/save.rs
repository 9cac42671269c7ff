//! `kiln save [-o FILE] [--format oci|docker] IMAGE...`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use kiln_cache::transfer::{self, SaveItem};

use super::display::store;
use crate::Globals;

/// Flags of `kiln save`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Images (names or IDs).
    #[arg(required = true)]
    images: Vec<String>,
    /// Write to a file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<std::path::PathBuf>,
    /// Archive format: docker (docker save's docker-archive, the default) or
    /// oci (an OCI image layout in a tar).
    #[arg(long, default_value = "docker", value_parser = ["docker", "oci"])]
    format: String,
}

/// Writes the archive (to a temp file renamed into place, when `-o` is given).
pub fn run(g: &Globals, args: Args) -> Result<ExitCode> {
    let store = store(g)?;
    let mut items: Vec<SaveItem> = Vec::new();
    for r in &args.images {
        let img = store.image(r)?;
        let names = match kiln_cache::image::normalize_name(r) {
            Ok(n) if img.names.contains(&n) => vec![n],
            _ => Vec::new(),
        };
        match items
            .iter_mut()
            .find(|i| i.image.manifest_digest == img.manifest_digest)
        {
            Some(i) => i.names.extend(names),
            None => items.push(SaveItem { image: img, names }),
        }
    }
    let write = |w: Box<dyn Write>| -> Result<Box<dyn Write>> {
        Ok(match args.format.as_str() {
            "oci" => transfer::save_oci(&store, &items, w)?,
            _ => transfer::save_docker(&store, &items, w)?,
        })
    };
    match &args.output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let tmp = dir.join(format!(
                ".{}.kiln-tmp-{}",
                path.file_name().and_then(|n| n.to_str()).unwrap_or("save"),
                std::process::id()
            ));
            let f =
                std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
            let result =
                write(Box::new(std::io::BufWriter::with_capacity(1 << 20, f))).and_then(|mut w| {
                    w.flush()?;
                    Ok(())
                });
            if let Err(e) = result {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            std::fs::rename(&tmp, path)
                .with_context(|| format!("rename {} to {}", tmp.display(), path.display()))?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut w = write(Box::new(std::io::BufWriter::with_capacity(
                1 << 20,
                std::io::stdout().lock(),
            )))?;
            w.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
