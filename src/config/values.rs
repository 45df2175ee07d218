//! The typed values of the environment file: bind addresses, ports, domains, the SSH user and
//! the MySQL names. Each is parsed once, by its type, when a file or a stored state is read; the
//! rest of the program holds the parsed value and never parses the text again.
//!
//! On the wire every type is what it was before (a JSON string, or an integer for [`Port`]) and
//! its JSON Schema says the same. The schema used for the structural walk also carries a private
//! keyword ([`VALUE_TYPE_KEYWORD`]) naming the type, so that the walk reports a value its type
//! rejects as a problem at the value's path, next to every other problem of the file; the
//! published schema has it removed.
//!
//! A file with a rejected value is still checked by every rule: its typed deserialization runs
//! [`leniently`], where a rejected value becomes a stand-in of its type, and the rules skip the
//! paths already reported. Outside [`leniently`] (e.g. reading a state file) a rejected value is
//! a deserialization error.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU16;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The private schema keyword naming the type of a value (walk schema only).
pub(super) const VALUE_TYPE_KEYWORD: &str = "x-value-type";

/// Why a value was rejected by its type, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValueError {
    /// What is wrong, e.g. `port 0 (a dynamic port) is not supported`.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl ValueError {
    fn new(message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            fix: fix.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lenient deserialization
// ---------------------------------------------------------------------------------------------

thread_local! {
    /// `Some` while [`leniently`] runs: the values replaced by a stand-in.
    static STAND_INS: RefCell<Option<Vec<ValueError>>> = const { RefCell::new(None) };
}

/// Runs `f` (a deserialization) so that a value its type rejects becomes a stand-in of that type
/// instead of an error. Returns `f`'s result and why each stand-in was used. Only for reporting
/// every problem of a file at once: a configuration with a stand-in must never be used.
pub(super) fn leniently<T>(f: impl FnOnce() -> T) -> (T, Vec<ValueError>) {
    struct Restore(Option<Vec<ValueError>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            STAND_INS.with(|s| *s.borrow_mut() = previous);
        }
    }
    let restore = Restore(STAND_INS.with(|s| s.borrow_mut().replace(Vec::new())));
    let out = f();
    let used = STAND_INS
        .with(|s| s.borrow_mut().take())
        .unwrap_or_default();
    drop(restore);
    (out, used)
}

/// The parsed value; else, inside [`leniently`], the stand-in; else the error.
fn accept<T, E: serde::de::Error>(
    parsed: Result<T, ValueError>,
    stand_in: fn() -> T,
) -> Result<T, E> {
    match parsed {
        Ok(value) => Ok(value),
        Err(e) => STAND_INS.with(|s| match s.borrow_mut().as_mut() {
            Some(used) => {
                used.push(e);
                Ok(stand_in())
            }
            None => Err(E::custom(e)),
        }),
    }
}

/// Checks a JSON value against the type named in the walk schema (`VALUE_TYPE_KEYWORD`).
/// A value of the wrong JSON type is left to the structural walk.
pub(super) fn check(value_type: &str, value: &serde_json::Value) -> Result<(), ValueError> {
    if value_type == Port::VALUE_TYPE {
        // Out of range for a `u16` is the walk's to report.
        return match value.as_u64().map(u16::try_from) {
            Some(Ok(n)) => Port::try_from(n).map(drop),
            _ => Ok(()),
        };
    }
    let Some(text) = value.as_str() else {
        return Ok(());
    };
    match value_type {
        BindAddress::VALUE_TYPE => text.parse::<BindAddress>().map(drop),
        Domain::VALUE_TYPE => text.parse::<Domain>().map(drop),
        Username::VALUE_TYPE => text.parse::<Username>().map(drop),
        MysqlDatabaseName::VALUE_TYPE => text.parse::<MysqlDatabaseName>().map(drop),
        MysqlUser::VALUE_TYPE => text.parse::<MysqlUser>().map(drop),
        other => unreachable!("no value type {other:?}"),
    }
}

/// Serde and schema impls of a type parsed from a string: serialized as its text, deserialized
/// by `FromStr`, described as a JSON string.
macro_rules! string_value {
    ($t:ident, $name:literal, $stand_in:expr) => {
        impl $t {
            pub(super) const VALUE_TYPE: &'static str = $name;
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                accept(text.parse(), $stand_in)
            }
        }

        impl JsonSchema for $t {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> Cow<'static, str> {
                stringify!($t).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", VALUE_TYPE_KEYWORD: $name })
            }
        }
    };
}

/// `as_str`, `AsRef<str>` and `Display` of a type that keeps its text as written.
macro_rules! text_value {
    ($t:ident) => {
        impl $t {
            /// The text, as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Bind addresses and ports
// ---------------------------------------------------------------------------------------------

/// A socket address a service binds to: an IP address and a port other than 0. Written
/// `IP:PORT` (`0.0.0.0:6969`, `[::]:6969`); host names are not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BindAddress(SocketAddr);

impl BindAddress {
    /// `ip:port`. `None` for port 0.
    pub fn new(ip: IpAddr, port: u16) -> Option<Self> {
        (port != 0).then(|| Self(SocketAddr::new(ip, port)))
    }

    pub fn socket_addr(&self) -> SocketAddr {
        self.0
    }

    pub fn ip(&self) -> IpAddr {
        self.0.ip()
    }

    /// The port, never 0.
    pub fn port(&self) -> u16 {
        self.0.port()
    }
}

impl FromStr for BindAddress {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        let addr = s.parse::<SocketAddr>().map_err(|_| {
            ValueError::new(
                "not a socket address (IP:PORT)",
                "write an IP address and a port, e.g. `0.0.0.0:6969` (all IPv4 interfaces), \
                 `127.0.0.1:1313` (loopback) or `[::]:6969` (IPv6); host names are not accepted",
            )
        })?;
        Self::new(addr.ip(), addr.port()).ok_or_else(|| {
            ValueError::new(
                "port 0 (a dynamic port) is not supported",
                "choose a fixed port from 1 to 65535",
            )
        })
    }
}

impl fmt::Display for BindAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<BindAddress> for SocketAddr {
    fn from(b: BindAddress) -> SocketAddr {
        b.0
    }
}

string_value!(BindAddress, "bind_address", || BindAddress(
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 1)
));

/// A TCP or UDP port, 1-65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port(NonZeroU16);

impl Port {
    pub(super) const VALUE_TYPE: &'static str = "port";

    /// `None` for 0.
    pub const fn new(port: u16) -> Option<Self> {
        match NonZeroU16::new(port) {
            Some(p) => Some(Self(p)),
            None => None,
        }
    }

    pub const fn get(self) -> u16 {
        self.0.get()
    }
}

impl TryFrom<u16> for Port {
    type Error = ValueError;

    fn try_from(port: u16) -> Result<Self, ValueError> {
        Self::new(port).ok_or_else(|| {
            ValueError::new(
                "port 0 is not a usable port",
                "use the port the service listens on, 1-65535 (SSH: default 22; MySQL: \
                 normally 3306)",
            )
        })
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq<u16> for Port {
    fn eq(&self, other: &u16) -> bool {
        self.get() == *other
    }
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.get())
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let port = u16::deserialize(deserializer)?;
        accept(Port::try_from(port), || Port(NonZeroU16::MIN))
    }
}

impl JsonSchema for Port {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Port".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "integer",
            "format": "uint16",
            "minimum": 1,
            "maximum": 65535,
            VALUE_TYPE_KEYWORD: Port::VALUE_TYPE,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Domains
// ---------------------------------------------------------------------------------------------

/// A DNS name a certificate can be issued for: labels of ASCII letters, digits and `-` (not at
/// either end), at least two labels, at most 253 characters, not an IP address. A trailing dot
/// (a fully qualified name) is allowed and kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Domain(String);

impl Domain {
    /// The name without the trailing dot of a fully qualified name: what URLs, SNI and the
    /// proxy's site addresses use.
    pub fn name(&self) -> &str {
        self.0.strip_suffix('.').unwrap_or(&self.0)
    }

    /// Whether the domain can only get a certificate from the TLS proxy's own (internal) CA:
    /// names under `.local` (mDNS), which no public CA certifies.
    pub fn is_local(&self) -> bool {
        self.name().to_ascii_lowercase().ends_with(".local")
    }

    /// Whether both name the same domain (case and a trailing dot do not matter).
    pub fn same_as(&self, other: &Domain) -> bool {
        self.name().eq_ignore_ascii_case(other.name())
    }
}

/// Why `domain` is not a [`Domain`] (also used for the domain part of an e-mail address).
pub(super) fn check_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("must not be empty".into());
    }
    if domain.parse::<IpAddr>().is_ok() {
        return Err("is an IP address; a domain name is needed for a certificate".into());
    }
    let d = domain.strip_suffix('.').unwrap_or(domain);
    if d.len() > 253 {
        return Err("is longer than 253 characters".into());
    }
    let labels: Vec<&str> = d.split('.').collect();
    if labels.len() < 2 {
        return Err("must be a fully qualified domain name such as `tracker.example.com`".into());
    }
    for label in &labels {
        if label.is_empty() {
            return Err("has an empty label (`..` or a leading `.`)".into());
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!(
                "contains {c:?}; labels are ASCII letters, digits and `-` (use punycode for \
                 international names)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with `-`"));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("has an all-numeric top-level label".into());
    }
    Ok(())
}

impl FromStr for Domain {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        check_domain(s).map_err(|e| {
            ValueError::new(
                format!("invalid domain: {e}"),
                "use a fully qualified domain name such as `tracker.example.com`, or remove \
                 `domain`",
            )
        })?;
        Ok(Self(s.to_string()))
    }
}

text_value!(Domain);
string_value!(Domain, "domain", || Domain("stand-in.invalid".into()));

// ---------------------------------------------------------------------------------------------
// User and database names
// ---------------------------------------------------------------------------------------------

/// The user the deployer logs in as over SSH (`ssh_credentials.username`): a Linux user name,
/// 1-32 characters, a letter or `_` then letters, digits, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// `torrust`, the user provisioning creates.
    pub fn torrust() -> Self {
        Self("torrust".into())
    }
}

fn check_username(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 32 {
        return Err(format!("is {} characters long; at most 32", name.len()));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return Err("must start with a letter or `_`".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "contains {c:?}; only letters, digits, `_` and `-` are allowed"
        ));
    }
    Ok(())
}

impl FromStr for Username {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        check_username(s).map_err(|e| {
            ValueError::new(
                format!("invalid SSH username: {e}"),
                "use 1-32 characters: a letter or `_`, then letters, digits, `_` or `-` \
                 (default `torrust`)",
            )
        })?;
        Ok(Self(s.to_string()))
    }
}

text_value!(Username);
string_value!(Username, "username", Username::torrust);

/// A MySQL name the stack passes safely: the mysql image's init writes the database name in
/// backquotes and the user name in single quotes of its SQL, the backup passes the database name
/// to `mysqldump` as an argument, and both are written into the compose file and the tracker's
/// database URL. Letters, digits, `_` and `-`, starting with a letter or `_`, at most `max`
/// bytes (MySQL's limit).
fn check_mysql_name(name: &str, max: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > max {
        return Err(format!("is longer than {max} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "contains {c:?}; only ASCII letters, digits, `_` and `-` are allowed"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return Err("must start with a letter or `_`".into());
    }
    Ok(())
}

/// The name of the tracker's MySQL database: see `check_mysql_name`; at most 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MysqlDatabaseName(String);

impl FromStr for MysqlDatabaseName {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        check_mysql_name(s, 64).map_err(|e| {
            ValueError::new(
                format!("the MySQL database name {e}"),
                "use 1-64 ASCII letters, digits, `_` and `-`, starting with a letter or `_`, \
                 e.g. `torrust_tracker`",
            )
        })?;
        Ok(Self(s.to_string()))
    }
}

text_value!(MysqlDatabaseName);
string_value!(MysqlDatabaseName, "mysql_database_name", || {
    MysqlDatabaseName("stand_in".into())
});

/// The tracker's MySQL account: see `check_mysql_name`; not `root` (in any case), at most 32
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MysqlUser(String);

impl FromStr for MysqlUser {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        if s.eq_ignore_ascii_case("root") {
            return Err(ValueError::new(
                "the tracker must not use the MySQL `root` account",
                "use a dedicated user such as `torrust`; the root password is `root_password` \
                 (generated if absent)",
            ));
        }
        check_mysql_name(s, 32).map_err(|e| {
            ValueError::new(
                format!("the MySQL user name {e}"),
                "use 1-32 ASCII letters, digits, `_` and `-`, starting with a letter or `_`, \
                 e.g. `torrust`",
            )
        })?;
        Ok(Self(s.to_string()))
    }
}

text_value!(MysqlUser);
string_value!(MysqlUser, "mysql_user", || MysqlUser("stand_in".into()));

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn message<T: FromStr<Err = ValueError>>(text: &str) -> String {
        match text.parse::<T>() {
            Ok(_) => panic!("{text:?} was accepted"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn bind_addresses() {
        for ok in [
            "0.0.0.0:6969",
            "127.0.0.1:1313",
            "[::]:6969",
            "[::1]:7070",
            "10.0.0.1:1",
        ] {
            let addr: BindAddress = ok.parse().unwrap();
            assert_eq!(addr.to_string(), ok);
            assert_eq!(addr.socket_addr(), ok.parse::<SocketAddr>().unwrap());
        }
        assert_eq!("[::1]:7070".parse::<BindAddress>().unwrap().port(), 7070);
        for bad in [
            "6969",
            "0.0.0.0",
            "localhost:6969",
            "0.0.0.0:99999",
            "",
            " 0.0.0.0:1",
        ] {
            assert!(message::<BindAddress>(bad).contains("IP:PORT"), "{bad}");
        }
        for zero in ["0.0.0.0:0", "[::]:0"] {
            assert!(message::<BindAddress>(zero).contains("port 0"), "{zero}");
        }
        assert!(BindAddress::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).is_none());
    }

    #[test]
    fn ports() {
        assert_eq!(Port::new(22).map(Port::get), Some(22));
        assert!(Port::new(0).is_none());
        assert!(Port::try_from(0).unwrap_err().message.contains("port 0"));
        assert_eq!(serde_json::to_value(Port::new(3306)).unwrap(), json!(3306));
        assert!(serde_json::from_value::<Port>(json!(0)).is_err());
        assert!(serde_json::from_value::<Port>(json!(65536)).is_err());
        assert_eq!(
            serde_json::from_value::<Port>(json!(65535)).unwrap().get(),
            65535
        );
    }

    #[test]
    fn domains() {
        for ok in [
            "example.com",
            "a.b.example.com",
            "xn--bcher-kva.example",
            "tracker.example.com.",
            "T.Example.COM",
        ] {
            assert_eq!(
                ok.parse::<Domain>().unwrap().as_str(),
                ok,
                "kept as written"
            );
        }
        for bad in [
            "",
            "localhost",
            "1.2.3.4",
            "::1",
            "a..b",
            "-a.com",
            "a-.com",
            "a_b.com",
            "a.123",
            "bad_domain.example.com",
        ] {
            assert!(
                message::<Domain>(bad).starts_with("invalid domain"),
                "{bad}"
            );
        }
        let fqdn: Domain = "tracker.example.com.".parse().unwrap();
        assert_eq!(fqdn.name(), "tracker.example.com");
        assert!(fqdn.same_as(&"Tracker.Example.com".parse().unwrap()));
        assert!(!fqdn.same_as(&"api.example.com".parse().unwrap()));
    }

    #[test]
    fn local_domains() {
        for local in [
            "tracker.local",
            "a.b.local",
            "TRACKER.LOCAL",
            "tracker.local.",
        ] {
            assert!(local.parse::<Domain>().unwrap().is_local(), "{local}");
        }
        for public in [
            "tracker.example.com",
            "local.example.com",
            "tracker.locals",
            "x.nolocal",
        ] {
            assert!(!public.parse::<Domain>().unwrap().is_local(), "{public}");
        }
    }

    #[test]
    fn usernames() {
        for ok in ["torrust", "_x", "a-b_c1", "ubuntu", &"u".repeat(32)] {
            assert_eq!(ok.parse::<Username>().unwrap().as_str(), ok);
        }
        for (bad, why) in [
            ("", "empty"),
            ("1a", "start with a letter"),
            ("-a", "start with a letter"),
            ("a.b", "only letters"),
            (&"u".repeat(33), "32"),
        ] {
            let m = message::<Username>(bad);
            assert!(
                m.starts_with("invalid SSH username") && m.contains(why),
                "{bad}: {m}"
            );
        }
        assert_eq!(Username::torrust().as_str(), "torrust");
    }

    #[test]
    fn mysql_names() {
        for ok in ["torrust_tracker", "_db", "Tracker-2", &"d".repeat(64)] {
            assert_eq!(ok.parse::<MysqlDatabaseName>().unwrap().as_str(), ok);
        }
        assert!(message::<MysqlDatabaseName>("").contains("empty"));
        assert!(message::<MysqlDatabaseName>(&"d".repeat(65)).contains("64"));
        // What MySQL's init or the backup would read as SQL, an option or a path.
        for bad in [
            "tr@ck:er",
            "db`; DROP",
            "a'b",
            "a b",
            " ",
            "-db",
            "2024",
            "a.b",
            "dé",
        ] {
            assert!(
                message::<MysqlDatabaseName>(bad).starts_with("the MySQL database name"),
                "{bad}"
            );
        }
        for ok in ["torrust", "tracker_user", "rooty", &"u".repeat(32)] {
            assert_eq!(ok.parse::<MysqlUser>().unwrap().as_str(), ok);
        }
        for bad in ["u'@'%", "a\\b", "-u", "x$y"] {
            assert!(
                message::<MysqlUser>(bad).contains("only ASCII letters")
                    || message::<MysqlUser>(bad).contains("start"),
                "{bad}"
            );
        }
        assert!(message::<MysqlUser>("").contains("empty"));
        assert!(message::<MysqlUser>("root").contains("`root`"));
        assert!(message::<MysqlUser>("Root").contains("`root`"));
        assert!(message::<MysqlUser>(&"u".repeat(33)).contains("32"));
    }

    #[test]
    fn values_round_trip_as_the_same_json() {
        fn round_trip<T: Serialize + for<'de> Deserialize<'de> + fmt::Debug + PartialEq>(
            v: serde_json::Value,
        ) {
            let parsed: T = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(serde_json::to_value(&parsed).unwrap(), v);
        }
        round_trip::<BindAddress>(json!("0.0.0.0:6969"));
        round_trip::<BindAddress>(json!("[::1]:7070"));
        round_trip::<Domain>(json!("Tracker.Example.com."));
        round_trip::<Username>(json!("_deploy-1"));
        round_trip::<MysqlDatabaseName>(json!("torrust_tracker"));
        round_trip::<MysqlUser>(json!("tracker_user"));
        round_trip::<Port>(json!(22));
        round_trip::<Option<Domain>>(json!(null));
    }

    #[test]
    fn strict_deserialization_rejects_with_the_types_message() {
        let e = serde_json::from_value::<BindAddress>(json!("0.0.0.0:0")).unwrap_err();
        assert!(e.to_string().contains("port 0"), "{e}");
        let e = serde_json::from_str::<Domain>("\"a_b.example.com\"").unwrap_err();
        assert!(e.to_string().contains("invalid domain"), "{e}");
    }

    #[test]
    fn lenient_deserialization_uses_stand_ins_and_says_why() {
        let (parsed, used) = leniently(|| {
            serde_json::from_value::<(BindAddress, Domain, Username, Port)>(json!([
                "nope", "x", "1user", 0
            ]))
        });
        let (addr, domain, user, port) = parsed.unwrap();
        assert_ne!(addr.port(), 0);
        assert!(check_domain(domain.as_str()).is_ok());
        assert!(check_username(user.as_str()).is_ok());
        assert_ne!(port.get(), 0);
        assert_eq!(used.len(), 4, "{used:?}");
        assert!(used[0].message.contains("IP:PORT"));
        // Outside, strict again.
        assert!(serde_json::from_value::<BindAddress>(json!("nope")).is_err());
        let (ok, used) = leniently(|| serde_json::from_value::<BindAddress>(json!("[::]:1")));
        assert!(ok.is_ok() && used.is_empty());
    }

    #[test]
    fn check_follows_the_value_type_and_leaves_json_types_to_the_walk() {
        let e = check("bind_address", &json!("0.0.0.0:0")).unwrap_err();
        assert!(e.message.contains("port 0") && !e.fix.is_empty());
        assert!(
            check("bind_address", &json!(7070)).is_ok(),
            "a type error, not ours"
        );
        assert!(check("port", &json!(0)).is_err());
        assert!(
            check("port", &json!(70000)).is_ok(),
            "a range error, not ours"
        );
        assert!(check("domain", &json!("tracker.local")).is_ok());
        assert!(check("mysql_user", &json!("ROOT")).is_err());
        assert!(check("mysql_database_name", &json!("")).is_err());
        assert!(check("username", &json!("first.last")).is_err());
    }

    #[test]
    fn every_value_type_of_the_walk_schema_is_checked() {
        fn collect<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(t) = m.get(VALUE_TYPE_KEYWORD).and_then(|t| t.as_str()) {
                        out.push(t);
                    }
                    m.values().for_each(|c| collect(c, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|c| collect(c, out)),
                _ => {}
            }
        }
        let schema = super::super::schema::for_walk();
        let mut types = Vec::new();
        collect(&schema, &mut types);
        types.sort_unstable();
        types.dedup();
        assert_eq!(
            types,
            [
                "bind_address",
                "domain",
                "mysql_database_name",
                "mysql_user",
                "port",
                "username"
            ]
        );
        for t in types {
            // No panic, and a string that is none of them is rejected by each string type.
            let _ = check(t, &json!(0));
            assert!(t == "port" || check(t, &json!("")).is_err(), "{t}");
        }
        let published = super::super::schema::published().to_string();
        assert!(!published.contains(VALUE_TYPE_KEYWORD));
    }

    #[test]
    fn schemas_say_string_or_integer_and_name_the_type() {
        let mut generator = SchemaGenerator::default();
        let s = serde_json::to_value(BindAddress::json_schema(&mut generator)).unwrap();
        assert_eq!(
            s,
            json!({ "type": "string", VALUE_TYPE_KEYWORD: "bind_address" })
        );
        let s = serde_json::to_value(Port::json_schema(&mut generator)).unwrap();
        assert_eq!(s["type"], "integer");
        assert_eq!(s["minimum"], 1);
        assert_eq!(s[VALUE_TYPE_KEYWORD], "port");
    }
}
