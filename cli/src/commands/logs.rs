//! `kiln logs`

use std::io::{Read, Seek, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use kiln_executor::state::Store;

use crate::commands::container::is_running;
use crate::Globals;

/// Flags of `kiln logs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep printing output as the container writes it.
    #[arg(short, long)]
    follow: bool,
    /// Container name or id.
    container: String,
}

/// Prints a detached container's output.
pub fn run(globals: &Globals, args: Args) -> anyhow::Result<ExitCode> {
    let store = Store::open(&globals.root)?;
    let rec = store.find(&args.container)?;
    let path = store.dir(&rec.id).join("log");
    let mut f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(_) => return Ok(ExitCode::SUCCESS), // a foreground container: its output went to the terminal
    };
    let mut out = std::io::stdout().lock();
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .with_context(|| format!("read {}", path.display()))?;
    out.write_all(&buf)?;
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        out.flush()?;
        let alive = store.load(&rec.id).map(|r| is_running(&r)).unwrap_or(false);
        let pos = f.stream_position()?;
        buf.clear();
        f.read_to_end(&mut buf)?;
        out.write_all(&buf)?;
        if !alive && f.stream_position()? == pos {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(ExitCode::SUCCESS)
}
