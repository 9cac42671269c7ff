//! Test harness: a real registry (Debian's docker-registry) on 127.0.0.1, a token server,
//! a filesystem blob sink/source, and small images built with oci-spec.
#![allow(dead_code)]

pub mod proxy;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use kiln_registry::auth::CredentialStore;
use kiln_registry::{BlobSink, BlobSource, BlobWriter, ClientConfig, Digest, StoreError};
use oci_spec::image::{
    ConfigBuilder, DescriptorBuilder, ImageConfigurationBuilder, ImageManifestBuilder, MediaType,
    RootFsBuilder,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The test user of the auth variants.
pub const USER: &str = "acc";
/// Its password.
pub const PASSWORD: &str = "pa55-w0rd";

/// The identity (refresh) token the test token server accepts.
pub const IDENTITY_TOKEN: &str = "kiln-test-refresh-token";

/// How the registry authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// No auth.
    None,
    /// htpasswd (bcrypt) basic auth.
    Htpasswd,
    /// Bearer tokens from [`TokenServer`].
    Token,
}

/// A running docker-registry, killed on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:port`
    pub addr: String,
    /// Its storage and config directory.
    pub dir: tempfile::TempDir,
    /// The token server, in token mode.
    pub token_server: Option<TokenServer>,
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn need(program: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} is not installed: run scripts/deps.sh (Debian packages docker-registry, apache2-utils, skopeo, openssl)"
    );
}

impl Registry {
    /// Starts a registry in `mode` and waits until it answers.
    pub async fn start(mode: AuthMode) -> Registry {
        Self::start_with(mode, false).await
    }

    /// Starts a registry serving HTTPS with a self-signed certificate made by openssl.
    pub async fn start_tls() -> Registry {
        Self::start_with(AuthMode::None, true).await
    }

    async fn start_with(mode: AuthMode, tls: bool) -> Registry {
        need("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let mut tls_config = String::new();
        if tls {
            need("openssl");
            let (key, cert) = (dir.path().join("tls.key"), dir.path().join("tls.crt"));
            let out = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args([
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            tls_config = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
        }
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut auth = String::new();
        let mut token_server = None;
        match mode {
            AuthMode::None => {}
            AuthMode::Htpasswd => {
                need("htpasswd");
                let out = Command::new("htpasswd")
                    .args(["-Bbn", USER, PASSWORD])
                    .output()
                    .unwrap();
                assert!(out.status.success());
                std::fs::write(dir.path().join("htpasswd"), out.stdout).unwrap();
                auth = format!(
                    "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                    dir.path().join("htpasswd").display()
                );
            }
            AuthMode::Token => {
                let ts = TokenServer::start(dir.path()).await;
                auth = format!(
                    "auth:\n  token:\n    realm: http://{}/token\n    service: kiln-test\n    issuer: kiln-test-issuer\n    rootcertbundle: {}\n",
                    ts.addr,
                    ts.cert.display()
                );
                token_server = Some(ts);
            }
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{tls_config}{auth}",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = Registry {
            child,
            addr,
            dir,
            token_server,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(&registry.addr)
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                std::fs::read_to_string(registry.dir.path().join("log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        registry
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client config for tests: fast retries, short timeouts, credentials from `docker_config`.
pub fn test_config(docker_config: Option<PathBuf>) -> ClientConfig {
    ClientConfig {
        max_attempts: 4,
        retry_backoff: Duration::from_millis(20),
        read_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(3),
        credentials: CredentialStore::with_files(None, docker_config),
        ..ClientConfig::default()
    }
}

/// Writes a docker config.json with inline credentials for `registry`.
pub fn docker_config_with(dir: &Path, registry: &str, user: &str, password: &str) -> PathBuf {
    let path = dir.join("docker-config.json");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        &path,
        format!(r#"{{"auths":{{"{registry}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    path
}

// ---------------------------------------------------------------------------------------------
// A blob store on disk for the tests: temp files, renamed into place on commit.

/// A content store in a directory: `blobs/<alg>/<hex>` committed, `tmp/` in progress.
#[derive(Clone)]
pub struct FsStore {
    pub root: PathBuf,
    counter: Arc<AtomicUsize>,
    /// Known source repositories per digest (for mounts).
    pub sources: Arc<Mutex<HashMap<Digest, Vec<String>>>>,
}

impl FsStore {
    pub fn new(root: &Path) -> FsStore {
        std::fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        FsStore {
            root: root.to_path_buf(),
            counter: Arc::new(AtomicUsize::new(0)),
            sources: Arc::default(),
        }
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(d.algorithm().name())
            .join(d.hex())
    }

    /// Adds a blob (for push sources).
    pub fn put(&self, data: &[u8]) -> Digest {
        let d = Digest::sha256_of(data);
        std::fs::write(self.blob_path(&d), data).unwrap();
        d
    }

    /// Committed blobs.
    pub fn committed(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.root.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Files left in progress (must be none after any pull, failed or not).
    pub fn in_progress(&self) -> usize {
        std::fs::read_dir(self.root.join("tmp")).unwrap().count()
    }

    /// Every committed blob hashes to its name.
    pub fn verify_all(&self) {
        for hex in self.committed() {
            let data = std::fs::read(self.root.join("blobs/sha256").join(&hex)).unwrap();
            assert_eq!(
                Digest::sha256_of(&data).hex(),
                hex,
                "corrupt blob committed"
            );
        }
    }
}

pub struct FsWriter {
    file: std::fs::File,
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl BlobWriter for FsWriter {
    fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        Ok(self.file.write_all(chunk)?)
    }
    fn restart(&mut self) -> Result<(), StoreError> {
        self.file.set_len(0)?;
        use std::io::Seek;
        self.file.seek(std::io::SeekFrom::Start(0))?;
        Ok(())
    }
    fn commit(mut self) -> Result<(), StoreError> {
        self.file.sync_all()?;
        std::fs::rename(&self.tmp, &self.dest)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl BlobSink for FsStore {
    type Writer = FsWriter;
    fn contains(&self, digest: &Digest) -> Result<bool, StoreError> {
        Ok(self.blob_path(digest).exists())
    }
    fn begin(&self, digest: &Digest, _size: u64) -> Result<FsWriter, StoreError> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.root.join("tmp").join(format!("{}-{n}", digest.hex()));
        Ok(FsWriter {
            file: std::fs::File::create(&tmp)?,
            tmp,
            dest: self.blob_path(digest),
            committed: false,
        })
    }
    fn record_source(&self, digest: &Digest, repository: &str) {
        self.sources
            .lock()
            .unwrap()
            .entry(digest.clone())
            .or_default()
            .push(repository.to_string());
    }
}

impl BlobSource for FsStore {
    type Reader = tokio::fs::File;
    fn open(&self, digest: &Digest) -> Result<tokio::fs::File, StoreError> {
        Ok(tokio::fs::File::from_std(std::fs::File::open(
            self.blob_path(digest),
        )?))
    }
    fn mount_candidates(&self, digest: &Digest, registry: &str) -> Vec<String> {
        self.sources
            .lock()
            .unwrap()
            .get(digest)
            .into_iter()
            .flatten()
            .filter_map(|r| r.strip_prefix(&format!("{registry}/")).map(str::to_string))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Images built in the test with oci-spec types.

/// An image in a store: its manifest bytes, manifest digest and layer digests.
pub struct TestImage {
    pub manifest: Vec<u8>,
    pub digest: Digest,
    pub config: Digest,
    pub layers: Vec<Digest>,
}

/// Deterministic pseudo-random bytes (xorshift), incompressible like real layer data.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A tar layer with one file of `size` bytes.
pub fn tar_layer(name: &str, size: usize, seed: u64) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let data = noise(size, seed);
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, name, &data[..]).unwrap();
    builder.into_inner().unwrap()
}

/// Builds an image of uncompressed tar layers into `store`.
pub fn make_image(store: &FsStore, layers: &[Vec<u8>]) -> TestImage {
    let layer_digests: Vec<Digest> = layers.iter().map(|l| store.put(l)).collect();
    let diff_ids: Vec<String> = layer_digests.iter().map(|d| d.to_string()).collect();
    let config = ImageConfigurationBuilder::default()
        .architecture("amd64")
        .os("linux")
        .config(
            ConfigBuilder::default()
                .cmd(vec!["/bin/sh".to_string()])
                .build()
                .unwrap(),
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(diff_ids)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = store.put(&config_bytes);
    let descriptor = |mt: MediaType, d: &Digest, size: usize| {
        DescriptorBuilder::default()
            .media_type(mt)
            .digest(d.as_str().parse::<oci_spec::image::Digest>().unwrap())
            .size(size as u64)
            .build()
            .unwrap()
    };
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(
            MediaType::ImageConfig,
            &config_digest,
            config_bytes.len(),
        ))
        .layers(
            layers
                .iter()
                .zip(&layer_digests)
                .map(|(l, d)| descriptor(MediaType::ImageLayer, d, l.len()))
                .collect::<Vec<_>>(),
        )
        .build()
        .unwrap();
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let digest = store.put(&manifest);
    TestImage {
        manifest,
        digest,
        config: config_digest,
        layers: layer_digests,
    }
}

// ---------------------------------------------------------------------------------------------
// A token server (docker's token protocol) signing RS256 JWTs with an openssl-made key.

pub struct TokenServer {
    pub addr: String,
    pub cert: PathBuf,
    /// Number of token requests served.
    pub requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenServer {
    pub async fn start(dir: &Path) -> TokenServer {
        need("openssl");
        let key = dir.join("token-key.pem");
        let cert = dir.join("token-cert.pem");
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=kiln-test-token"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // x5c holds the DER certificate in standard base64: the PEM body.
        let pem = std::fs::read_to_string(&cert).unwrap();
        let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let key = key.clone();
                let der_b64 = der_b64.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut head = read_head(&mut sock).await;
                    if head.starts_with("POST") {
                        head = post_as_query(&mut sock, &head).await;
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                    let (status, body) = token_response(&head, &key, &der_b64);
                    let resp = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        TokenServer {
            addr,
            cert,
            requests,
            task,
        }
    }
}

/// Reads an HTTP request head (the token server's requests have no body).
pub async fn read_head(sock: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut byte).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&byte[..n]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A POST (OAuth2 refresh-token grant) carries its form in the body: read it and rewrite the
/// request line as a GET with that query.
async fn post_as_query(sock: &mut tokio::net::TcpStream, head: &str) -> String {
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let (before, after) = head.split_once("\r\n\r\n").unwrap_or((head, ""));
    let mut body = after.as_bytes().to_vec();
    let mut buf = [0u8; 4096];
    while body.len() < len {
        let n = sock.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    let form = String::from_utf8_lossy(&body).into_owned();
    let mut lines = before.lines();
    let first = lines
        .next()
        .unwrap_or("")
        .replacen(" /token ", &format!(" /token?{form} "), 1);
    let rest: Vec<&str> = lines.collect();
    format!("{first}\r\n{}\r\n\r\n", rest.join("\r\n"))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn token_response(head: &str, key: &Path, der_b64: &str) -> (&'static str, String) {
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let target = head.split_whitespace().nth(1).unwrap_or("/");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut scopes = Vec::new();
    let mut service = String::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "scope" => scopes.push(percent_decode(v)),
            "service" => service = percent_decode(v),
            _ => {}
        }
    }
    let refresh = query
        .split('&')
        .find_map(|p| p.strip_prefix("refresh_token="))
        .map(percent_decode);
    let auth = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("authorization")
            .then(|| value.trim().to_string())
    });
    let user = match auth {
        None if refresh.is_some() => {
            if refresh.as_deref() != Some(IDENTITY_TOKEN) {
                return (
                    "401 Unauthorized",
                    r#"{"details":"invalid refresh token"}"#.to_string(),
                );
            }
            Some(USER)
        }
        None => None,
        Some(value) => {
            let decoded = value
                .strip_prefix("Basic ")
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            if decoded.as_deref() != Some(&format!("{USER}:{PASSWORD}")) {
                return (
                    "401 Unauthorized",
                    r#"{"details":"incorrect username or password"}"#.to_string(),
                );
            }
            Some(USER)
        }
    };
    // The user may pull and push anything; anonymous gets nothing.
    let access: Vec<serde_json::Value> = if user.is_some() {
        scopes
            .iter()
            .filter_map(|s| {
                let mut parts = s.splitn(3, ':');
                let (typ, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                Some(serde_json::json!({
                    "type": typ, "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }))
            })
            .collect()
    } else {
        Vec::new()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [der_b64]});
    let claims = serde_json::json!({
        "iss": "kiln-test-issuer", "sub": user.unwrap_or(""), "aud": service,
        "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("{now}-{}", rand_id()), "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url.encode(header.to_string()),
        b64url.encode(claims.to_string())
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(signing_input.as_bytes())
        .unwrap();
    let sig = child.wait_with_output().unwrap().stdout;
    let token = format!("{signing_input}.{}", b64url.encode(sig));
    (
        "200 OK",
        serde_json::json!({"token": token, "expires_in": 300}).to_string(),
    )
}

fn rand_id() -> u64 {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed) as u64 ^ std::process::id() as u64
}
