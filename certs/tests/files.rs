//! Provided-files mode with the kubelet's atomic-writer layout, and dev mode.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::{
    os::unix::fs::{PermissionsExt, symlink},
    path::Path,
    time::Duration,
};

use common::{ClientOpts, connect, eventually, serve};
use nats_operator_certs::{
    CertificateAuthority, DevCertsOutcome, Error, FileCerts, ReloadOutcome, ServingCert,
    ensure_dev_certs,
};
use tokio::sync::oneshot;

fn sans() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}

/// Writes a Secret volume the way the kubelet's AtomicWriter does: a timestamped directory,
/// `..data` pointing at it, and per-key symlinks through `..data`. Re-running it swaps `..data`
/// atomically (symlink to a temporary name, then rename over).
fn atomic_write(dir: &Path, generation: u32, files: &[(&str, &str)]) {
    let ts = format!("..2026_01_01_00_00_{generation:02}.000000001");
    let ts_dir = dir.join(&ts);
    std::fs::create_dir(&ts_dir).unwrap();
    for (name, content) in files {
        std::fs::write(ts_dir.join(name), content).unwrap();
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(&ts, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for (name, _) in files {
        let link = dir.join(name);
        if link.symlink_metadata().is_err() {
            symlink(Path::new("..data").join(name), &link).unwrap();
        }
    }
}

fn pair(ca: &CertificateAuthority) -> ServingCert {
    ca.issue_serving(&sans(), Duration::from_secs(600)).unwrap()
}

#[tokio::test]
async fn reloads_after_data_symlink_swap_and_ignores_mismatched_pair() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = CertificateAuthority::generate("cm-ca", Duration::from_secs(3600)).unwrap();
    let roots = ca.cert_pem().as_bytes().to_vec();
    let (p1, p2, p3) = (pair(&ca), pair(&ca), pair(&ca));
    atomic_write(
        dir,
        1,
        &[
            ("tls.crt", p1.cert_pem()),
            ("tls.key", p1.key_pem()),
            ("ca.crt", ca.cert_pem()),
        ],
    );

    let files = FileCerts::load(dir)
        .unwrap()
        .with_poll_interval(Duration::from_millis(100));
    assert_eq!(files.current().unwrap().serial_hex, p1.info().serial_hex);
    assert_eq!(*files.ca_bundle().borrow(), roots);
    let server = serve(files.resolver()).await;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(files.run(async {
        let _ = stopped.await;
    }));
    let serial = || async {
        connect(server.addr, ClientOpts::new(&roots, "localhost"))
            .await
            .unwrap()
            .serial()
    };
    assert_eq!(serial().await, p1.info().serial_hex);

    // Swap to a consistent new pair: served within a bounded poll time.
    atomic_write(
        dir,
        2,
        &[
            ("tls.crt", p2.cert_pem()),
            ("tls.key", p2.key_pem()),
            ("ca.crt", ca.cert_pem()),
        ],
    );
    eventually(Duration::from_secs(3), "the new pair", || async {
        (serial().await == p2.info().serial_hex).then_some(())
    })
    .await;

    // A mismatched pair (cert of p3, key of p1) is never served.
    atomic_write(
        dir,
        3,
        &[
            ("tls.crt", p3.cert_pem()),
            ("tls.key", p1.key_pem()),
            ("ca.crt", ca.cert_pem()),
        ],
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(serial().await, p2.info().serial_hex);

    // Once consistent again, it is picked up.
    atomic_write(
        dir,
        4,
        &[
            ("tls.crt", p3.cert_pem()),
            ("tls.key", p3.key_pem()),
            ("ca.crt", ca.cert_pem()),
        ],
    );
    eventually(Duration::from_secs(3), "the repaired pair", || async {
        (serial().await == p3.info().serial_hex).then_some(())
    })
    .await;
    let _ = stop.send(());
    task.await.unwrap();
}

#[test]
fn reload_outcomes_and_bad_initial_pair() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = CertificateAuthority::generate("ca", Duration::from_secs(3600)).unwrap();
    let (p1, p2) = (pair(&ca), pair(&ca));

    // Mismatched initial pair: load fails.
    atomic_write(
        dir,
        1,
        &[("tls.crt", p1.cert_pem()), ("tls.key", p2.key_pem())],
    );
    assert!(FileCerts::load(dir).is_err());

    atomic_write(
        dir,
        2,
        &[("tls.crt", p1.cert_pem()), ("tls.key", p1.key_pem())],
    );
    let mut files = FileCerts::load(dir).unwrap();
    assert_eq!(files.reload().unwrap(), ReloadOutcome::Unchanged);
    // No ca.crt in the directory: empty bundle.
    assert!(files.ca_bundle().borrow().is_empty());

    atomic_write(
        dir,
        3,
        &[("tls.crt", p2.cert_pem()), ("tls.key", p1.key_pem())],
    );
    assert!(matches!(
        files.reload().unwrap(),
        ReloadOutcome::Rejected(_)
    ));
    // The rejected pair is remembered: no repeated warnings.
    assert_eq!(files.reload().unwrap(), ReloadOutcome::Unchanged);
    assert_eq!(files.current().unwrap().serial_hex, p1.info().serial_hex);

    // A half-written certificate file is rejected too.
    atomic_write(
        dir,
        4,
        &[
            ("tls.crt", &p2.cert_pem()[..p2.cert_pem().len() / 2]),
            ("tls.key", p2.key_pem()),
        ],
    );
    assert!(matches!(
        files.reload().unwrap(),
        ReloadOutcome::Rejected(_)
    ));
    atomic_write(
        dir,
        5,
        &[("tls.crt", p2.cert_pem()), ("tls.key", p2.key_pem())],
    );
    assert_eq!(files.reload().unwrap(), ReloadOutcome::Reloaded);
    assert_eq!(files.current().unwrap().serial_hex, p2.info().serial_hex);
}

#[tokio::test]
async fn dev_certs_generated_once_and_served() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    assert_eq!(
        ensure_dev_certs(&dir, &["nats-operator.local".into()]).unwrap(),
        DevCertsOutcome::Generated
    );
    let mode = std::fs::metadata(dir.join("tls.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let before = std::fs::read(dir.join("tls.crt")).unwrap();
    assert_eq!(
        ensure_dev_certs(&dir, &[]).unwrap(),
        DevCertsOutcome::Existing
    );
    assert_eq!(std::fs::read(dir.join("tls.crt")).unwrap(), before);

    let files = FileCerts::load(&dir).unwrap();
    let roots = std::fs::read(dir.join("ca.crt")).unwrap();
    let server = serve(files.resolver()).await;
    for name in ["localhost", "127.0.0.1", "nats-operator.local"] {
        connect(server.addr, ClientOpts::new(&roots, name))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn dev_certs_refuse_half_populated_dir() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("tls.crt"), "x").unwrap();
    assert!(matches!(
        ensure_dev_certs(tmp.path(), &[]),
        Err(Error::IncompleteCertDir { .. })
    ));
    assert_eq!(std::fs::read(tmp.path().join("tls.crt")).unwrap(), b"x");
}
