//! The test cluster: real `harbour-storage` and `harbour-naming` processes
//! on ephemeral loopback ports, each test in a folder of its own, children
//! killed by PID when the cluster is dropped. Fault verbs (kill, freeze,
//! restart) act on one process.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cluster_auth::{ClusterKey, Signer};
use common::tls::ClientTls;
use std::os::unix::fs::PermissionsExt;
use ureq::http::header::AUTHORIZATION;

use crate::pki::TestPki;

/// How a cluster is set up; `Spec::default()` is three storage servers at
/// replication 2.
#[derive(Clone)]
pub struct Spec {
    pub storage: usize,
    pub replication: usize,
    pub capacity_bytes: Option<u64>,
    /// naming → storage budget (`--timeout-ms`).
    pub storage_timeout_ms: u64,
    /// Inbound stall bound of both servers (`--io-timeout-ms`).
    pub io_timeout_ms: u64,
    pub heartbeat_ms: u64,
    pub dead_after_ms: u64,
    /// `--checkpoint-bytes` of the naming server.
    pub checkpoint_bytes: u64,
    /// `--reconcile-ms` of the naming server (also the orphans' grace period).
    pub reconcile_ms: u64,
    /// The text of the naming server's `--api-tokens-file`, if any.
    pub api_tokens: Option<&'static str>,
    /// The token the cluster's agent and CLI send to the naming server.
    pub token: Option<&'static str>,
    /// Every server serves HTTPS with a certificate of a CA made for the
    /// cluster (`Cluster::pki`), which the naming server, the agent and
    /// the CLI trust.
    pub tls: bool,
    /// Variables every server of the cluster gets (`LOG_LEVEL`, say).
    pub env: Vec<(&'static str, &'static str)>,
    /// The S3 API on a port of its own, with this `--s3-keys-file` text.
    pub s3_keys: Option<&'static str>,
    /// The naming server keeps its metadata in this etcd
    /// (`--etcd-endpoints`), under a prefix of the test's own. Unset, the
    /// etcd of `HARBOUR_TEST_ETCD` if that is set (`make test` runs the
    /// functional tests again so), else the local journal.
    pub etcd: Option<String>,
    /// The test is about the local journal in `--meta-dir`: never on etcd.
    pub local_journal: bool,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            storage: 3,
            replication: 2,
            capacity_bytes: None,
            storage_timeout_ms: 2000,
            io_timeout_ms: 10_000,
            heartbeat_ms: 200,
            dead_after_ms: 1000,
            checkpoint_bytes: 64 * 1024 * 1024,
            reconcile_ms: 30_000,
            api_tokens: None,
            token: None,
            tls: false,
            env: Vec::new(),
            s3_keys: None,
            etcd: None,
            local_journal: false,
        }
    }
}

pub struct Cluster {
    pub dir: PathBuf,
    pub spec: Spec,
    storages: Vec<Server>,
    naming: Server,
    pub agent: ureq::Agent,
    /// The cluster's certificates, with `Spec::tls`.
    pub pki: Option<TestPki>,
    /// The naming server keeps its metadata in etcd, not in `meta_dir`
    /// (which then holds no journal, and no checkpoint is ever written).
    pub on_etcd: bool,
}

/// One server process and how to start it again.
pub struct Server {
    binary: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    pub addr: SocketAddr,
    /// `https`, or `http`: as its `listening on` line said.
    pub scheme: &'static str,
}

/// An HTTP answer: status, body, and the Content-Length header if any.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_length: Option<u64>,
}

impl Cluster {
    pub fn start(spec: Spec) -> Cluster {
        let dir = test_dir();
        let pki = spec.tls.then(|| TestPki::new(&dir.join("tls"), "cluster"));
        let tls_args = pki.as_ref().map(TestPki::server_args).unwrap_or_default();
        let storages: Vec<Server> = (0..spec.storage)
            .map(|idx| {
                let data_dir = dir.join(format!("storage{idx}"));
                let mut args = vec![
                    "--listen".to_owned(),
                    "127.0.0.1:0".to_owned(),
                    "--data-dir".to_owned(),
                    path_arg(&data_dir),
                    "--io-timeout-ms".to_owned(),
                    spec.io_timeout_ms.to_string(),
                ];
                if let Some(capacity) = spec.capacity_bytes {
                    args.extend(["--capacity".to_owned(), capacity.to_string()]);
                }
                args.extend(tls_args.iter().cloned());
                Server::start_with_env(
                    "harbour-storage",
                    args,
                    &spec.env,
                    dir.join(format!("storage{idx}.log")),
                )
            })
            .collect();
        let urls: Vec<String> = storages.iter().map(Server::url).collect();
        let mut naming_args = vec![
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--storage-servers".to_owned(),
            urls.join(","),
            "--replication".to_owned(),
            spec.replication.to_string(),
            "--meta-dir".to_owned(),
            path_arg(&dir.join("meta")),
            "--timeout-ms".to_owned(),
            spec.storage_timeout_ms.to_string(),
            "--io-timeout-ms".to_owned(),
            spec.io_timeout_ms.to_string(),
            "--heartbeat-ms".to_owned(),
            spec.heartbeat_ms.to_string(),
            "--dead-after-ms".to_owned(),
            spec.dead_after_ms.to_string(),
            "--checkpoint-bytes".to_owned(),
            spec.checkpoint_bytes.to_string(),
            "--reconcile-ms".to_owned(),
            spec.reconcile_ms.to_string(),
        ];
        if let Some(text) = spec.api_tokens {
            let path = dir.join("api-tokens");
            fs::write(&path, text).expect("write the tokens file");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
            naming_args.extend(["--api-tokens-file".to_owned(), path_arg(&path)]);
        }
        if let Some(text) = spec.s3_keys {
            let path = dir.join("s3-keys");
            fs::write(&path, text).expect("write the S3 keys file");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
            naming_args.extend([
                "--s3-listen".to_owned(),
                "127.0.0.1:0".to_owned(),
                "--s3-keys-file".to_owned(),
                path_arg(&path),
            ]);
        }
        let etcd = spec.etcd.clone().or_else(|| {
            std::env::var("HARBOUR_TEST_ETCD")
                .ok()
                .filter(|_| !spec.local_journal)
        });
        let on_etcd = etcd.is_some();
        if let Some(endpoints) = etcd {
            let prefix = format!(
                "/it/{}/",
                dir.file_name().and_then(|n| n.to_str()).expect("a name")
            );
            naming_args.extend([
                "--etcd-endpoints".to_owned(),
                endpoints,
                "--etcd-prefix".to_owned(),
                prefix,
            ]);
        }
        if let Some(pki) = &pki {
            naming_args.extend(tls_args.iter().cloned());
            naming_args.extend(["--ca-file".to_owned(), pki.ca_arg()]);
        }
        let naming = Server::start_with_env(
            "harbour-naming",
            naming_args,
            &spec.env,
            dir.join("naming.log"),
        );
        let tls = match &pki {
            Some(pki) => ClientTls::from_ca_file(&pki.ca_file).expect("the test CA loads"),
            None => ClientTls::none(),
        };
        let agent = Cluster::agent_with(
            spec.token
                .map(|token| (naming.addr.to_string(), token.to_owned())),
            &tls,
        );
        let cluster = Cluster {
            dir,
            spec,
            storages,
            naming,
            agent,
            pki,
            on_etcd,
        };
        cluster.wait_healthy();
        cluster
    }

    /// The tests' HTTP client: generous timeouts, statuses as values, and
    /// the test cluster's credentials on every call (storage servers need
    /// them; the naming server's public API ignores them).
    pub fn test_agent() -> ureq::Agent {
        Cluster::agent_with(None, &ClientTls::none())
    }

    /// The test agent, also sending `Bearer TOKEN` to the naming server at
    /// `bearer.0` (the token `bearer.1`), verifying `https://` servers
    /// against `tls`. A request that already has an `Authorization` header
    /// keeps it.
    pub fn agent_with(bearer: Option<(String, String)>, tls: &ClientTls) -> ureq::Agent {
        let signer = test_signer();
        let credentials = move |mut request: ureq::http::Request<ureq::SendBody>,
                                next: ureq::middleware::MiddlewareNext| {
            let headers = request.headers();
            if !headers.contains_key(AUTHORIZATION) {
                let to_naming = |authority: &str| {
                    request.uri().authority().map(|found| found.as_str()) == Some(authority)
                };
                let value = match &bearer {
                    Some((authority, token)) if to_naming(authority) => format!("Bearer {token}"),
                    _ => {
                        let target = request
                            .uri()
                            .path_and_query()
                            .map_or("/", |target| target.as_str());
                        signer.authorization(request.method().as_str(), target)
                    }
                };
                let value = ureq::http::HeaderValue::from_str(&value).expect("a header value");
                request.headers_mut().insert(AUTHORIZATION, value);
            }
            next.handle(request)
        };
        tls.configure(ureq::Agent::config_builder())
            .middleware(credentials)
            .timeout_global(Some(Duration::from_secs(120)))
            .timeout_per_read(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .proxy(None)
            .build()
            .into()
    }

    pub fn url(&self) -> String {
        self.naming.url()
    }

    /// The S3 API's `SCHEME://ADDR`, as the naming server's `S3 API on`
    /// line says (with `Spec::s3_keys`).
    pub fn s3_url(&self) -> String {
        s3_url_of(&self.naming)
    }
}

/// The S3 API's URL of a naming server, as its log announced it.
pub fn s3_url_of(naming: &Server) -> String {
    {
        let log = naming.log_text();
        let line = log
            .lines()
            .rev()
            .find_map(|line| line.split_once("S3 API on ").map(|(_, url)| url))
            .unwrap_or_else(|| panic!("the naming server serves no S3 API:\n{log}"));
        let end = line
            .find(|c: char| c.is_whitespace() || c == '"')
            .unwrap_or(line.len());
        line[..end].to_owned()
    }
}

impl Cluster {
    pub fn naming_ref(&self) -> &Server {
        &self.naming
    }

    pub fn storage_ref(&self, idx: usize) -> &Server {
        &self.storages[idx]
    }

    pub fn storage(&mut self, idx: usize) -> &mut Server {
        &mut self.storages[idx]
    }

    pub fn storage_url(&self, idx: usize) -> String {
        self.storages[idx].url()
    }

    pub fn storage_dir(&self, idx: usize) -> PathBuf {
        self.dir.join(format!("storage{idx}"))
    }

    /// Starts another naming server like the cluster's own, on a port and
    /// a folder of its own: with the etcd store, a second server of the
    /// same namespace.
    pub fn start_naming_peer(&self, label: &str) -> Server {
        let mut args = self.naming.args.clone();
        let listen = args
            .iter()
            .position(|arg| arg == "--listen")
            .expect("--listen")
            + 1;
        args[listen] = "127.0.0.1:0".to_owned();
        let meta = args
            .iter()
            .position(|arg| arg == "--meta-dir")
            .expect("--meta-dir")
            + 1;
        args[meta] = path_arg(&self.dir.join(format!("meta-{label}")));
        if let Some(s3) = args.iter().position(|arg| arg == "--s3-listen") {
            args[s3 + 1] = "127.0.0.1:0".to_owned();
        }
        let env: Vec<(&str, &str)> = self
            .naming
            .env
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        Server::start_with_env(
            "harbour-naming",
            args,
            &env,
            self.dir.join(format!("naming-{label}.log")),
        )
    }

    pub fn naming(&mut self) -> &mut Server {
        &mut self.naming
    }

    pub fn meta_dir(&self) -> PathBuf {
        self.dir.join("meta")
    }

    /// Kills every process (SIGKILL) and starts them all again on the same
    /// ports and folders, then waits for the cluster to be healthy.
    pub fn kill_all_and_restart(&mut self) {
        for server in self.storages.iter_mut().chain([&mut self.naming]) {
            server.kill();
        }
        for server in self.storages.iter_mut().chain([&mut self.naming]) {
            server.restart();
        }
        self.wait_healthy();
    }

    /// Waits until the naming server answers and sees every storage server alive.
    pub fn wait_healthy(&self) {
        let all_alive = || {
            let answer = self.try_request("GET", "/status", &[]).ok()?;
            let status: serde_json::Value = serde_json::from_slice(&answer.body).ok()?;
            let servers = status["servers"].as_array()?;
            servers
                .iter()
                .all(|server| server["alive"] == true)
                .then_some(())
        };
        wait_until(
            Duration::from_secs(10),
            "the cluster to become healthy",
            || all_alive().is_some(),
        );
    }

    /// `PUT /files/NAME` (NAME as it goes in the path, already encoded).
    pub fn put(&self, path_name: &str, body: &[u8]) -> Answer {
        self.request("PUT", &format!("/files/{path_name}"), body)
    }

    pub fn get(&self, path_name: &str) -> Answer {
        self.request("GET", &format!("/files/{path_name}"), &[])
    }

    pub fn delete(&self, path_name: &str) -> Answer {
        self.request("DELETE", &format!("/files/{path_name}"), &[])
    }

    pub fn status_json(&self) -> serde_json::Value {
        self.request("GET", "/status", &[]).json()
    }

    /// Any request to the naming server; panics only if it cannot be sent.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Answer {
        self.try_request(method, path, body).unwrap_or_else(|err| {
            panic!(
                "{method} {path} failed: {err}; logs in {}",
                self.dir.display()
            )
        })
    }

    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Answer, ureq::Error> {
        request_to(&self.agent, &format!("{}{path}", self.url()), method, body)
    }

    /// Runs the `harbour` client against this cluster.
    pub fn cli(&self, args: &[&str]) -> Cli {
        let mut cli = Cli::new(args).env("NAME_SERVER", &self.url());
        if let Some(pki) = &self.pki {
            cli = cli.env("TLS_CA_FILE", &pki.ca_arg());
        }
        match self.spec.token {
            Some(token) => cli.env("HARBOUR_TOKEN", token),
            None => cli,
        }
    }

    /// Puts full chunks `indexes` of `blob` straight onto storage server
    /// `idx`, behind the naming server's back.
    pub fn put_chunks_directly(
        &self,
        idx: usize,
        blob: u64,
        indexes: std::ops::Range<u32>,
    ) -> Answer {
        let chunks: Vec<common::wire::Chunk> = indexes
            .map(|index| {
                let id = common::chunk::ChunkId {
                    blob: common::chunk::BlobId(blob),
                    index,
                };
                common::wire::Chunk::new(id, vec![7; 1024])
            })
            .collect();
        let url = format!("{}/chunks", self.storage_url(idx));
        request_to(
            &self.agent,
            &url,
            "PUT",
            &common::wire::encode_batch(&chunks),
        )
        .expect("PUT /chunks")
    }

    /// The replica URLs of every chunk of `path_name`, from `GET /stat`,
    /// each checked to be `replication` distinct servers. The file must
    /// exist and its answer hold every chunk.
    pub fn chunk_replicas(&self, path_name: &str) -> Vec<Vec<String>> {
        let answer = self.request("GET", &format!("/stat/{path_name}"), &[]);
        assert_eq!(
            answer.status,
            200,
            "stat {path_name}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        let stat = answer.json();
        let chunks = stat["chunks"].as_array().expect("a chunks array");
        assert_eq!(
            Some(chunks.len() as u64),
            stat["chunk_count"].as_u64(),
            "{path_name}: every chunk is listed"
        );
        chunks
            .iter()
            .map(|chunk| {
                let replicas: Vec<String> = chunk["replicas"]
                    .as_array()
                    .expect("replicas")
                    .iter()
                    .map(|url| url.as_str().expect("a URL").to_owned())
                    .collect();
                assert_eq!(
                    replicas.len(),
                    self.spec.replication,
                    "{path_name}: {replicas:?}"
                );
                assert!(
                    replicas
                        .iter()
                        .enumerate()
                        .all(|(idx, url)| !replicas[..idx].contains(url)),
                    "{replicas:?}"
                );
                replicas
            })
            .collect()
    }

    /// Total chunks stored on every storage server, by their own count.
    /// Every server must answer: a dead one is no zero.
    pub fn stored_chunks(&self) -> u64 {
        let every: Vec<usize> = (0..self.storages.len()).collect();
        self.stored_chunks_on(&every)
    }

    /// Chunks stored on the storage servers `idxs`, by their own count;
    /// each must answer its status.
    pub fn stored_chunks_on(&self, idxs: &[usize]) -> u64 {
        idxs.iter()
            .map(|&idx| {
                let url = format!("{}/status", self.storage_url(idx));
                let answer = request_to(&self.agent, &url, "GET", &[])
                    .unwrap_or_else(|err| panic!("storage {idx} does not answer: {err}"));
                assert_eq!(answer.status, 200, "storage {idx} status");
                answer.json()["chunks"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("storage {idx} status has no chunks count"))
            })
            .sum()
    }

    /// The value of the naming server's unlabelled metric `name`; the
    /// metric must be on `/metrics`.
    pub fn metric(&self, name: &str) -> u64 {
        let answer = self.request("GET", "/metrics", &[]);
        assert_eq!(answer.status, 200, "GET /metrics");
        metric_value(&String::from_utf8_lossy(&answer.body), name)
    }
}

/// The value of unlabelled metric `name` in a Prometheus text page.
pub fn metric_value(page: &str, name: &str) -> u64 {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no metric {name} in:\n{page}"))
        .trim()
        .parse()
        .unwrap_or_else(|err| panic!("metric {name}: {err}"))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for server in self.storages.iter_mut().chain([&mut self.naming]) {
            server.thaw_quietly();
            server.kill();
        }
        if std::thread::panicking() {
            eprintln!("test cluster logs kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Server {
    /// Starts `binary` with `args`, its output to `log`, and waits for its
    /// `listening on http://ADDR` line.
    pub fn start(binary: &'static str, args: Vec<String>, log: PathBuf) -> Server {
        Server::start_with_env(binary, args, &[], log)
    }

    pub fn start_with_env(
        binary: &'static str,
        args: Vec<String>,
        env: &[(&str, &str)],
        log: PathBuf,
    ) -> Server {
        let env = env
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        let mut server = Server {
            binary,
            args,
            env,
            log,
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            scheme: "http",
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = fs::File::create(&self.log).expect("create log file");
        let mut command = Command::new(bin_path(self.binary));
        clear_env(&mut command);
        let child = command
            .args(&self.args)
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", self.binary));
        self.child = Some(child);
        let mut addr = None;
        wait_until(
            Duration::from_secs(10),
            &format!("{} to listen", self.binary),
            || {
                let text = fs::read_to_string(&self.log).unwrap_or_default();
                addr = text.lines().find_map(|line| {
                    // A text or a JSON line: the address ends where its
                    // characters do.
                    let (_, url) = line.split_once("listening on ")?;
                    let (scheme, addr) = match url.strip_prefix("https://") {
                        Some(addr) => ("https", addr),
                        None => ("http", url.strip_prefix("http://")?),
                    };
                    let end = addr
                        .find(|c: char| !(c.is_ascii_hexdigit() || ".:[]".contains(c)))
                        .unwrap_or(addr.len());
                    Some((scheme, addr[..end].parse::<SocketAddr>().ok()?))
                });
                if addr.is_none()
                    && let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait)
                {
                    panic!("{} exited with {status}: {text}", self.binary);
                }
                addr.is_some()
            },
        );
        (self.scheme, self.addr) = addr.expect("waited for it");
    }

    /// `SCHEME://ADDR`, as the server's `listening on` line said.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Waits for the process to exit on its own (at most `limit`) and
    /// reaps it; its exit code (`None` if a signal ended it).
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<i32> {
        let mut status = None;
        wait_until(limit, &format!("{} to exit", self.binary), || {
            status = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            status.is_some()
        });
        self.child = None;
        status.and_then(|status| status.code())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILL through `&self`, for a test that kills while other threads
    /// still use the cluster; `kill` or `restart` reaps it later.
    pub fn kill_now(&self) {
        if self.child.is_some() {
            self.signal("-KILL");
        }
    }

    /// SIGSTOP, and waits until every thread has stopped: the kernel stops
    /// a process's threads one by one as each next runs, so on a loaded
    /// machine a worker woken by a new connection could still answer it
    /// right after `kill` returned (CI saw a frozen naming server serve
    /// `/status`).
    pub fn freeze(&self) {
        self.signal("-STOP");
        let tasks = format!("/proc/{}/task", self.pid());
        wait_until(Duration::from_secs(10), "every thread to stop", || {
            let Ok(threads) = fs::read_dir(&tasks) else {
                return false;
            };
            threads.flatten().all(|thread| {
                fs::read_to_string(thread.path().join("stat")).is_ok_and(|stat| {
                    // The state follows the command name's closing parenthesis.
                    let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
                    matches!(state, Some(Some('T' | 't')))
                })
            })
        });
    }

    pub fn thaw(&self) {
        if self.child.is_some() {
            self.signal("-CONT");
        }
    }

    /// `thaw` for cleanup: the process may have exited on its own.
    fn thaw_quietly(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .output();
        }
    }

    /// Kills the process and starts it again on the same port and folders.
    pub fn restart(&mut self) {
        self.kill();
        let listen_idx = self
            .args
            .iter()
            .position(|arg| arg == "--listen")
            .expect("--listen")
            + 1;
        self.args[listen_idx] = self.addr.to_string();
        // The port may linger a moment after the kill.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let probe = std::net::TcpListener::bind(self.addr);
            if probe.is_ok() || Instant::now() > deadline {
                break;
            }
            wait_a_moment();
        }
        self.spawn();
    }

    /// The peak resident memory of the process so far (VmHWM).
    pub fn peak_rss_bytes(&self) -> u64 {
        let status =
            fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("read /proc status");
        let line = status
            .lines()
            .find(|line| line.starts_with("VmHWM:"))
            .expect("VmHWM line");
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|kib| kib.parse().ok())
            .expect("VmHWM value");
        kib * 1024
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (`-HUP`, `-TERM`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.thaw_quietly();
        self.kill();
    }
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!("not JSON ({err}): {}", String::from_utf8_lossy(&self.body))
        })
    }

    /// The `error` field of a JSON error body.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field"))
            .to_owned()
    }
}

/// A call to `url` with exactly this `Authorization` (none if `None`).
pub fn call(url: &str, method: &str, authorization: Option<&str>, body: &[u8]) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    if let Some(value) = authorization {
        builder = builder.header("Authorization", value);
    }
    let mut response = match method {
        "GET" | "HEAD" | "DELETE" => agent.run(builder.body(()).unwrap()),
        _ => agent.run(builder.body(body.to_vec()).unwrap()),
    }
    .unwrap();
    Answer {
        status: response.status().as_u16(),
        body: response.body_mut().read_to_vec().unwrap(),
        content_length: None,
    }
}

pub fn request_to(
    agent: &ureq::Agent,
    url: &str,
    method: &str,
    body: &[u8],
) -> Result<Answer, ureq::Error> {
    let builder = ureq::http::Request::builder().method(method).uri(url);
    let mut response = match method {
        "GET" | "HEAD" | "DELETE" => agent.run(builder.body(()).expect("valid request"))?,
        _ => agent.run(builder.body(body.to_vec()).expect("valid request"))?,
    };
    let content_length = response
        .headers()
        .get("content-length")
        .and_then(|value| value.to_str().ok()?.parse().ok());
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 34)
        .read_to_vec()?;
    Ok(Answer {
        status: response.status().as_u16(),
        body,
        content_length,
    })
}

/// A `harbour` invocation.
pub struct Cli {
    command: Command,
    stdin: Vec<u8>,
}

pub struct CliRun {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Cli {
    pub fn new(args: &[&str]) -> Cli {
        let mut command = Command::new(bin_path("harbour"));
        clear_env(&mut command);
        command.args(args);
        Cli {
            command,
            stdin: Vec::new(),
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Cli {
        self.command.env(key, value);
        self
    }

    pub fn stdin(mut self, bytes: &[u8]) -> Cli {
        self.stdin = bytes.to_vec();
        self
    }

    pub fn run(mut self) -> CliRun {
        let mut child = self
            .command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start harbour");
        let mut stdin = child.stdin.take().expect("piped stdin");
        let bytes = std::mem::take(&mut self.stdin);
        // Feed stdin from a thread: the client may answer before reading it all.
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        });
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().expect("wait for harbour");
        let _ = feeder.join();
        CliRun {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    pub fn assert_ok(self) -> CliRun {
        let run = self.run();
        assert_eq!(run.code, 0, "harbour failed: {}", run.stderr);
        run
    }

    /// Runs and checks the exit code and that stderr is one `error:` line
    /// containing `fragment`.
    pub fn assert_fails(self, code: i32, fragment: &str) -> CliRun {
        let run = self.run();
        assert_eq!(run.code, code, "stderr: {}", run.stderr);
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr: {:?}", run.stderr);
        assert!(lines[0].starts_with("error: "), "{:?}", lines[0]);
        assert!(
            lines[0].contains(fragment),
            "{:?} should contain {fragment:?}",
            lines[0]
        );
        run
    }
}

impl CliRun {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Sends raw bytes to `addr` and returns what came back before the server
/// closed the connection or `wait` passed.
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(wait)).expect("set timeout");
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// Whether slow tests run (`HARBOUR_SLOW_TESTS=1`, which CI sets); says so
/// on stderr when they do not.
pub fn slow_tests(what: &str) -> bool {
    opted_in("HARBOUR_SLOW_TESTS", what)
}

/// Whether the environment variable `var` is set, which opts a test in;
/// says on stderr what was skipped when it is not.
pub fn opted_in(var: &str, what: &str) -> bool {
    let enabled = std::env::var_os(var).is_some();
    if !enabled {
        eprintln!("skipped {what}: set {var}=1 to run it");
    }
    enabled
}

/// Polls `condition` every 20 ms until it holds; panics after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        wait_a_moment();
    }
}

/// The only sleep of the test suite: the polling step of `wait_until`.
fn wait_a_moment() {
    std::thread::sleep(Duration::from_millis(20));
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The cluster secret of every test cluster: servers get it in
/// `CLUSTER_SECRET` (see `clear_env`), the test agent signs with it.
pub const TEST_CLUSTER_SECRET: &str = "harbour-test-cluster-secret-0123456789";

/// Signs as a member of the test clusters.
pub fn test_signer() -> Signer {
    Signer::new(ClusterKey::new(TEST_CLUSTER_SECRET).expect("a long enough secret"))
}

/// A child's environment: nothing of the test's own but `RUST_BACKTRACE`
/// (for readable panics) and the test cluster's secret, so a test sees
/// only what it sets: nothing a Harbour binary reads can leak in from the
/// caller's shell, whatever variables the binaries learn to read.
pub fn clear_env(command: &mut Command) {
    command.env_clear();
    command.env("CLUSTER_SECRET", TEST_CLUSTER_SECRET);
    if let Some(backtrace) = std::env::var_os("RUST_BACKTRACE") {
        command.env("RUST_BACKTRACE", backtrace);
    }
}

/// Clears `command`'s environment but for `PATH`: for the third-party
/// clients a test runs (the aws CLI, rclone...), which find their
/// interpreters and helpers there and must not read the developer's own
/// configuration.
pub fn client_env(command: &mut Command) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    command.env_clear().env("PATH", path);
}

pub fn bin_path(name: &str) -> PathBuf {
    let dir = match std::env::var_os("HARBOUR_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("current exe");
            // target/debug/deps/it-HASH -> target/debug
            exe.parent()
                .and_then(Path::parent)
                .expect("target dir")
                .to_path_buf()
        }
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (or set HARBOUR_BIN_DIR)",
        path.display()
    );
    path
}

/// A fresh folder for one test: `temp/harbour-it/<pid>-<n>`.
pub fn test_dir() -> PathBuf {
    common::testing::fresh_dir("it")
}

fn path_arg(path: &Path) -> String {
    path.to_str().expect("temp paths are UTF-8").to_owned()
}
