//! Which LXD objects are this environment's: every instance and profile provision creates
//! carries the environment's random id (`user.torrust-deployer.id`), and nothing is adopted,
//! changed or deleted that carries another id, or none, unless the operator says so.
//!
//! Two data directories may hold environments of the same name (so the same instance and
//! profile names) on one LXD: the id tells them apart. An object without any id that the
//! state recorded as its own was made before ids existed: it is adopted and marked.

use crate::error_kind::{Classify, ErrorKind};

/// The LXD config key holding the owning environment's id.
pub const OWNER_KEY: &str = "user.torrust-deployer.id";

/// Who an LXD object belongs to, from this environment's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// It carries this environment's id.
    Ours,
    /// No id, but this environment's state records it: made before ids existed; mark it.
    Unmarked,
    /// Another environment's id (`Some`), or none and not recorded here (`None`).
    Foreign(Option<String>),
}

/// Judges an object that carries `found` (its [`OWNER_KEY`]), for the environment of id
/// `ours` whose state `recorded` it as its own.
pub fn owner(found: Option<&str>, ours: &str, recorded: bool) -> Owner {
    match found {
        Some(id) if id == ours => Owner::Ours,
        None if recorded => Owner::Unmarked,
        other => Owner::Foreign(other.map(str::to_string)),
    }
}

/// What the operator tried to do to an object that is not the environment's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Adopt,
    Delete,
}

/// An LXD object that another environment owns (or nobody recorded), left alone.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} '{name}' in {place} is not environment '{env}''s: {whose}.\n  It was left as it is. \
     Fix: give this environment other names (`environment.name`, or `provider.profile_name` for \
     the profile), or, if it really is this environment's, run again with `{flag}`"
)]
pub struct ForeignError {
    /// `LXD` or `Hetzner Cloud`.
    pub place: &'static str,
    pub what: &'static str,
    pub name: String,
    pub env: String,
    pub whose: String,
    pub flag: &'static str,
}

impl ForeignError {
    pub fn new(
        what: &'static str,
        name: &str,
        env: &str,
        found: Option<&str>,
        action: Action,
    ) -> Self {
        let whose = match found {
            Some(id) => format!(
                "it carries the id of another environment ({OWNER_KEY}={id}), whose data directory made it"
            ),
            None => format!(
                "it carries no {OWNER_KEY} and this environment's state does not record it (made by hand, or by another data directory before ids existed)"
            ),
        };
        Self {
            place: "LXD",
            what,
            name: name.to_string(),
            env: env.to_string(),
            whose,
            flag: match action {
                Action::Adopt => "--adopt-foreign",
                Action::Delete => "--delete-foreign",
            },
        }
    }
}

impl ForeignError {
    /// A Hetzner Cloud object of the environment's name without its id label (or with another
    /// environment's id).
    pub fn hetzner(what: &'static str, name: &str, env: &str, found: Option<&str>) -> Self {
        let label = crate::hetzner::ID_LABEL;
        let whose = match found {
            Some(id) => format!("its label {label}={id} is another environment's"),
            None => format!("it carries no {label} label (made by hand, or by another tool)"),
        };
        Self {
            place: "Hetzner Cloud",
            what,
            name: name.to_string(),
            env: env.to_string(),
            whose,
            flag: "--adopt-foreign",
        }
    }
}

impl Classify for ForeignError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::ForeignResource
    }
}

/// An existing LXD object, as [`check`] judges it.
#[derive(Debug, Clone, Copy)]
pub struct Found<'a> {
    /// `instance` or `profile`.
    pub what: &'static str,
    pub name: &'a str,
    /// Its [`OWNER_KEY`], if any.
    pub id: Option<&'a str>,
    /// The environment's state records it as its own.
    pub recorded: bool,
}

/// Checks an object before acting on it for environment `env` of id `ours`: `Ok(true)` when it
/// must be marked (unmarked, or foreign and `force`), `Ok(false)` when it is already ours.
pub fn check(
    found: Found<'_>,
    env: &str,
    ours: &str,
    action: Action,
    force: bool,
) -> Result<bool, ForeignError> {
    match owner(found.id, ours, found.recorded) {
        Owner::Ours => Ok(false),
        Owner::Unmarked => Ok(true),
        Owner::Foreign(_) if force => Ok(true),
        Owner::Foreign(id) => Err(ForeignError::new(
            found.what,
            found.name,
            env,
            id.as_deref(),
            action,
        )),
    }
}

/// A new random environment id: 16 hex digits.
pub fn new_id() -> String {
    use rand::Rng;
    let bytes: [u8; 8] = rand::thread_rng().r#gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_is_ours_only_with_our_id_or_recorded_without_one() {
        assert_eq!(owner(Some("a1"), "a1", false), Owner::Ours);
        assert_eq!(owner(None, "a1", true), Owner::Unmarked);
        assert_eq!(owner(None, "a1", false), Owner::Foreign(None));
        // Recorded by name is not enough when another id is on it: two data directories.
        assert_eq!(
            owner(Some("b2"), "a1", true),
            Owner::Foreign(Some("b2".into()))
        );
    }

    #[test]
    fn a_foreign_object_is_refused_unless_forced_and_the_message_says_how() {
        let vm = |id| Found {
            what: "instance",
            name: "vm",
            id,
            recorded: true,
        };
        let err = check(vm(Some("b2")), "demo", "a1", Action::Delete, false).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("instance 'vm'"), "{text}");
        assert!(text.contains("b2"), "{text}");
        assert!(text.contains("--delete-foreign"), "{text}");
        assert_eq!(err.kind(), ErrorKind::ForeignResource);
        assert!(check(vm(Some("b2")), "demo", "a1", Action::Adopt, true).unwrap());
        assert!(!check(vm(Some("a1")), "demo", "a1", Action::Adopt, false).unwrap());
        assert!(check(vm(None), "demo", "a1", Action::Adopt, false).unwrap());
    }

    #[test]
    fn ids_are_sixteen_hex_digits_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
