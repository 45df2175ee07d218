//! POSIX shell quoting.

/// Quotes `s` as one word for a POSIX shell (`sh`, `bash`, `dash`, busybox `ash`).
///
/// Words made only of safe characters come back unchanged; anything else is wrapped in single
/// quotes, with each `'` written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'_' | b'-' | b'.' | b'/' | b':' | b'@' | b',' | b'+' | b'%'
                )
        });
    if safe {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Quotes each word and joins them with spaces: a command line that runs `words` as argv.
pub fn shell_join<I, S>(words: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    words
        .into_iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_words_are_unchanged() {
        assert_eq!(shell_quote("abc-1.2/x:y@h,+%"), "abc-1.2/x:y@h,+%");
    }

    #[test]
    fn unsafe_words_are_single_quoted() {
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_quote("a\nb"), "'a\nb'");
        assert_eq!(shell_quote("~"), "'~'");
        assert_eq!(shell_quote("*"), "'*'");
        // `a=b` as a first word would be an assignment.
        assert_eq!(shell_quote("a=b"), "'a=b'");
    }

    #[test]
    fn join_quotes_each_word() {
        assert_eq!(shell_join(["echo", "a b", "c"]), "echo 'a b' c");
    }

    #[test]
    fn quoted_words_survive_a_real_shell() {
        let nasty = [
            "", "a b", "it's", "$HOME", "`id`", "a\nb", "\\", "\"", "-n", "*", "'''",
        ];
        let cmd = format!("printf '%s\\0' {}", shell_join(nasty));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .output()
            .unwrap();
        let got: Vec<&str> = std::str::from_utf8(&out.stdout)
            .unwrap()
            .split('\0')
            .collect();
        let mut want: Vec<&str> = nasty.to_vec();
        want.push("");
        assert_eq!(got, want);
    }
}
