//! A private OpenSSH server for the SSH-layer tests: its own config, host key, authorized_keys and
//! loopback port in a temporary directory; stopped on drop by the PID in its PidFile. Also key
//! generation and a private ssh-agent. Used only by tests/ssh_engine.rs.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const SSHD: &str = "/usr/sbin/sshd";
pub const INSTALL_SCRIPT: &str = "provisioning/ci/install-sshd-test-deps.sh";
/// The non-root user the install script creates (passwordless sudo).
pub const TEST_USER: &str = "torrust-ssh-test";

fn require(path: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: the SSH tests need OpenSSH. Run `sudo bash {INSTALL_SCRIPT}` \
         (CI runs it through provisioning/test.sh)."
    );
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free loopback TCP port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Generates a key pair with ssh-keygen. `kind`: "ed25519", "ecdsa", "rsa". Returns the private
/// key path (the public key is beside it, `.pub`).
pub fn keygen(dir: &Path, name: &str, kind: &str, passphrase: &str) -> PathBuf {
    require("/usr/bin/ssh-keygen");
    let path = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", passphrase, "-C", name, "-f"])
        .arg(&path);
    match kind {
        "rsa" => {
            cmd.args(["-b", "2048"]);
        }
        "ecdsa" => {
            cmd.args(["-b", "256"]);
        }
        _ => {}
    }
    run(&mut cmd);
    path
}

/// The `.pub` line of a generated key.
pub fn public_line(private_key: &Path) -> String {
    let mut p = private_key.as_os_str().to_owned();
    p.push(".pub");
    std::fs::read_to_string(PathBuf::from(p))
        .unwrap()
        .trim()
        .to_string()
}

/// `SHA256:...` of a key file, as ssh-keygen prints it.
pub fn keygen_fingerprint(key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    s.split_whitespace().nth(1).unwrap_or_default().to_string()
}

fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie (state Z) is gone for our purposes.
        Ok(stat) => {
            stat.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                != Some("Z")
        }
        Err(_) => false,
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running sshd.
pub struct Sshd {
    pub dir: TempDir,
    pub port: u16,
    pub host_key: PathBuf,
    /// Lines appended to the generated sshd_config (set before [`launch`](Self::launch)).
    pub extra_config: String,
    pid: Option<u32>,
    generation: u32,
}

impl Sshd {
    /// Starts sshd on a free loopback port with a fresh ed25519 host key.
    pub fn start() -> Sshd {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Sshd {
        let mut s = Self::prepare(port);
        s.launch();
        s
    }

    /// Everything but starting: call [`launch`](Self::launch) after [`authorize`](Self::authorize).
    pub fn prepare(port: u16) -> Sshd {
        require(SSHD);
        let dir = tempfile::Builder::new()
            .prefix("sshd-test-")
            .tempdir()
            .unwrap();
        // The non-root user must reach its authorized_keys file in here.
        set_mode(dir.path(), 0o755);
        let mut s = Sshd {
            host_key: PathBuf::new(),
            extra_config: String::new(),
            dir,
            port,
            pid: None,
            generation: 0,
        };
        s.new_host_key();
        s
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh ed25519 host key (takes effect at the next start).
    fn new_host_key(&mut self) {
        self.generation += 1;
        let name = format!("host_key_{}", self.generation);
        self.host_key = keygen(self.dir.path(), &name, "ed25519", "");
    }

    /// The fingerprint of the current host key.
    pub fn host_fingerprint(&self) -> String {
        keygen_fingerprint(&self.host_key)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("sshd_config")
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("sshd.pid")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("sshd.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts sshd and waits until it listens.
    pub fn launch(&mut self) {
        let d = self.dir.path();
        let config = format!(
            "Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {host_key}\n\
             PidFile {pid}\n\
             AuthorizedKeysFile {d}/authorized_keys_%u\n\
             UsePAM no\n\
             StrictModes no\n\
             PermitRootLogin prohibit-password\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\n\
             MaxSessions 64\n\
             MaxStartups 64\n\
             LogLevel VERBOSE\n",
            port = self.port,
            host_key = self.host_key.display(),
            pid = self.pid_file().display(),
            d = d.display(),
        );
        let config = format!("{config}{}", self.extra_config);
        std::fs::write(self.config_path(), config).unwrap();
        let _ = std::fs::remove_file(self.pid_file());
        std::fs::create_dir_all("/run/sshd").ok();
        run(Command::new(SSHD)
            .arg("-f")
            .arg(self.config_path())
            .arg("-E")
            .arg(self.log_path())
            .stdin(Stdio::null()));
        let pid_file = self.pid_file();
        wait_until("sshd's PidFile", Duration::from_secs(10), || {
            std::fs::read_to_string(&pid_file).is_ok_and(|s| s.trim().parse::<u32>().is_ok())
        });
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        self.pid = Some(pid);
        let port = self.port;
        wait_until("sshd to listen", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Stops sshd (SIGTERM to the PID from its PidFile) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
            wait_until("sshd to exit", Duration::from_secs(10), || !pid_alive(pid));
        }
    }

    /// Restarts on the same port with a NEW host key.
    pub fn restart_with_new_host_key(&mut self) {
        self.stop();
        self.new_host_key();
        self.launch();
    }

    /// Lets `user` in with the key whose private half is `private_key`.
    pub fn authorize(&self, user: &str, private_key: &Path) {
        use std::io::Write;
        let path = self.dir.path().join(format!("authorized_keys_{user}"));
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        writeln!(f, "{}", public_line(private_key)).unwrap();
        set_mode(&path, 0o644);
    }

    /// How many logins sshd accepted so far.
    pub fn accepted_logins(&self) -> usize {
        self.log().matches("Accepted publickey").count()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Whether the non-root test user exists; panics naming the install script when not.
pub fn require_test_user() {
    let ok = Command::new("id")
        .arg("-u")
        .arg(TEST_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the test user {TEST_USER} is missing. Run `sudo bash {INSTALL_SCRIPT}` (it creates the \
         user with passwordless sudo; CI runs it through provisioning/test.sh)."
    );
}

/// A private ssh-agent (`ssh-agent -D -a SOCK`), killed by its PID on drop.
pub struct Agent {
    pub dir: TempDir,
    pub socket: PathBuf,
    child: Child,
}

impl Agent {
    pub fn start() -> Agent {
        require("/usr/bin/ssh-agent");
        let dir = tempfile::Builder::new()
            .prefix("agent-test-")
            .tempdir()
            .unwrap();
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ssh-agent");
        let s = socket.clone();
        wait_until("ssh-agent's socket", Duration::from_secs(10), || s.exists());
        Agent { dir, socket, child }
    }

    /// `ssh-add KEY`, answering the passphrase prompt through SSH_ASKPASS.
    pub fn add(&self, key: &Path, passphrase: &str) {
        let askpass = self.dir.path().join("askpass.sh");
        std::fs::write(
            &askpass,
            format!("#!/bin/sh\nprintf '%s\\n' '{passphrase}'\n"),
        )
        .unwrap();
        set_mode(&askpass, 0o700);
        run(Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(Stdio::null()));
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
