//! Certificates and CAs that follow their files, with material made by the
//! `openssl` command (EC P-256, valid a day).

use super::*;
use std::process::Command;

/// Runs openssl in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap_or_else(|e| panic!("cannot run `openssl` ({e}): the TLS tests need it (Debian: apt-get install openssl)"));
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

const EC: [&str; 5] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/// A self-signed certificate `{name}.crt` and key `{name}.key` in `dir`
/// (a CA), as PEM.
fn self_signed(dir: &Path, name: &str) -> (Vec<u8>, Vec<u8>) {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    openssl(dir, &[&["req", "-x509"][..], &EC, &["-days", "1", "-subj", &format!("/CN={name}"), "-keyout", &key, "-out", &crt]].concat());
    (std::fs::read(dir.join(crt)).unwrap(), std::fs::read(dir.join(key)).unwrap())
}

/// A certificate `{name}.crt` for the name "evenkeel" (server and client
/// use), signed by CA `ca`, and its key `{name}.key`, as PEM.
fn signed(dir: &Path, name: &str, ca: &str) -> (Vec<u8>, Vec<u8>) {
    let (crt, key, csr) = (format!("{name}.crt"), format!("{name}.key"), format!("{name}.csr"));
    std::fs::write(dir.join("leaf.ext"), "subjectAltName=DNS:evenkeel\nextendedKeyUsage=serverAuth,clientAuth\n").unwrap();
    openssl(dir, &[&["req"][..], &EC, &["-subj", &format!("/CN={name}"), "-keyout", &key, "-out", &csr]].concat());
    openssl(dir, &["x509", "-req", "-in", &csr, "-CA", &format!("{ca}.crt"), "-CAkey", &format!("{ca}.key"), "-CAcreateserial", "-days", "1", "-extfile", "leaf.ext", "-out", &crt]);
    (std::fs::read(dir.join(crt)).unwrap(), std::fs::read(dir.join(key)).unwrap())
}

fn der(pem: &[u8]) -> Vec<u8> {
    CertificateDer::pem_slice_iter(pem).next().unwrap().unwrap().to_vec()
}

/// Files at `names` under `dir` holding `contents`.
fn files<const N: usize>(dir: &Path, names: [&str; N], contents: [&[u8]; N]) -> [PathBuf; N] {
    std::array::from_fn(|i| {
        let p = dir.join(names[i]);
        std::fs::write(&p, contents[i]).unwrap();
        p
    })
}

#[test]
fn a_renewed_certificate_is_used_once_both_files_hold_it_and_a_broken_one_never() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (self_signed(dir.path(), "a"), self_signed(dir.path(), "b"));
    let [cert, key] = files(dir.path(), ["served.crt", "served.key"], [&a.0, &a.1]);
    let r = ReloadingCert::new(cert.clone(), key.clone(), Arc::new(provider()), "test_reloads").unwrap();
    let served = |every| r.current(every).cert[0].to_vec();
    assert_eq!(served(Duration::ZERO), der(&a.0));
    // Half a renewal: B's certificate with A's key does not load.
    std::fs::write(&cert, &b.0).unwrap();
    assert_eq!(served(Duration::ZERO), der(&a.0));
    // Not looked at again before `every` has passed.
    std::fs::write(&key, &b.1).unwrap();
    assert_eq!(served(Duration::from_secs(3600)), der(&a.0));
    assert_eq!(served(Duration::ZERO), der(&b.0));
    // A file that is not PEM: the pair in use stays.
    std::fs::write(&cert, b"not a certificate").unwrap();
    assert_eq!(served(Duration::ZERO), der(&b.0));
    std::fs::write(&cert, &a.0).unwrap();
    std::fs::write(&key, &a.1).unwrap();
    assert_eq!(served(Duration::ZERO), der(&a.0));
}

#[test]
fn a_bad_pair_or_ca_is_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (self_signed(dir.path(), "a"), self_signed(dir.path(), "b"));
    let [cert, key, wrong] = files(dir.path(), ["x.crt", "x.key", "wrong.key"], [&a.0, &a.1, &b.1]);
    let e = ReloadingCert::new(cert.clone(), wrong.clone(), Arc::new(provider()), "test_reloads").unwrap_err();
    assert!(e.contains("does the key belong to the certificate") && e.contains("wrong.key"), "{e}");
    let e = ReloadingCert::new(key.clone(), key.clone(), Arc::new(provider()), "test_reloads").unwrap_err();
    assert!(e.contains("no certificate in it") && e.contains("x.key"), "{e}");
    let e = ReloadingRoots::new(key.clone(), Arc::new(provider()), "test_reloads").unwrap_err();
    assert!(e.contains("no certificate in it"), "{e}");
    let e = ClusterTls::load(cert.clone(), cert.clone(), key.clone(), "not a name!".into()).unwrap_err();
    assert!(e.contains("--internal-tls-name"), "{e}");
    let e = ClusterTls::load(dir.path().join("missing.crt"), cert, key, "evenkeel".into()).unwrap_err();
    assert!(e.contains("missing.crt"), "{e}");
}

/// A node's listener with `server`'s TLS; one handshake from `client`
/// over loopback: Ok once both sides accepted the other.
async fn handshake(server: &ClusterTls, client: &ClusterTls) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut incoming = Handshaking::new(listener, server.server_config(), "test", "test_handshake_failures").unwrap();
    let addr = incoming.local_addr();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connected = TlsConnector::from(client.client_config()).connect(ServerName::try_from("evenkeel").unwrap(), tcp).await;
    // TLS 1.3: a client certificate the server refuses shows after the
    // client's side of the handshake, as a connection the server never
    // hands on.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = connected.map_err(|e| format!("client: {e}"))?;
    c.write_all(b"ping").await.map_err(|e| format!("client write: {e}"))?;
    let (mut s, _) = tokio::time::timeout(Duration::from_secs(2), incoming.accept()).await.map_err(|_| "the server accepted nothing".to_string())?;
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.map_err(|e| format!("server read: {e}"))?;
    (buf == *b"ping").then_some(()).ok_or_else(|| "garbled".to_string())
}

#[tokio::test]
async fn mutual_tls_follows_a_ca_rotation_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca1, _) = self_signed(d, "ca1");
    let (ca2, _) = self_signed(d, "ca2");
    let leaf1 = signed(d, "leaf1", "ca1");
    let leaf2 = signed(d, "leaf2", "ca2");
    // Two processes whose files rotate (each its own), one step at a time
    // as an operator goes through them, and one left on the old files.
    let node = |prefix: &str| files(d, [&format!("{prefix}-ca.crt")[..], &format!("{prefix}.crt"), &format!("{prefix}.key")], [&ca1[..], &leaf1.0, &leaf1.1]);
    let load = |[ca, cert, key]: &[PathBuf; 3]| ClusterTls::load_every(ca.clone(), cert.clone(), key.clone(), "evenkeel".into(), Duration::ZERO).unwrap();
    let (a_files, b_files, stale_files) = (node("a"), node("b"), node("stale"));
    let (a, b, stale) = (load(&a_files), load(&b_files), load(&stale_files));
    let both_ways = |x: &ClusterTls, y: &ClusterTls| {
        let (x, y) = (x.clone(), y.clone());
        async move {
            handshake(&x, &y).await.unwrap();
            handshake(&y, &x).await.unwrap();
        }
    };
    both_ways(&a, &b).await;
    both_ways(&a, &stale).await;
    // 1. Every process trusts both CAs.
    for [ca, _, _] in [&a_files, &b_files] {
        std::fs::write(ca, [&ca1[..], &ca2[..]].concat()).unwrap();
    }
    both_ways(&a, &b).await;
    // 2. One process at a time takes a certificate of the new CA; old and
    // new certificates meet meanwhile.
    std::fs::write(&a_files[1], &leaf2.0).unwrap();
    std::fs::write(&a_files[2], &leaf2.1).unwrap();
    both_ways(&a, &b).await;
    std::fs::write(&b_files[1], &leaf2.0).unwrap();
    std::fs::write(&b_files[2], &leaf2.1).unwrap();
    both_ways(&a, &b).await;
    // A CA file written half-way (not PEM) is not taken.
    std::fs::write(&a_files[0], b"-----BEGIN CERT").unwrap();
    both_ways(&a, &b).await;
    // 3. The old CA goes.
    for [ca, _, _] in [&a_files, &b_files] {
        std::fs::write(ca, &ca2).unwrap();
    }
    both_ways(&a, &b).await;
    // A process still on the old files is refused, either way.
    assert!(handshake(&a, &stale).await.is_err(), "a node refuses a caller of the old CA");
    assert!(handshake(&stale, &a).await.is_err(), "a caller refuses a node of the old CA");
}
