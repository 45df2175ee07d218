//! `backup ENV`: run the backup job on the host now; `--list` the archives there;
//! `--download DIR [--archive NAME]` copy them here, checked by sha256.

use std::path::PathBuf;

use super::monitor::size;
use super::{CliError, GlobalArgs, Output, block_on, env_name};
use crate::ops::backup;
use crate::tasks::backup::copy::FetchAction;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name.
    pub env: String,
    /// List the archives on the host (name, size, time) instead of making one.
    #[arg(long, conflicts_with = "download")]
    pub list: bool,
    /// Copy the archives on the host into DIR (created 0700; files 0600, each with a `.sha256`
    /// beside it) instead of making one. Archives already there are not copied again, an
    /// interrupted copy resumes.
    #[arg(long, value_name = "DIR")]
    pub download: Option<PathBuf>,
    /// With --download: only this archive (a name `--list` shows).
    #[arg(long, value_name = "NAME", requires = "download")]
    pub archive: Option<String>,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let env = env_name(&args.env)?;
    let data = global.data();
    if args.list {
        let l = block_on(backup::list(&data, env, global.lock_wait()))?;
        out.result(&l, || {
            if l.listing.archives.is_empty() {
                return format!(
                    "No backup archives on the host of environment '{}' ({}).\n",
                    l.name,
                    crate::stack::layout::BACKUP_DIR
                );
            }
            let mut t = format!(
                "Backup archives of environment '{}' on {} ({}), oldest first:\n",
                l.name,
                l.host,
                crate::stack::layout::BACKUP_DIR
            );
            for a in &l.listing.archives {
                let last = if l.listing.last_success.as_deref() == Some(a.name.as_str()) {
                    "  (the job's last success)"
                } else {
                    ""
                };
                t.push_str(&format!(
                    "  {}  {:>9}  {}{last}\n",
                    a.name,
                    size(a.size),
                    a.modified.format("%Y-%m-%d %H:%M:%S UTC")
                ));
            }
            t
        })?;
        return Ok(());
    }
    if let Some(dir) = &args.download {
        let d = block_on(backup::download(
            &data,
            env,
            dir,
            args.archive.as_deref(),
            global.lock_wait(),
        ))?;
        out.result(&d, || {
            if d.archives.is_empty() {
                return format!(
                    "No backup archives on the host of environment '{}': nothing copied.\n",
                    d.name
                );
            }
            let mut t = format!(
                "Backup archives of environment '{}' in {}:\n",
                d.name,
                d.dir.display()
            );
            for f in &d.archives {
                let action = match f.action {
                    FetchAction::Downloaded => "copied   ",
                    FetchAction::Resumed => "resumed  ",
                    FetchAction::Unchanged => "unchanged",
                    FetchAction::Replaced => "replaced ",
                };
                t.push_str(&format!(
                    "  {action} {}  {:>9}  sha256 {}\n",
                    f.name,
                    size(f.size),
                    f.sha256
                ));
            }
            t.push_str(&format!(
                "  (mode 0600: they hold the database and the secrets of .env; a .sha256 file \
                 is beside each)\n  took:      {:.1} s\n",
                d.elapsed_ms as f64 / 1000.0
            ));
            t
        })?;
        return Ok(());
    }
    let m = block_on(backup::backup(&data, env, global.lock_wait()))?;
    out.result(&m, || {
        format!(
            "Backup of environment '{}' made on {}.\n  archive:   {}\n  size:      {} ({} bytes)\n  \
             sha256:    {}\n  took:      {:.1} s\n  next:      torrust-tracker-deployer backup {} \
             --download DIR --archive {}\n",
            m.name,
            m.host,
            m.archive.path,
            size(m.archive.size),
            m.archive.size,
            m.archive.sha256.as_deref().unwrap_or("?"),
            m.elapsed_ms as f64 / 1000.0,
            m.name,
            m.archive.name
        )
    })?;
    Ok(())
}
