//! Text rendering of the dry runs of `release`, `run` and `deploy`: what would change, with
//! the files' unified diffs (secret values already masked by the task layer).

use crate::ops::StepReport;
use crate::ops::release::Released;
use crate::ops::run::Running;

/// One line per step: `would change` or `unchanged`, and its plan.
pub fn steps(steps: &[StepReport]) -> String {
    let mut t = String::new();
    for s in steps {
        t.push_str(&format!(
            "  {} {:<24} {}\n",
            if s.changed {
                "would change"
            } else {
                "unchanged   "
            },
            s.step,
            s.detail
        ));
    }
    t
}

/// The steps, then each file to place with its diff, the images, the restarts.
pub fn release(r: &Released) -> String {
    let mut t = steps(&r.steps);
    let files: Vec<_> = r.files.iter().filter(|f| f.change != "unchanged").collect();
    if !files.is_empty() {
        t.push_str("\n  files that would change:\n");
    }
    for f in files {
        t.push_str(&format!("    {:<9} {}\n", f.change, f.path.display()));
        match f.diff.as_deref() {
            Some("") | None => t.push_str("      (mode or owner only)\n"),
            Some(diff) => {
                for line in diff.lines() {
                    t.push_str(&format!("      {line}\n"));
                }
            }
        }
    }
    if let Some(images) = &r.images {
        for path in &images.load {
            t.push_str(&format!("\n  would load {}", path.display()));
        }
        for image in &images.pull {
            t.push_str(&format!("\n  would pull {image}"));
        }
        t.push('\n');
    }
    if !r.pending_restarts.is_empty() {
        t.push_str(&format!(
            "\n  `run` would restart: {}\n",
            r.pending_restarts.join(", ")
        ));
    }
    t
}

/// The steps, what `up -d` would do to each service, and the services' health now.
pub fn run(r: &Running) -> String {
    let mut t = steps(&r.steps);
    for a in &r.would {
        t.push_str(&format!("    would {:<9} {}\n", a.action, a.service));
    }
    for s in &r.restarted {
        t.push_str(&format!("    would restart   {s}\n"));
    }
    if !r.services.is_empty() {
        t.push_str("\n  now:\n");
    }
    for s in &r.services {
        t.push_str(&super::run::service_line(s));
    }
    t
}
