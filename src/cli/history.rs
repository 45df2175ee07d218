//! `history ENV [--local]`: every release of the environment, this machine's and the host's.

use super::{CliError, GlobalArgs, Output, block_on, env_name};
use crate::ops::history::{self, History, HistoryOptions, HostRead, ReleaseEntry};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name.
    pub env: String,
    /// Only this machine's records: do not read the host's history.
    #[arg(long)]
    pub local: bool,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let env = env_name(&args.env)?;
    let options = HistoryOptions {
        local_only: args.local,
    };
    let h = block_on(history::history(&global.data(), env, &options))?;
    out.result(&h, || text(&h))?;
    Ok(())
}

fn text(h: &History) -> String {
    let source = match &h.host {
        HostRead::Read { .. } => "this machine's and the host's",
        HostRead::NotAsked | HostRead::NoHost => "this machine's",
        HostRead::Failed { .. } => "this machine's only",
    };
    let mut t = format!(
        "Environment '{}': {} release(s) ({source} history)\n",
        h.name,
        h.releases.len()
    );
    if let HostRead::Failed { error } = &h.host {
        t.push_str(&format!(
            "  WARNING: the host's history was not read: {error}\n"
        ));
    }
    if let HostRead::Read { skipped, .. } = &h.host {
        for s in skipped {
            t.push_str(&format!("  WARNING: the host's history, {s}: skipped\n"));
        }
    }
    if h.releases.is_empty() {
        t.push_str(
            "  No release recorded yet: `release` (or `deploy`) records each one that changes \
             what the host holds.\n",
        );
        return t;
    }
    t.push_str(&format!(
        "\n  {:>3}  {:<20} {:<24} {:<9} changes\n",
        "#", "when (UTC)", "by", "command"
    ));
    for r in h.releases.iter().rev() {
        t.push_str(&line(r));
    }
    t.push_str(&format!(
        "\n  Put one back with `torrust-tracker-deployer rollback {} --to N`.\n",
        h.name
    ));
    t
}

fn line(r: &ReleaseEntry) -> String {
    let mut what = Vec::new();
    if let Some(n) = r.restores {
        what.push(format!("back to #{n}"));
    }
    if !r.changed.files.is_empty() {
        let names: Vec<&str> = r
            .changed
            .files
            .iter()
            .map(|p| p.rsplit('/').next().unwrap_or(p))
            .collect();
        what.push(format!("files: {}", names.join(", ")));
    }
    if !r.changed.images.is_empty() {
        what.push(format!("images: {}", r.changed.images.join(", ")));
    }
    if !r.changed.restarts.is_empty() {
        what.push(format!("restarts: {}", r.changed.restarts.join(", ")));
    }
    let mut t = format!(
        "  {:>3}{} {:<20} {:<24} {:<9} {}\n",
        r.number,
        if r.current { "*" } else { " " },
        r.at.format("%Y-%m-%d %H:%M:%S"),
        format!("{}@{}", r.user, r.machine),
        r.command,
        what.join("; ")
    );
    if let Some(note) = &r.note {
        t.push_str(&format!("{:>63}{note}\n", ""));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::history::{entries, merge};
    use crate::state::history::tests::record;

    #[test]
    fn the_text_lists_the_newest_first_with_who_when_and_what() {
        let sha = "a".repeat(64);
        let mut a = record("00000000000000a1", "2026-12-01T10:00:01Z", &sha);
        a.changed.files = vec!["/opt/torrust/storage/prometheus/etc/prometheus.yml".into()];
        a.changed.restarts = vec!["prometheus".into()];
        let mut b = record("00000000000000b2", "2026-12-01T10:05:00Z", &sha);
        b.command = "rollback".into();
        b.restores = Some(a.id.clone());
        b.note = Some("automatic: the upgrade (x) did not become healthy".into());
        b.changed.images = vec!["torrust/tracker:3.0.0".into()];
        b.by.user = "bob".into();
        let h = History {
            name: "prod".into(),
            releases: entries(&merge(vec![a], vec![b])),
            host: HostRead::Read {
                records: 1,
                skipped: vec!["line 3: expected value".into()],
            },
            elapsed_ms: 0,
        };
        let t = text(&h);
        let note = format!(
            "{}automatic: the upgrade (x) did not become healthy\n",
            " ".repeat(63)
        );
        assert_eq!(
            t,
            "Environment 'prod': 2 release(s) (this machine's and the host's history)\n\
             \x20 WARNING: the host's history, line 3: expected value: skipped\n\
             \n\
             \x20   #  when (UTC)           by                       command   changes\n\
             \x20   2* 2026-12-01 10:05:00  bob@laptop               rollback  back to #1; images: torrust/tracker:3.0.0\n"
                .to_string()
                + &note
                + "    1  2026-12-01 10:00:01  ana@laptop               release   files: prometheus.yml; restarts: prometheus\n\
                   \n\
                   \x20 Put one back with `torrust-tracker-deployer rollback prod --to N`.\n"
        );
    }
}
