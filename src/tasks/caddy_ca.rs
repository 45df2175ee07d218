//! Reading the root certificate of Caddy's internal CA from the host, for `test` to trust the
//! `.local` domains Caddy signs itself. A read-only task: its facts are its result.
//!
//! Caddy writes the root when it first starts, so a missing (or not yet complete) file is read
//! again every `interval` until `wait` has passed.

use std::time::{Duration, Instant};

use crate::host::Host;

use super::TaskError;

pub const TASK: &str = "read Caddy's root CA";

const PEM_START: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// The PEM root certificate at `path` on the host.
pub async fn read_root_ca(
    host: &dyn Host,
    path: &str,
    wait: Duration,
    interval: Duration,
) -> Result<Vec<u8>, TaskError> {
    let started = Instant::now();
    loop {
        let found = host.download(path).await?;
        match found {
            Some(pem) if pem.starts_with(PEM_START) => return Ok(pem),
            _ if started.elapsed() < wait => tokio::time::sleep(interval).await,
            found => {
                let what = if found.is_some() {
                    "is not a PEM certificate"
                } else {
                    "is missing"
                };
                return Err(TaskError::failed(
                    TASK,
                    format!("{path} {what} after {} s", wait.as_secs()),
                    "is Caddy running? (`torrust-tracker-deployer status ENV`)",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{Call, FakeHost};

    const PATH: &str = "/opt/torrust/storage/caddy/data/caddy/pki/authorities/local/root.crt";

    #[tokio::test]
    async fn reads_the_certificate() {
        let host = FakeHost::new();
        host.put_file(PATH, "-----BEGIN CERTIFICATE-----\nMII\n", 0o600);
        let pem = read_root_ca(&host, PATH, Duration::ZERO, Duration::ZERO)
            .await
            .unwrap();
        assert!(pem.starts_with(PEM_START));
        assert_eq!(host.calls(), vec![Call::Download(PATH.into())]);
    }

    #[tokio::test]
    async fn a_missing_or_foreign_file_fails_with_the_path() {
        let host = FakeHost::new();
        let err = read_root_ca(&host, PATH, Duration::ZERO, Duration::ZERO)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("{PATH} is missing")), "{err}");
        host.put_file(PATH, "garbage", 0o600);
        let err = read_root_ca(&host, PATH, Duration::ZERO, Duration::ZERO)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a PEM certificate"), "{err}");
    }
}
