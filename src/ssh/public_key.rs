//! OpenSSH public key files (`id_ed25519.pub`): parsed, never copied as they are. Whatever else
//! the file holds (a second key, a stray line, `authorized_keys` options) would otherwise reach
//! cloud-init's user-data and the host's `authorized_keys`; what leaves here is one key on one
//! line, written again from its parsed form.

use std::io::Read;
use std::path::Path;

use russh::keys::PublicKey;

/// A public key file is one line: even a 16384-bit RSA key is under 3 KiB.
pub const MAX_PUBLIC_KEY_FILE: u64 = 64 * 1024;

/// Why a public key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PublicKeyError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not an OpenSSH public key file: {reason}.\n  Fix: {PUBLIC_KEY_FIX}", path.display())]
    Invalid {
        path: std::path::PathBuf,
        reason: String,
    },
}

impl crate::error_kind::Classify for PublicKeyError {
    /// The key file is named by the environment file (or generated next to the state).
    fn kind(&self) -> crate::error_kind::ErrorKind {
        crate::error_kind::ErrorKind::InvalidConfig
    }
}

/// The fix for a [`PublicKeyError::Invalid`]: where a good file comes from.
pub const PUBLIC_KEY_FIX: &str = "point `ssh_credentials.public_key_path` at a file holding exactly one \
     OpenSSH public key line, `ssh-ed25519 AAAA... comment` (`ssh-keygen -y -f PRIVATE_KEY > \
     PRIVATE_KEY.pub` writes it from the private key)";

/// Reads the public key file at `path`: at most [`MAX_PUBLIC_KEY_FILE`] bytes, one key. Returns
/// the key as one line (no line break), see [`public_key_line`].
pub fn read_public_key(path: &Path) -> Result<String, PublicKeyError> {
    let read = |source| PublicKeyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let invalid = |reason: String| PublicKeyError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    if !meta.is_file() {
        return Err(invalid("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(read)?
        .take(MAX_PUBLIC_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_PUBLIC_KEY_FILE {
        return Err(invalid(format!(
            "larger than {} KiB; a public key file holds one line",
            MAX_PUBLIC_KEY_FILE / 1024
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| invalid("not UTF-8 text".into()))?;
    public_key_line(&text).map_err(invalid)
}

/// The one OpenSSH public key of `text` (blank lines around it are allowed, nothing else), as
/// `ALGORITHM BASE64 [COMMENT]` on one line. The comment is kept when it is plain (letters,
/// digits and `@._+=-`, as in `user@host`), and dropped otherwise: the line goes into YAML and
/// `authorized_keys` unquoted.
pub fn public_key_line(text: &str) -> Result<String, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    let (number, line) = match lines.as_slice() {
        [] => return Err("the file is empty".into()),
        [one] => *one,
        [_, (second, _), ..] => {
            return Err(format!(
                "it has {} non-empty lines (line {second} is the second); it must hold exactly \
                 one key",
                lines.len()
            ));
        }
    };
    if line.starts_with("-----BEGIN") {
        return Err("it is a private key, not a public key".into());
    }
    let mut key = PublicKey::from_openssh(line).map_err(|e| {
        format!(
            "line {number} is not `ALGORITHM BASE64 [COMMENT]` with a key of a known type \
             ({e})"
        )
    })?;
    let plain = |c: char| c.is_ascii_alphanumeric() || "@._+=-".contains(c);
    let comment = key.comment().as_str_lossy().to_string();
    if !comment.chars().all(plain) {
        key.set_comment("");
    }
    let out = key
        .to_openssh()
        .map_err(|e| format!("cannot write the key again: {e}"))?;
    Ok(out.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real ed25519 public key (from `ssh-keygen -t ed25519`).
    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINXyjB0NKXWa/UKodLoFN/ZGCMcLfZy0PKLeNApdci4p";

    #[test]
    fn one_key_line_is_kept_with_a_plain_comment() {
        let with = format!("{KEY} me@host\n");
        assert_eq!(public_key_line(&with).unwrap(), format!("{KEY} me@host"));
        assert_eq!(public_key_line(&format!("\n  {KEY}\n\n")).unwrap(), KEY);
        assert_eq!(public_key_line(&format!("\u{feff}{KEY}")).unwrap(), KEY);
    }

    #[test]
    fn a_comment_that_yaml_would_read_is_dropped() {
        for comment in ["a: b", "x #y", "\"quoted\"", "it's"] {
            assert_eq!(
                public_key_line(&format!("{KEY} {comment}")).unwrap(),
                KEY,
                "{comment}"
            );
        }
    }

    #[test]
    fn anything_but_one_key_is_refused() {
        let cases = [
            ("", "empty"),
            ("\n \n", "empty"),
            (
                &format!("{KEY} a\nruncmd: [touch, /tmp/owned]\n") as &str,
                "2 non-empty lines",
            ),
            (&format!("{KEY}\n{KEY}\n"), "exactly one key"),
            ("ssh-ed25519 AAAA test", "line 1"),
            ("not a key", "line 1"),
            (&format!("command=\"/bin/sh\" {KEY}"), "ALGORITHM BASE64"),
            ("-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n", "2 non-empty"),
            ("-----BEGIN OPENSSH PRIVATE KEY-----", "private key"),
        ];
        for (text, expected) in cases {
            let err = public_key_line(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn files_are_read_with_a_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.pub");
        std::fs::write(&path, format!("{KEY} me@host\n")).unwrap();
        assert_eq!(read_public_key(&path).unwrap(), format!("{KEY} me@host"));
        std::fs::write(&path, vec![b'a'; MAX_PUBLIC_KEY_FILE as usize + 1]).unwrap();
        assert!(
            read_public_key(&path)
                .unwrap_err()
                .to_string()
                .contains("larger than 64 KiB")
        );
        assert!(
            read_public_key(dir.path())
                .unwrap_err()
                .to_string()
                .contains("not a regular file")
        );
    }
}
