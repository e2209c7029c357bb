//! The CA's certificate as files, for a proxy that reads them (Envoy, through `waypoint xds`'s
//! SDS): written atomically on issue and on every renewal, the key readable by us only.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tokio::task::JoinHandle;
use tracing::info;

use crate::chain::PemSet;
use crate::client::{CaClient, CaOptions};
use crate::error::CaError;
use crate::rotate::{keep_fresh, Backoff};

/// The names written in the directory: Istio's own (`istio-agent` writes these for
/// `OUTPUT_CERTS`: `cert-chain.pem`, `key.pem`, `root-cert.pem`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNames {
    pub chain: String,
    pub key: String,
    pub roots: String,
}

impl Default for FileNames {
    fn default() -> Self {
        FileNames {
            chain: "cert-chain.pem".into(),
            key: "key.pem".into(),
            roots: "root-cert.pem".into(),
        }
    }
}

/// Write the three files into `dir` (created if missing). Each is written to a temporary name
/// and renamed over the old one, so a reader sees the old file or the new one, never half. The
/// chain goes last: a poller that catches the new key with the old chain sees the chain change
/// on its next look and reloads a matching pair.
pub fn write_pem_dir(dir: &Path, names: &FileNames, pem: &PemSet) -> Result<(), CaError> {
    std::fs::create_dir_all(dir).map_err(|e| install(dir, e))?;
    write_atomic(&dir.join(&names.key), pem.key.as_bytes(), true)?;
    write_atomic(&dir.join(&names.roots), pem.roots.as_bytes(), false)?;
    write_atomic(&dir.join(&names.chain), pem.chain.as_bytes(), false)?;
    Ok(())
}

fn install(path: &Path, e: std::io::Error) -> CaError {
    CaError::Install(format!("{}: {e}", path.display()))
}

fn write_atomic(path: &Path, bytes: &[u8], secret: bool) -> Result<(), CaError> {
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string().push(".tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = options.open(&tmp).map_err(|e| install(&tmp, e))?;
    f.write_all(bytes).map_err(|e| install(&tmp, e))?;
    if !bytes.ends_with(b"\n") {
        f.write_all(b"\n").map_err(|e| install(&tmp, e))?;
    }
    f.sync_all().map_err(|e| install(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| install(path, e))
}

/// Obtain the first certificate, write it into `dir`, and start renewing it there at
/// half-life (abort the task to stop). Returns once the files exist.
pub async fn start_to_dir(
    opts: CaOptions,
    dir: PathBuf,
    names: FileNames,
) -> Result<JoinHandle<()>, CaError> {
    let client = CaClient::new(opts);
    info!(address = %client.options().address, identity = %client.options().identity, dir = %dir.display(), "requesting the first certificate from the CA");
    let issued = crate::first_certificate(&client).await?;
    write_pem_dir(&dir, &names, &issued.pem)?;
    info!(dir = %dir.display(), "certificate from the CA written");
    Ok(tokio::spawn(keep_fresh(
        move || {
            let client = client.clone();
            async move { client.issue().await.map(|i| (i.pem, i.validity)) }
        },
        move |pem| write_pem_dir(&dir, &names, &pem),
        issued.validity,
        Backoff::default(),
        SystemTime::now,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(n: u8) -> PemSet {
        PemSet {
            chain: format!("chain {n}"),
            key: format!("key {n}\n"),
            roots: format!("roots {n}"),
        }
    }

    #[test]
    fn writes_and_replaces_the_three_files() {
        let dir = std::env::temp_dir().join(format!("wp-ca-pemdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let names = FileNames::default();
        write_pem_dir(&dir.join("sub"), &names, &pem(1)).expect("first");
        let read = |f: &str| std::fs::read_to_string(dir.join("sub").join(f)).expect(f);
        assert_eq!(read("cert-chain.pem"), "chain 1\n");
        assert_eq!(read("key.pem"), "key 1\n");
        assert_eq!(read("root-cert.pem"), "roots 1\n");
        write_pem_dir(&dir.join("sub"), &names, &pem(2)).expect("second");
        assert_eq!(read("cert-chain.pem"), "chain 2\n");
        assert_eq!(read("key.pem"), "key 2\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("sub/key.pem"))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
        }
        // No temporary file left behind.
        let left: Vec<_> = std::fs::read_dir(dir.join("sub"))
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unwritable_directory_names_the_path() {
        let file = std::env::temp_dir().join(format!("wp-ca-notadir-{}", std::process::id()));
        std::fs::write(&file, "x").expect("file");
        let err = write_pem_dir(&file.join("certs"), &FileNames::default(), &pem(1))
            .expect_err("not a directory");
        assert!(err.to_string().contains("wp-ca-notadir"), "{err}");
        let _ = std::fs::remove_file(&file);
    }
}
