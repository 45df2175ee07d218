//! Images: every image the compose file uses is present on the host, loaded from the offline
//! bundle when there is one (only the archives holding an image the host lacks), else pulled.
//!
//! - facts: [`read`], one round trip: the image ID the host has for each reference;
//! - plan: [`plan`], pure: the archives to stream into `docker load`, or the images to pull;
//! - apply: [`apply`], one `docker load` per archive (streamed from disk) or `docker pull`;
//! - verify: [`verify`] reads the IDs again: every image must be there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::host::Host;
use crate::ssh::{Stdin, shell_quote};

use super::bundle::BundleArchive;
use super::{Plan, TaskError};

/// The task's name in reports.
pub const TASK: &str = "images";

/// What to do to get the images.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImageAction {
    /// Archives of the offline bundle to stream into `docker load`.
    pub load: Vec<PathBuf>,
    /// Images to `docker pull`.
    pub pull: Vec<String>,
}

/// The facts script: `REF ID` per reference (`missing` for one the host lacks).
///
/// One `docker image inspect` for all of them (each Docker command costs about 40 ms), whose
/// answers are matched to the references by tag, and whose "No such image" lines name the
/// missing ones. A reference neither matched nor named (written differently, e.g.
/// `docker.io/library/mysql:8.4`, or by digest; or another Docker's wording) is asked alone.
pub fn facts_script(refs: &BTreeSet<String>) -> String {
    if refs.is_empty() {
        return String::new();
    }
    let quoted: Vec<String> = refs.iter().map(|r| shell_quote(r)).collect();
    let mut script = format!(
        "err=$(mktemp)\n\
         all=$(docker image inspect --format '{{{{range .RepoTags}}}}{{{{.}}}} {{{{end}}}}{{{{.Id}}}}' {} 2>\"$err\")\n\
         missing=$(cat \"$err\"); rm -f \"$err\"\n",
        quoted.join(" ")
    );
    for q in &quoted {
        script.push_str(&format!(
            "i=$(printf '%s\\n' \"$all\" | awk -v r={q} '{{ for (k = 1; k < NF; k++) if ($k == r) {{ print $NF; exit }} }}')\n\
             if [ -z \"$i\" ]; then\n\
               if printf '%s\\n' \"$missing\" | grep -qF \"No such image: \"{q}; then i=missing\n\
               else i=$(docker image inspect --format '{{{{.Id}}}}' {q} 2>/dev/null) || i=missing; fi\n\
             fi\n\
             printf '%s %s\\n' {q} \"$i\"\n"
        ));
    }
    script
}

/// The image IDs the host has for `refs` (missing ones absent).
pub async fn read(
    host: &dyn Host,
    refs: &BTreeSet<String>,
) -> Result<BTreeMap<String, String>, TaskError> {
    if refs.is_empty() {
        return Ok(BTreeMap::new());
    }
    let out = host.sudo(&facts_script(refs)).await?.check()?;
    Ok(out
        .stdout_str()
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(_, id)| id.starts_with("sha256:"))
        .map(|(r, id)| (r.to_string(), id.to_string()))
        .collect())
}

/// Every reference whose ID matters: the stack's images and those the bundle holds.
pub fn refs_to_read(
    wanted: &BTreeSet<String>,
    bundle: Option<&[BundleArchive]>,
) -> BTreeSet<String> {
    bundle
        .into_iter()
        .flatten()
        .flat_map(|a| a.images.keys().cloned())
        .chain(wanted.iter().cloned())
        .collect()
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// With a bundle: the archives holding an image the stack uses that the host lacks or has with
/// another ID. Without: the images the host lacks, to pull.
pub fn plan(
    wanted: &BTreeSet<String>,
    bundle: Option<&[BundleArchive]>,
    have: &BTreeMap<String, String>,
) -> Plan<ImageAction> {
    let mut action = ImageAction::default();
    match bundle {
        Some(archives) => {
            action.load = archives
                .iter()
                .filter(|a| {
                    a.images
                        .iter()
                        .any(|(tag, id)| wanted.contains(tag) && have.get(tag) != Some(id))
                })
                .map(|a| a.path.clone())
                .collect();
        }
        None => {
            action.pull = wanted
                .iter()
                .filter(|i| !have.contains_key(*i))
                .cloned()
                .collect();
        }
    }
    if action.load.is_empty() && action.pull.is_empty() {
        return Plan::Nothing(format!("all {} images present", wanted.len()));
    }
    let mut parts = Vec::new();
    if !action.load.is_empty() {
        let names: Vec<String> = action.load.iter().map(|p| file_name(p)).collect();
        parts.push(format!("load {} from the offline bundle", names.join(", ")));
    }
    if !action.pull.is_empty() {
        parts.push(format!("pull {}", action.pull.join(", ")));
    }
    let text = parts.join("; ");
    Plan::Apply(action, text)
}

/// Loads or pulls. Returns one note per image source, e.g. `loaded a.tar (3.1 s)`.
pub async fn apply(host: &dyn Host, action: &ImageAction) -> Result<Vec<String>, TaskError> {
    let mut notes = Vec::new();
    for path in &action.load {
        let t = Instant::now();
        let file = tokio::fs::File::open(path).await.map_err(|e| {
            TaskError::bundle(
                TASK,
                format!("cannot open {}: {e}", path.display()),
                "check `images.offline_bundle` in the environment file and the archive's permissions",
            )
        })?;
        let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        crate::events::note(format!(
            "uploading {} ({:.1} MB) into `docker load`",
            file_name(path),
            size as f64 / 1e6
        ));
        let out = host
            .sudo_stdin("docker load", Stdin::Reader(Box::new(file)), Some(size))
            .await?;
        if !out.success() {
            return Err(TaskError::bundle(
                TASK,
                format!(
                    "`docker load` of {} failed: {}",
                    path.display(),
                    out.stderr_str().trim()
                ),
                "check the archive (`docker load -i` it on another machine) or rebuild the bundle",
            ));
        }
        notes.push(format!(
            "loaded {} ({:.1} s)",
            file_name(path),
            t.elapsed().as_secs_f64()
        ));
    }
    for image in &action.pull {
        let out = host
            .sudo(&format!("docker pull -q {}", shell_quote(image)))
            .await?;
        if !out.success() {
            return Err(TaskError::image_missing(
                TASK,
                format!("cannot pull {image}: {}", out.stderr_str().trim()),
                "the host needs access to the registry; on an air-gapped host, set \
                 `images.offline_bundle` to a directory of `docker save` archives",
            ));
        }
        notes.push(format!("pulled {image}"));
    }
    Ok(notes)
}

/// Points each reference at its image ID (`docker tag ID REF`), for a rollback to images whose
/// tags a later release moved. The images must still be on the host.
pub async fn tag(host: &dyn Host, pairs: &[(String, String)]) -> Result<(), TaskError> {
    for (reference, id) in pairs {
        let out = host
            .sudo(&format!(
                "docker tag {} {}",
                shell_quote(id),
                shell_quote(reference)
            ))
            .await?;
        if !out.success() {
            return Err(TaskError::image_missing(
                TASK,
                format!(
                    "cannot point {reference} back at image {id}: {}",
                    out.stderr_str().trim()
                ),
                "the image is no longer on the host (removed, or pruned): load or pull it again, \
                 then run the command again",
            ));
        }
    }
    Ok(())
}

/// Checks the facts: the host must have every image the stack uses.
pub fn check(
    wanted: &BTreeSet<String>,
    have: &BTreeMap<String, String>,
    bundle_dir: Option<&Path>,
) -> Result<(), TaskError> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|i| !have.contains_key(*i))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(TaskError::ImageMissing {
        task: TASK.into(),
        message: format!(
            "the host lacks {} image(s) the compose file uses: {}",
            missing.len(),
            missing.join(", ")
        ),
        fix: format!(
            "add their `docker save` archives to the offline bundle ({}), or set `images.*` to \
             tags the bundle holds",
            bundle_dir
                .map(|b| b.display().to_string())
                .unwrap_or_else(|| "none configured".into())
        ),
    })
}

/// Reads the IDs again and [`check`]s them.
pub async fn verify(
    host: &dyn Host,
    wanted: &BTreeSet<String>,
    bundle_dir: Option<&Path>,
) -> Result<(), TaskError> {
    let have = read(host, wanted).await?;
    check(wanted, &have, bundle_dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{Call, FakeHost, Reply};

    fn id(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plans_the_archives_whose_images_the_host_lacks() {
        let wanted = set(&["tracker:1", "mysql:8"]);
        let archives = vec![
            BundleArchive {
                path: "/b/tracker.tar".into(),
                images: [("tracker:1".to_string(), id('a'))].into(),
            },
            BundleArchive {
                path: "/b/mysql.tar.gz".into(),
                images: [("mysql:8".to_string(), id('b'))].into(),
            },
            BundleArchive {
                path: "/b/unused.tar".into(),
                images: [("other:1".to_string(), id('c'))].into(),
            },
        ];
        // The host has the tracker with the bundle's ID, and MySQL with another one.
        let have = [
            ("tracker:1".to_string(), id('a')),
            ("mysql:8".to_string(), id('f')),
        ]
        .into();
        let Plan::Apply(action, text) = plan(&wanted, Some(&archives), &have) else {
            panic!("nothing planned")
        };
        assert_eq!(action.load, vec![PathBuf::from("/b/mysql.tar.gz")]);
        assert!(action.pull.is_empty());
        assert_eq!(text, "load mysql.tar.gz from the offline bundle");
        let have = [
            ("tracker:1".to_string(), id('a')),
            ("mysql:8".to_string(), id('b')),
        ]
        .into();
        assert!(!plan(&wanted, Some(&archives), &have).is_apply());
        assert_eq!(
            refs_to_read(&wanted, Some(&archives)),
            set(&["mysql:8", "other:1", "tracker:1"])
        );
    }

    #[test]
    fn without_a_bundle_it_pulls_what_is_missing() {
        let wanted = set(&["a:1", "b:2"]);
        let have = [("a:1".to_string(), id('a'))].into();
        let Plan::Apply(action, text) = plan(&wanted, None, &have) else {
            panic!("nothing planned")
        };
        assert_eq!(action.pull, vec!["b:2"]);
        assert_eq!(text, "pull b:2");
    }

    #[tokio::test]
    async fn apply_streams_each_archive_into_docker_load() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("one.tar");
        std::fs::write(&archive, b"tar bytes").unwrap();
        let host = FakeHost::new();
        host.reply("docker load", [Reply::ok("Loaded image: a:1\n")]);
        host.reply("docker pull", [Reply::fail(1, "no route to registry")]);
        let action = ImageAction {
            load: vec![archive],
            pull: Vec::new(),
        };
        let notes = apply(&host, &action).await.unwrap();
        assert!(notes[0].starts_with("loaded one.tar"), "{notes:?}");
        assert_eq!(
            host.calls(),
            vec![Call::SudoStdin("docker load".into(), b"tar bytes".to_vec())]
        );
        let pull = ImageAction {
            load: Vec::new(),
            pull: vec!["b:2".into()],
        };
        let err = apply(&host, &pull).await.unwrap_err().to_string();
        assert!(
            err.contains("cannot pull b:2: no route to registry"),
            "{err}"
        );
        assert!(err.contains("offline_bundle"), "{err}");
    }

    /// The facts script in a real shell, against a stand-in `docker` that knows two images:
    /// `a:1` (also tagged `a:latest`) and `b:2`, each answerable only by its exact tag.
    #[test]
    fn the_facts_script_matches_ids_to_references_in_a_real_shell() {
        let dir = tempfile::tempdir().unwrap();
        let docker = dir.path().join("docker");
        std::fs::write(
            &docker,
            format!(
                "#!/bin/sh\n\
                 echo \"$*\" >> \"$0.calls\"\n\
                 shift 3\n\
                 rc=0\n\
                 for r in \"$@\"; do case $r in\n\
                   a:1) echo 'a:1 a:latest {a}' ;;\n\
                   b:2) echo 'b:2 {b}' ;;\n\
                   c:3) echo \"Error: No such image: $r\" >&2; rc=1 ;;\n\
                   *) echo \"unknown: $r\" >&2; rc=1 ;;\n\
                 esac; done\n\
                 exit $rc\n",
                a = id('a'),
                b = id('b')
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(facts_script(&set(&["a:1", "b:2", "c:3", "d:4"])))
            .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!(
                "a:1 {}\nb:2 {}\nc:3 missing\nd:4 missing\n",
                id('a'),
                id('b')
            )
        );
        // One call for all, and one for the reference neither matched nor named missing.
        let calls = std::fs::read_to_string(dir.path().join("docker.calls")).unwrap();
        assert_eq!(calls.lines().count(), 2, "{calls}");
        assert!(calls.lines().nth(1).unwrap().ends_with(" d:4"), "{calls}");
    }

    #[tokio::test]
    async fn verify_names_the_missing_images() {
        let host = FakeHost::new();
        host.reply(
            "docker image inspect",
            [Reply::ok(format!("a:1 {}\nb:2 missing\n", id('a')))],
        );
        let err = verify(&host, &set(&["a:1", "b:2"]), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lacks 1 image(s) the compose file uses: b:2"),
            "{err}"
        );
    }
}
