//! Who runs the deployer: `user@machine`, as the maintenance lock and the release history
//! record it.

use std::fs;

use serde::{Deserialize, Serialize};

/// A person at a machine: `user@machine`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    pub user: String,
    pub machine: String,
}

impl Operator {
    /// This process's user (`$USER`, `$LOGNAME`, else its uid's name) and machine (the kernel's
    /// host name).
    pub fn current() -> Self {
        let user = ["USER", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
            .unwrap_or_else(uid_name);
        Self {
            user: printable(&user),
            machine: printable(&super::lock::hostname()),
        }
    }
}

impl std::fmt::Display for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.user, self.machine)
    }
}

/// The name of this process's uid in /etc/passwd, or `uid N`.
fn uid_name() -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = fs::metadata("/proc/self").map(|m| m.uid()) else {
        return "unknown".to_string();
    };
    let uid = uid.to_string();
    fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.get(2) == Some(&uid.as_str())).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// `s` without the characters [`unsafe_char`] names, at most 100 of them.
pub(crate) fn printable(s: &str) -> String {
    s.trim()
        .chars()
        .filter(|c| !unsafe_char(*c))
        .take(100)
        .collect()
}

/// Characters that must not reach a terminal from a record: control characters (escape
/// sequences, line breaks) and the Unicode ones that reorder or hide text.
pub(crate) fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}
